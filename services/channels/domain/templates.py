"""Message templates (zh-CN, en). Polite, no threats, no extra fees, an opt-out in every text (CN-CONTENT).

The account is named only by ``account_ref``, the masked tail the lender shows its customers ("尾号8842",
"ending 8842"); without one the text says "your account" and names no number. The internal account id
never appears in a message, not even a slice of it.

``pre_due.*`` is the reminder at DPD 0: it says when payment is due and how much, never "overdue".
A ``reminder.*`` requested at DPD 0 or earlier says the same (there is nothing overdue yet to speak of).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.money import format_amount


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: subject (e-mail only) and body."""

    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What a template may say about the debt. ``account_ref`` is the masked tail the lender shows the
    customer (e.g. "8842"), or None; the internal account id is deliberately not part of it."""

    account_ref: str | None
    days_past_due: int
    overdue_minor: int
    currency: str
    due_date: date
    locale: str


TEMPLATE_IDS = ("pre_due.sms", "pre_due.email", "reminder.sms", "reminder.email")


def _zh(ctx: TemplateContext, template_id: str) -> Rendered:
    amount = f"{format_amount(ctx.overdue_minor, ctx.currency)} {ctx.currency}"
    due = f"{ctx.due_date:%Y-%m-%d}"
    account = f"您尾号{ctx.account_ref}的账户" if ctx.account_ref else "您的账户"
    short = f"尾号{ctx.account_ref}的账户" if ctx.account_ref else "您的账户"
    dpd = ctx.days_past_due
    if template_id == "pre_due.sms":
        return Rendered("", f"【缓催提醒】尊敬的客户，{account}本期应还{amount}，到期日为{due}。"
                            "请在到期日前按时还款；如已还款请忽略。如有困难，可联系我们协商还款安排。回复TD退订")
    if template_id == "pre_due.email":
        return Rendered(
            f"还款提醒：{short}将于{due}到期",
            f"尊敬的客户：\n\n{account}本期应还金额为{amount}，到期日为{due}。\n\n"
            "温馨提醒您在到期日前按时还款；如您已还款，请忽略本邮件。如您暂时遇到困难，欢迎联系我们协商"
            "分期或延期还款方案，我们愿意与您一起找到合适的办法。\n\n如不希望再收到此类邮件，请回复“退订”。")
    if template_id == "reminder.sms":
        return Rendered("", f"【缓催提醒】尊敬的客户，{account}已逾期{dpd}天，待还金额{amount}（到期日{due}）。"
                            "如已还款请忽略；如有困难，可联系我们协商还款计划。回复TD退订")
    if template_id == "reminder.email":
        return Rendered(
            f"还款提醒：{short}已逾期{dpd}天",
            f"尊敬的客户：\n\n{account}已于{due}到期，目前逾期{dpd}天，待还金额为{amount}。\n\n"
            "如您已还款，请忽略本邮件。如您暂时遇到困难，欢迎联系我们协商分期或延期还款方案，"
            "我们愿意与您一起找到合适的办法。\n\n如不希望再收到此类邮件，请回复“退订”。")
    raise KeyError(template_id)


def _en(ctx: TemplateContext, template_id: str) -> Rendered:
    amount = f"{format_amount(ctx.overdue_minor, ctx.currency)} {ctx.currency}"
    due = f"{ctx.due_date:%Y-%m-%d}"
    account = f"your account ending {ctx.account_ref}" if ctx.account_ref else "your account"
    dpd = ctx.days_past_due
    days = f"{dpd} day" if dpd == 1 else f"{dpd} days"
    if template_id == "pre_due.sms":
        return Rendered("", f"Reminder: {amount} on {account} is due on {due}. Please pay by then; "
                            "already paid? Please ignore. Finding it hard? Contact us to agree a plan. "
                            "Reply STOP to opt out.")
    if template_id == "pre_due.email":
        return Rendered(
            f"Payment due on {due}: {account}",
            f"Dear customer,\n\nA payment of {amount} on {account} is due on {due}.\n\nPlease pay by the due "
            "date; if you have already paid, please ignore this e-mail. If you are having difficulty, contact "
            "us and we will work out an instalment or deferral plan with you.\n\nTo stop these e-mails, reply STOP.")
    if template_id == "reminder.sms":
        return Rendered("", f"Reminder: {account} is {days} past due; {amount} due since {due}. "
                            "Already paid? Please ignore. Finding it hard? Contact us to agree a plan. "
                            "Reply STOP to opt out.")
    if template_id == "reminder.email":
        return Rendered(
            f"Payment reminder: {account} is {days} past due",
            f"Dear customer,\n\n{account[0].upper()}{account[1:]} was due on {due} and is now {days} past due, "
            f"with {amount} outstanding.\n\nIf you have already paid, please ignore this e-mail. If you are "
            "having difficulty, contact us and we will work out an instalment or deferral plan with you.\n\n"
            "To stop these e-mails, reply STOP.")
    raise KeyError(template_id)


def render(template_id: str, ctx: TemplateContext) -> Rendered:
    """Render a template; unknown ids raise KeyError (a configuration error, not a message error)."""
    if template_id not in TEMPLATE_IDS:
        raise KeyError(template_id)
    if template_id.startswith("reminder.") and ctx.days_past_due <= 0:
        template_id = template_id.replace("reminder.", "pre_due.", 1)  # never "0 days past due"
    return _zh(ctx, template_id) if ctx.locale == "zh-CN" else _en(ctx, template_id)
