"""Unit tests for the content lint (services/channels/domain/content/lint.py) and its lexicons
(domain/content/lexicon/*.toml): every forbidden phrase is caught, also in full width, other case or with
zero-width characters; polite texts and the built-in templates pass; required elements are enforced."""

from __future__ import annotations

import tomllib
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.channels.domain import templates as tpl
from services.channels.domain.content.lint import LEXICON_DIR, LEXICONS, errors, lint, normalise, parse_lexicon

FILLER = "您好谢谢请的 。，"
PROPS = settings(max_examples=300, deadline=None, database=None)
POLITE = {
    "zh-CN": "【示例银行】尊敬的客户，您的账户本期应还1,000.00 CNY，到期日为2026年3月1日。如有困难，可联系我们协商"
             "还款安排；如有疑问或投诉，请联系示例银行客服。回复TD退订",
    "en": "Example Bank reminder: 1,000.00 USD on your account is due on March 1, 2026. Finding it hard? Contact us "
          "to agree a plan. Questions or complaints: call Example Bank. Reply STOP to opt out.",
}
LENDER = {"zh-CN": "示例银行", "en": "Example Bank"}
# polite sentences with near misses of forbidden words ("feel" is no fee, "issue" no sue, "policy" no police)
NEAR_MISSES = ["We feel for you and will find a plan together.", "If there is an issue, contact us.",
               "Our privacy policy applies.", "Thank you for your courtesy.", "We pursue fair solutions.",
               "That is fine with us.", "There are no fees for a plan.", "Free of charge.",
               "我们不收取手续费。", "欢迎联系我们协商分期方案。"]


def phrases(locale: str) -> list[tuple[str, str, str]]:
    """(rule, severity, phrase) of a lexicon file's forbidden phrases."""
    data = tomllib.loads((LEXICON_DIR / f"{locale}.toml").read_text(encoding="utf-8"))
    return [(r["rule"], r["severity"], p) for r in data["forbidden"] for p in r.get("phrases", ())]


ALL = [(loc, *entry) for loc in ("zh-CN", "en") for entry in phrases(loc)]


def embed(phrase: str, locale: str) -> str:
    return POLITE[locale].replace("如有困难，", f"{phrase}，如有困难，").replace("Finding it hard?",
                                                                               f"{phrase}. Finding it hard?")


def test_the_lexicons() -> None:
    assert set(LEXICONS) == {"zh-CN", "en"}
    for lex in LEXICONS.values():
        assert lex.version >= 1
        assert lex.size >= 60
        assert {r.rule for r in lex.forbidden} == {"impersonation", "threat", "insult", "extra_fee",
                                                   "borrow_to_repay", "pressure"}
        assert {r.rule for r in lex.required} == {"help", "complaint", "opt_out"}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_polite_texts_pass(locale: str) -> None:
    assert lint(POLITE[locale], locale, "sms", lender=LENDER[locale]) == []
    assert lint(POLITE[locale], locale, "email", lender=LENDER[locale]) == []


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_no_false_positive_on_near_misses(text: str) -> None:
    assert lint(text, "en", "sms", required=False) == []


@pytest.mark.parametrize(("locale", "rule", "severity", "phrase"), ALL)
def test_every_forbidden_phrase_is_caught(locale: str, rule: str, severity: str, phrase: str) -> None:
    text = embed(phrase, locale)
    found = [f for f in lint(text, locale, "sms", lender=LENDER[locale]) if f.rule == rule]
    assert found, (phrase, text)
    assert found[0].severity == severity
    assert found[0].span is not None
    start, end = found[0].span
    assert normalise(phrase).text in normalise(text[start:end]).text or phrase in text[start:end]


@pytest.mark.parametrize(("locale", "rule", "severity", "phrase"), ALL)
def test_full_width_and_upper_case_are_caught(locale: str, rule: str, severity: str, phrase: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in phrase.upper())
    spaced = "\u200b".join(wide) if locale == "zh-CN" else wide.replace(" ", "\u3000")
    found = [f for f in lint(embed(spaced, locale), locale, "sms", lender=LENDER[locale]) if f.rule == rule]
    assert found, spaced


def test_a_zh_text_is_checked_against_english_words_too() -> None:
    text = POLITE["zh-CN"].replace("如有困难", "POLICE will come. 如有困难")
    assert [f.rule for f in lint(text, "zh-CN", "sms", lender="示例银行")] == ["impersonation"]


@pytest.mark.parametrize(("locale", "text", "rules"), [
    ("zh-CN", "【示例银行】请还款。", {"help", "complaint", "opt_out"}),
    ("zh-CN", "【示例银行】请还款，可联系客服或投诉。", {"opt_out"}),
    ("en", "Example Bank: please pay. Contact us with complaints.", {"opt_out"}),
    ("en", "Please pay. Reply STOP.", {"lender", "help", "complaint"}),
])
def test_required_elements(locale: str, text: str, rules: set[str]) -> None:
    found = lint(text, locale, "sms", lender=LENDER[locale])
    assert {f.rule for f in found} == rules
    assert all(f.span is None and f.severity == "error" for f in found)


def test_agent_texts_need_no_opt_out_and_subjects_need_nothing() -> None:
    assert lint("您好，我是示例银行的客服。如有疑问或投诉，可联系客服。", "zh-CN", "call", lender="示例银行") == []
    assert lint("Payment reminder", "en", "email", required=False) == []


def test_a_source_must_use_the_lender_placeholder() -> None:
    source = POLITE["en"].replace("Example Bank", "{{ lender }}")
    assert lint(source, "en", "sms") == []
    assert [f.rule for f in lint(POLITE["en"], "en", "sms")] == ["lender"]


def test_warnings_do_not_make_a_text_unsendable() -> None:
    text = POLITE["en"].replace("Finding it hard?", "This is a final notice. Finding it hard?")
    found = lint(text, "en", "sms", lender="Example Bank")
    assert [(f.rule, f.severity) for f in found] == [("pressure", "warning")]
    assert errors(found) == []


def test_allowed_phrases_mask_what_they_contain() -> None:
    assert lint("我们不收取手续费。", "zh-CN", "sms", required=False) == []
    assert [f.rule for f in lint("我们收取手续费。", "zh-CN", "sms", required=False)] == ["extra_fee"]


@pytest.mark.parametrize("template", tpl.builtins(), ids=lambda t: f"{t.id}@{t.locale}")
def test_no_false_positive_on_the_builtin_templates(template: tpl.Compiled) -> None:
    assert lint(template.body_source, template.locale, template.channel) == []
    assert lint(template.subject_source, template.locale, template.channel, required=False) == []


def test_a_malformed_lexicon_fails_loudly() -> None:
    good = tomllib.loads((LEXICON_DIR / "en.toml").read_text(encoding="utf-8"))
    for broken in ({**good, "extra": 1}, {**good, "forbidden": [{"rule": "x", "severity": "fatal", "message": "m"}]},
                   {**good, "forbidden": [{"rule": "x", "severity": "error", "message": "m", "phrases": [""]}]},
                   {**good, "required": [{"rule": "x", "message": "m", "phrases": ["a"], "channels": ["fax"]}]}):
        with pytest.raises(ValueError):
            parse_lexicon(broken, "broken.toml")


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError):
        lint("x", "en", "fax")


# --- the normaliser -----------------------------------------------------------------------------------

@PROPS
@given(st.text())
def test_normalising_is_idempotent(text: str) -> None:
    once = normalise(text).text
    assert normalise(once).text == once
    compact = normalise(text, compact=True).text
    assert normalise(compact, compact=True).text == compact


@PROPS
@given(st.text())
def test_every_normalised_character_points_into_the_original(text: str) -> None:
    n = normalise(text)
    assert len(n.origin) == len(n.text)
    assert list(n.origin) == sorted(n.origin)
    assert all(0 <= i < len(text) for i in n.origin)
    assert "  " not in n.text
    assert all(unicodedata.category(c) != "Cf" for c in n.text)


@PROPS
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)))
def test_full_width_ascii_normalises_as_ascii_and_case_does_not_matter(text: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) for c in text)
    assert normalise(wide).text == normalise(text).text == normalise(text.upper()).text.casefold()


@PROPS
@given(data=st.data(), entry=st.sampled_from(ALL), before=st.text(alphabet=FILLER, max_size=10),
       after=st.text(alphabet=FILLER, max_size=10))
def test_a_forbidden_phrase_is_caught_whatever_surrounds_and_disguises_it(data: st.DataObject, entry: tuple[str, ...],
                                                                         before: str, after: str) -> None:
    locale, rule, _, phrase = entry
    disguise = data.draw(st.lists(st.sampled_from(["", "\u200b", "\ufeff", "\u00ad"]), min_size=len(phrase),
                                  max_size=len(phrase)))
    wide = data.draw(st.booleans())
    chars = [chr(ord(c) + 0xFEE0) if wide and "!" <= c <= "~" else c for c in phrase]
    disguised = "".join(c + d for c, d in zip(chars, disguise, strict=True))
    assume(rule != "allow")
    text = f"{before} {disguised} {after}"
    assert rule in {f.rule for f in lint(text, locale, "sms", required=False)}, text
