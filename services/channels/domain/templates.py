"""Message templates (zh-CN, en). Polite, no threats, no extra fees, an opt-out in every text (CN-CONTENT)."""

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
    """What a template may say about the debt."""

    account_id: str
    days_past_due: int
    overdue_minor: int
    currency: str
    due_date: date
    locale: str


def _tail(account_id: str) -> str:
    return account_id[-4:]


def render(template_id: str, ctx: TemplateContext) -> Rendered:
    """Render a template; unknown ids raise KeyError (a configuration error, not a message error)."""
    amount = format_amount(ctx.overdue_minor, ctx.currency)
    if ctx.locale == "zh-CN":
        texts = {
            "reminder.sms": Rendered(
                "",
                f"【缓催提醒】尊敬的客户，您尾号{_tail(ctx.account_id)}的账户已逾期{ctx.days_past_due}天，"
                f"待还金额{amount} {ctx.currency}（到期日{ctx.due_date:%Y-%m-%d}）。"
                "如已还款请忽略；如有困难，可联系我们协商还款计划。回复TD退订"),
            "reminder.email": Rendered(
                f"还款提醒：尾号{_tail(ctx.account_id)}的账户已逾期{ctx.days_past_due}天",
                f"尊敬的客户：\n\n您尾号{_tail(ctx.account_id)}的账户已于{ctx.due_date:%Y-%m-%d}到期，目前逾期"
                f"{ctx.days_past_due}天，待还金额为{amount} {ctx.currency}。\n\n如您已还款，请忽略本邮件。"
                "如您暂时遇到困难，欢迎联系我们协商分期或延期还款方案，我们愿意与您一起找到合适的办法。\n\n"
                "如不希望再收到此类邮件，请回复“退订”。"),
        }
    else:
        texts = {
            "reminder.sms": Rendered("", f"Reminder: your account ending {_tail(ctx.account_id)} is "
                                         f"{ctx.days_past_due} days past due; {amount} {ctx.currency} "
                                         f"due since {ctx.due_date:%Y-%m-%d}. "
                                         "Already paid? Please ignore. Finding it hard? Contact us to agree a plan. "
                                         "Reply STOP to opt out."),
            "reminder.email": Rendered(
                f"Payment reminder: account ending {_tail(ctx.account_id)} is {ctx.days_past_due} days past due",
                f"Dear customer,\n\nYour account ending {_tail(ctx.account_id)} was due on "
                f"{ctx.due_date:%Y-%m-%d} and is now {ctx.days_past_due} days past due, with {amount} "
                f"{ctx.currency} outstanding.\n\nIf you have already paid, please ignore this e-mail. If you are "
                "having difficulty, contact us and we will work out an instalment or deferral plan with you.\n\n"
                "To stop these e-mails, reply STOP."),
        }
    return texts[template_id]
