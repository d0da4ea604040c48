"""The portal's words in zh-CN and English. Pure.

The language is the account's ``contact.locale`` (zh-CN by default) unless the customer switched it with the
link in every page's header (kept with the session). ``text(locale, key, **values)`` fills ``{name}`` fields;
a key missing in one language is a bug the unit tests catch (both dictionaries hold the same keys)."""

from __future__ import annotations

from datetime import date
from typing import Final

LOCALES: Final = ("zh-CN", "en")
DEFAULT_LOCALE: Final = "zh-CN"

_EN: dict[str, str] = {
    "lang_name": "English",
    "switch_to": "Language",
    "site": "Your account",
    "skip": "Skip to content",
    "footer": "This page uses no cookies except one that keeps you signed in for 30 minutes.",
    # the link
    "link_title": "Your account",
    "link_intro": "You opened the secure link we sent you about your account. Continue to check who you are.",
    "link_continue": "Continue",
    "link_scanner_note": "Nothing is shown or changed until you continue.",
    "used_title": "This link was already used",
    "used_text": "Each link opens once. Ask us for a new one: reply to our message or call customer service, "
                 "and we will send you a new link.",
    "expired_title": "This link has expired",
    "expired_text": "Links work for {hours} hours. Ask us for a new one: reply to our message or call customer "
                    "service.",
    "invalid_title": "This link does not work",
    "invalid_text": "The link is incomplete or was changed. Open it again from the message (the whole link), or "
                    "ask customer service for a new one.",
    "busy_title": "Too many attempts",
    "busy_text": "Too many links were opened from your connection. Wait 15 minutes and try again.",
    "session_title": "Your session has ended",
    "session_text": "For your safety a session ends after 30 minutes without activity, or when it was not "
                    "started from a link. Open the link in our message again, or ask for a new one.",
    "unavailable_title": "Temporarily unavailable",
    "unavailable_text": "This page cannot be shown right now. Nothing was changed. Please try again in a few "
                        "minutes.",
    "error_title": "Something went wrong",
    "error_text": "This page cannot be shown. Nothing was changed. Go back to the link in your message and try "
                  "again, or call customer service.",
    "invalid_input_title": "This request cannot be handled",
    "invalid_input_text": "Nothing was changed. Open the link in your message again and use the page's buttons.",
    "notfound_title": "Page not found",
    "notfound_text": "There is no such page. Open the link in your message again.",
    "forbidden_title": "The form has expired",
    "forbidden_text": "This form is no longer valid. Go back to your account page and try again.",
    # the second factor
    "verify_title": "Check it is you",
    "verify_intro": "Before we show anything about your account, enter the last 4 characters of your ID number.",
    "verify_label": "Last 4 characters of your ID number",
    "verify_hint": "Letters or digits, for example 123X.",
    "verify_button": "Check",
    "verify_format": "Enter exactly 4 letters or digits.",
    "verify_wrong": "That does not match our records. Tries left: {left}.",
    "verify_locked": "Too many wrong answers. For your safety this link is locked until {until} (UTC). Try "
                     "again then, or call customer service.",
    "no_id_title": "We cannot check who you are here",
    "no_id_text": "We have no ID number on file to check who you are, so this page cannot show your account. "
                  "Please call customer service.",
    # the account
    "account_title": "What you owe",
    "account_ref": "Account ending {ref}",
    "overdue": "Overdue now",
    "outstanding": "Outstanding balance",
    "due_date": "Payment that was due",
    "days_past_due": "Days past due",
    "days": "{n} days",
    "why": "Why: the {product} payment due on {due} was not paid in full. The amount overdue is what is owed "
           "now; the outstanding balance is what is left of the loan.",
    "nothing_overdue": "Nothing is overdue now. Thank you.",
    "offers_title": "Ways to pay",
    "offers_intro": "These are the options your lender allows for this account.",
    "offers_unavailable": "Payment options cannot be shown here right now. Please call customer service, or "
                          "promise a payment below.",
    "offers_none": "No option is available for this account now. Please call customer service.",
    "budget_legend": "Optional: your monthly budget, to see what you can afford",
    "income_label": "Monthly income",
    "expenses_label": "Monthly expenses",
    "amount_hint": "An amount such as 3500 or 3500.50, in {currency}.",
    "budget_button": "Show options",
    "kind_instalments": "Pay in instalments",
    "kind_deferral": "Pay later",
    "kind_waiver": "Reduced amount",
    "kind_settlement": "Settle for less",
    "schedule_caption": "Payments",
    "offer_summary": "{n} payment(s), the first of {first} on {due}.",
    "col_seq": "No.",
    "col_due": "Due",
    "col_amount": "Amount",
    "total": "Total",
    "written_off": "Forgiven",
    "affordable_yes": "Fits your budget",
    "affordable_no": "May not fit your budget",
    "needs_approval": "Needs your lender's approval first",
    "agree_button": "Agree to this option",
    "reason_label": "Reason (optional)",
    "agreed_title": "Agreed",
    "agreed_text": "Your plan is agreed: {n} payments totalling {total}. We will stop reminders while you keep "
                   "to it.",
    "waiting_title": "Waiting for approval",
    "waiting_text": "Your choice was sent to your lender for approval. We will tell you the answer.",
    "offer_error_title": "This option cannot be agreed",
    "offer_error_text": "It may have expired or changed. Go back to see the options available now.",
    # a promise to pay
    "promise_title": "Promise a payment",
    "promise_intro": "Tell us how much you will pay and by when; we pause reminders until then.",
    "promise_amount": "Amount",
    "promise_date": "Pay by",
    "promise_date_hint": "A date within the next {days} days, as YYYY-MM-DD.",
    "promise_button": "Promise this payment",
    "promise_done_title": "Thank you",
    "promise_done_text": "You promised {amount} by {date}.",
    "promise_amount_error": "Enter an amount greater than zero and at most what is owed, in {currency}.",
    "promise_date_error": "Enter a date from today to {days} days ahead, as YYYY-MM-DD.",
    "promise_unavailable": "Promises cannot be recorded here right now. Please call customer service.",
    "promise_error_title": "This promise cannot be recorded",
    "promise_error_text": "A promise may already be open for this account, or this one is not allowed. Go back to "
                          "see your options, or call customer service.",
    # hardship, complaint, opt-out
    "hardship_title": "I am in financial difficulty",
    "hardship_intro": "Tell us what happened. We pause contact and a person from our team will call you.",
    "hardship_label": "What happened (optional)",
    "hardship_button": "Ask for help",
    "hardship_done_title": "We will contact you",
    "hardship_done_text": "We paused reminders. A person from our team will contact you about your situation.",
    "complaint_title": "Make a complaint",
    "complaint_intro": "Tell us what went wrong. We answer within the time the rules set.",
    "complaint_label": "Your complaint",
    "complaint_button": "Send complaint",
    "complaint_done_title": "Complaint received",
    "complaint_done_text": "We received your complaint and will answer it. Your reference: {ref}.",
    "text_error": "Write at most {n} characters.",
    "text_required": "Write what your complaint is about.",
    "optout_title": "Stop messages on a channel",
    "optout_legend": "Channel to stop",
    "optout_sms": "Text messages (SMS)",
    "optout_email": "E-mail",
    "optout_voice": "Phone calls",
    "optout_button": "Stop this channel",
    "optout_done_title": "Done",
    "optout_done_text": "We will stop contacting you by {channel}.",
    "optout_error": "Choose a channel.",
    "back": "Back to your account",
    "error_summary": "Please correct the form:",
}

_ZH: dict[str, str] = {
    "lang_name": "中文",
    "switch_to": "语言",
    "site": "我的账户",
    "skip": "跳到正文",
    "footer": "本页面仅使用一个 Cookie，用于在 30 分钟内保持您的登录状态。",
    "link_title": "我的账户",
    "link_intro": "您打开了我们发送给您的账户安全链接。请继续以验证您的身份。",
    "link_continue": "继续",
    "link_scanner_note": "在您点击继续之前，不会显示或更改任何内容。",
    "used_title": "此链接已被使用",
    "used_text": "每个链接只能打开一次。如需新链接，请回复我们的短信或致电客服，我们会为您发送新链接。",
    "expired_title": "此链接已过期",
    "expired_text": "链接在 {hours} 小时内有效。如需新链接，请回复我们的短信或致电客服。",
    "invalid_title": "此链接无法使用",
    "invalid_text": "链接不完整或已被修改。请从短信中重新打开完整的链接，或联系客服获取新链接。",
    "busy_title": "尝试次数过多",
    "busy_text": "您的网络打开链接的次数过多。请等待 15 分钟后再试。",
    "session_title": "您的会话已结束",
    "session_text": "为保障安全，会话在 30 分钟无操作后结束，或未从链接开始。请重新打开短信中的链接，或申请新链接。",
    "unavailable_title": "暂时无法使用",
    "unavailable_text": "此页面暂时无法显示，未做任何更改。请几分钟后再试。",
    "error_title": "出现问题",
    "error_text": "此页面无法显示，未做任何更改。请重新打开短信中的链接再试，或联系客服。",
    "invalid_input_title": "无法处理此请求",
    "invalid_input_text": "未做任何更改。请重新打开短信中的链接，并使用页面上的按钮。",
    "notfound_title": "页面不存在",
    "notfound_text": "没有此页面。请重新打开短信中的链接。",
    "forbidden_title": "表单已失效",
    "forbidden_text": "此表单已失效。请返回账户页面重试。",
    "verify_title": "验证身份",
    "verify_intro": "在显示您的账户信息之前，请输入您身份证号码的后 4 位。",
    "verify_label": "身份证号码后 4 位",
    "verify_hint": "字母或数字，例如 123X。",
    "verify_button": "验证",
    "verify_format": "请输入 4 位字母或数字。",
    "verify_wrong": "与我们的记录不符。剩余尝试次数：{left}。",
    "verify_locked": "错误次数过多。为保障安全，此链接已锁定至 {until}（UTC）。请届时再试，或致电客服。",
    "no_id_title": "无法在此验证您的身份",
    "no_id_text": "我们没有您的身份证号码记录，无法验证您的身份，因此本页面无法显示您的账户。请致电客服。",
    "account_title": "您的欠款",
    "account_ref": "尾号{ref}账户",
    "overdue": "当前逾期金额",
    "outstanding": "剩余未还本金",
    "due_date": "应还款日",
    "days_past_due": "逾期天数",
    "days": "{n} 天",
    "why": "原因：您的{product}在 {due} 到期的还款未足额支付。逾期金额为当前应还金额；"
           "剩余未还本金为贷款尚未偿还的部分。",
    "nothing_overdue": "当前没有逾期款项。谢谢。",
    "offers_title": "还款方式",
    "offers_intro": "以下是贷款机构允许此账户选择的还款方式。",
    "offers_unavailable": "暂时无法在此显示还款方式。请致电客服，或在下方承诺还款。",
    "offers_none": "此账户当前没有可选的还款方式。请致电客服。",
    "budget_legend": "可选：填写您的每月收支，查看您能承受的方案",
    "income_label": "每月收入",
    "expenses_label": "每月支出",
    "amount_hint": "金额，例如 3500 或 3500.50，单位 {currency}。",
    "budget_button": "查看方案",
    "kind_instalments": "分期还款",
    "kind_deferral": "延期还款",
    "kind_waiver": "减免部分金额",
    "kind_settlement": "协商结清",
    "schedule_caption": "还款计划",
    "offer_summary": "共 {n} 期，首期 {first}，于 {due} 到期。",
    "col_seq": "期数",
    "col_due": "到期日",
    "col_amount": "金额",
    "total": "合计",
    "written_off": "减免金额",
    "affordable_yes": "符合您的预算",
    "affordable_no": "可能超出您的预算",
    "needs_approval": "需经贷款机构审批",
    "agree_button": "同意此方案",
    "reason_label": "原因（可选）",
    "agreed_title": "已达成协议",
    "agreed_text": "您的还款计划已确认：共 {n} 期，合计 {total}。在您按计划还款期间，我们将暂停催收提醒。",
    "waiting_title": "等待审批",
    "waiting_text": "您的选择已提交贷款机构审批。我们会通知您结果。",
    "offer_error_title": "无法确认此方案",
    "offer_error_text": "该方案可能已过期或已变更。请返回查看当前可选的方案。",
    "promise_title": "承诺还款",
    "promise_intro": "告诉我们您将于何时还款多少；在此之前我们将暂停提醒。",
    "promise_amount": "金额",
    "promise_date": "还款日期",
    "promise_date_hint": "未来 {days} 天内的日期，格式为 YYYY-MM-DD。",
    "promise_button": "承诺此笔还款",
    "promise_done_title": "谢谢",
    "promise_done_text": "您承诺于 {date} 前还款 {amount}。",
    "promise_amount_error": "请输入大于零且不超过欠款的金额，单位 {currency}。",
    "promise_date_error": "请输入今天至 {days} 天内的日期，格式为 YYYY-MM-DD。",
    "promise_unavailable": "暂时无法在此记录还款承诺。请致电客服。",
    "promise_error_title": "无法记录此还款承诺",
    "promise_error_text": "此账户可能已有未到期的还款承诺，或此承诺不被允许。请返回查看可选方式，或致电客服。",
    "hardship_title": "我遇到经济困难",
    "hardship_intro": "请告诉我们您的情况。我们将暂停联系，并由专人与您联系。",
    "hardship_label": "您的情况（可选）",
    "hardship_button": "申请帮助",
    "hardship_done_title": "我们会联系您",
    "hardship_done_text": "我们已暂停提醒。我们的工作人员将就您的情况与您联系。",
    "complaint_title": "投诉",
    "complaint_intro": "请告诉我们哪里出了问题。我们会在规定时间内答复。",
    "complaint_label": "投诉内容",
    "complaint_button": "提交投诉",
    "complaint_done_title": "已收到投诉",
    "complaint_done_text": "我们已收到您的投诉并将予以答复。您的编号：{ref}。",
    "text_error": "最多 {n} 个字符。",
    "text_required": "请填写投诉内容。",
    "optout_title": "停止某一渠道的联系",
    "optout_legend": "要停止的渠道",
    "optout_sms": "短信",
    "optout_email": "电子邮件",
    "optout_voice": "电话",
    "optout_button": "停止此渠道",
    "optout_done_title": "已完成",
    "optout_done_text": "我们将不再通过{channel}联系您。",
    "optout_error": "请选择一个渠道。",
    "back": "返回我的账户",
    "error_summary": "请更正以下内容：",
}

STRINGS: Final[dict[str, dict[str, str]]] = {"en": _EN, "zh-CN": _ZH}

_PRODUCTS: Final[dict[str, dict[str, str]]] = {
    "en": {"consumer-loan": "consumer loan", "credit-card": "credit card", "mortgage": "mortgage"},
    "zh-CN": {"consumer-loan": "消费贷款", "credit-card": "信用卡", "mortgage": "房贷"},
}


_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def locale_of(contact_locale: object, chosen: str | None = None) -> str:
    """The page's language: the one the customer chose, else the account's ``contact.locale``, else zh-CN."""
    for candidate in (chosen, contact_locale):
        if isinstance(candidate, str) and candidate in LOCALES:
            return candidate
    return DEFAULT_LOCALE


def text(locale: str, key: str, **values: object) -> str:
    """The string ``key`` in ``locale`` (zh-CN for an unknown locale) with ``{name}`` fields filled in."""
    template = STRINGS.get(locale, STRINGS[DEFAULT_LOCALE])[key]
    return template.format(**values) if values else template


def product_name(locale: str, product: str) -> str:
    """A product as the customer calls it; an unknown product as it is named."""
    default = "loan" if locale == "en" else "贷款"
    return _PRODUCTS.get(locale, _PRODUCTS[DEFAULT_LOCALE]).get(product, product or default)


def long_date(locale: str, day: date) -> str:
    """2026-11-20 as "20 Nov 2026" or "2026年11月20日" (no locale database needed)."""
    if locale == "en":
        return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"
    return f"{day.year}年{day.month}月{day.day}日"


def other_locale(locale: str) -> str:
    """The language the header's switch link offers."""
    return "en" if locale == "zh-CN" else "zh-CN"
