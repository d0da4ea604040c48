"""Replies from customers (mobile-originated SMS): which ones ask to stop, and the confirmation we send.

Pure logic. A reply opts out when, after NFKC normalisation (full-width letters, ideographic spaces),
case folding and stripping punctuation and whitespace, it is one of the keywords below, optionally with
the words around them that people actually type ("回复TD", "TD退订", "Stop please", "退订。").
"""

from __future__ import annotations

import re
import unicodedata

# The standard opt-out keywords of Chinese carriers (TD, T, 退订, 退, 取消) and of the US CTIA / UK
# guidance (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT).
KEYWORDS = ("TD", "T", "退订", "退", "取消", "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT")
_FILLERS = ("回复", "请", "谢谢", "短信", "PLEASE", "REPLY")
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
MAX_REPLY_CHARS = 160


def _normalise(text: str) -> str:
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).upper())


_ACCEPTED: frozenset[str] = frozenset(
    {k for k in KEYWORDS}
    | {f + k for f in _FILLERS for k in KEYWORDS}
    | {k + f for f in _FILLERS for k in KEYWORDS}
    | {"TD退订", "退订TD", "T退订", "STOPSTOP"}
    | {f + k + "退订" for f in _FILLERS for k in ("TD", "T")}
)


def opt_out_keyword(text: str) -> str | None:
    """The opt-out keyword a reply is, normalised (``TD``, ``退订``, ``STOP``, ...), or None for any other
    reply (a question, a promise to pay: those go to an agent, never counted as consent to stop)."""
    if len(text) > MAX_REPLY_CHARS:
        return None
    normalised = _normalise(text)
    if normalised not in _ACCEPTED:
        return None
    for keyword in sorted(KEYWORDS, key=len, reverse=True):  # the longest keyword it contains names it
        if keyword in normalised:
            return keyword
    return None


CONFIRMATION_TEMPLATE = "system.opt_out_confirmation"


def confirmation_text(locale: str, lender: str | None = None) -> str:
    """The one message sent after an opt-out: it confirms, and asks nothing. Signed with the tenant's zh-CN
    lender name (its branding) when it has one."""
    if locale == "zh-CN":
        return f"【{lender or '缓催'}】您已成功退订，本机构将不再向此号码发送催收短信。如需帮助，可随时联系我们的客服。"
    return "You have been unsubscribed: we will send no more collection texts to this number. Contact us any time " \
           "if you need help."
