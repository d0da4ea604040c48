"""Content lint (CN-CONTENT, US-EOPTOUT): what a message must never say, and what it must always carry.

Pure logic over the lexicon data files in ``lexicon/`` (one TOML file per locale, loaded and checked at
import: a malformed file fails loudly). ``lint(text, locale, channel)`` returns ``Finding``s:

* forbidden content, from every locale's lexicon (a zh-CN text that slips in "police" is still caught):
  posing as courts, police or government; threats; insults; extra fees; pushing the customer to borrow to
  repay; and, as warnings only, pressing wording;
* required elements, from the text's own locale: the lender is identified (its name, given as ``lender``,
  or the ``{{ lender }}`` placeholder in a template's source), a way to get help, a way to complain and,
  in every SMS and e-mail, an opt-out (US-EOPTOUT).

Matching is width-, case- and spacing-insensitive: text and phrases go through ``normalise`` (NFKC, case
folding, format characters such as zero-width spaces dropped, whitespace runs as one space). Chinese
phrases are matched with whitespace and punctuation removed ("法 院", "法·院" match "法院"); Latin phrases
match whole words only ("fee" is not in "feel"). Spans are indices into the text as given.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

LEXICON_DIR = Path(__file__).with_name("lexicon")
SEVERITIES = ("error", "warning")
CHANNELS = ("sms", "email", "call", "field")
_LATIN = re.compile(r"[a-z0-9]")
_LENDER_PLACEHOLDER = re.compile(r"\{\{-?\s*lender\s*-?\}\}")
_WORD = "0-9a-z\u00c0-\u024f"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a text must not say (``span`` = where, in the text as given), or one element it lacks
    (``span`` None). ``severity`` "error" makes a message unsendable; "warning" is reported only."""

    rule: str
    severity: str
    span: tuple[int, int] | None
    message: str
    match: str = ""
    part: str = "body"


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised text and, for each of its characters, the index of the character it came from."""

    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.origin[start], self.origin[end - 1] + 1


@lru_cache(maxsize=8192)
def _fold(ch: str) -> str:
    """NFKC and case folding of one character, repeated until stable (so that normalising is idempotent)."""
    out = ch
    for _ in range(4):
        nxt = "".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", c).casefold()) for c in out)
        if nxt == out:
            break
        out = nxt
    return out


def normalise(text: str, *, compact: bool = False) -> Normalised:
    """NFKC + case folding, format characters (zero-width spaces, soft hyphens, BOM) dropped and whitespace
    runs as one space; ``compact`` drops whitespace and punctuation too (how Chinese phrases are matched)."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        for c in _fold(ch):
            if unicodedata.category(c) == "Cf":
                continue
            if c.isspace():
                if compact or (chars and chars[-1] == " "):
                    continue
                c = " "
            elif compact and unicodedata.category(c).startswith("P"):
                continue
            chars.append(c)
            origin.append(i)
    return Normalised("".join(chars), tuple(origin))


def _is_latin(phrase: str) -> bool:
    return _LATIN.search(phrase) is not None


def _phrase_regex(phrase: str) -> re.Pattern[str]:
    """A phrase as a regex over normalised text: Latin ones as whole words (boundaries where they start
    or end with a letter or digit), Chinese ones over the compact view."""
    if _is_latin(phrase):
        folded = normalise(phrase).text.strip()
        body = re.escape(folded).replace(r"\ ", " ")
        before = f"(?<![{_WORD}])" if re.match(f"[{_WORD}]", folded) else ""
        after = f"(?![{_WORD}])" if re.search(f"[{_WORD}]$", folded) else ""
        return re.compile(before + body + after)
    return re.compile(re.escape(normalise(phrase, compact=True).text))


_ANYTHING = re.compile("")


@lru_cache(maxsize=512)
def _any_of(regexes: tuple[re.Pattern[str], ...]) -> re.Pattern[str]:
    """One regex matching wherever any of ``regexes`` would; one that matches everywhere when they cannot be
    combined (a pattern with its own global flags), so the caller falls back to trying each."""
    try:
        return re.compile("|".join(f"(?:{rx.pattern})" for rx in regexes))
    except re.error:
        return _ANYTHING


@dataclass(frozen=True, slots=True)
class Matcher:
    """Phrases and patterns of one rule, compiled: ``spaced`` run on the spaced view, ``compact`` on the
    compact view."""

    spaced: tuple[re.Pattern[str], ...]
    compact: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, phrases: Iterable[str], patterns: Iterable[str] = ()) -> Matcher:
        spaced: list[re.Pattern[str]] = []
        compact: list[re.Pattern[str]] = []
        for p in phrases:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"lexicon phrase {p!r} is not a non-empty string")
            (spaced if _is_latin(p) else compact).append(_phrase_regex(p))
        spaced += [re.compile(p) for p in patterns]
        return cls(tuple(spaced), tuple(compact))

    def find(self, spaced: Normalised, compact: Normalised) -> list[tuple[tuple[int, int], str]]:
        """(span in the original text, normalised match) of every match. One combined search per view first:
        a clean text (the usual case) costs two regex searches, not one per phrase."""
        found = []
        for view, regexes in ((spaced, self.spaced), (compact, self.compact)):
            if not regexes or not _any_of(regexes).search(view.text):
                continue
            for rx in regexes:
                for m in rx.finditer(view.text):
                    if m.end() > m.start():
                        found.append((view.span(m.start(), m.end()), m.group()))
        return found


@dataclass(frozen=True, slots=True)
class Rule:
    rule: str
    severity: str
    message: str
    matcher: Matcher
    phrases: tuple[str, ...]
    channels: tuple[str, ...] = CHANNELS


@dataclass(frozen=True, slots=True)
class Lexicon:
    locale: str
    version: int
    forbidden: tuple[Rule, ...]
    required: tuple[Rule, ...]
    allow: Matcher

    @property
    def size(self) -> int:
        """How many forbidden phrases and patterns it holds."""
        return sum(len(r.matcher.spaced) + len(r.matcher.compact) for r in self.forbidden)


def _check_keys(where: str, table: dict[str, Any], allowed: set[str], needed: set[str]) -> None:
    if unknown := set(table) - allowed:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    if missing := needed - set(table):
        raise ValueError(f"{where}: missing keys {sorted(missing)}")


def parse_lexicon(data: dict[str, Any], where: str) -> Lexicon:
    """A lexicon from its TOML data; ValueError on anything malformed (a lexicon must never half-load)."""
    _check_keys(where, data, {"locale", "version", "forbidden", "required", "allow"},
                {"locale", "version", "forbidden", "required"})
    forbidden = []
    for i, r in enumerate(data["forbidden"]):
        _check_keys(f"{where} forbidden[{i}]", r, {"rule", "severity", "message", "phrases", "patterns"},
                    {"rule", "severity", "message"})
        if r["severity"] not in SEVERITIES:
            raise ValueError(f"{where} forbidden[{i}]: severity must be one of {SEVERITIES}")
        phrases = tuple(r.get("phrases", ()))
        forbidden.append(Rule(r["rule"], r["severity"], r["message"],
                              Matcher.of(phrases, r.get("patterns", ())), phrases))
    required = []
    for i, r in enumerate(data["required"]):
        _check_keys(f"{where} required[{i}]", r, {"rule", "message", "phrases", "channels"},
                    {"rule", "message", "phrases"})
        channels = tuple(r.get("channels", CHANNELS))
        if not set(channels) <= set(CHANNELS):
            raise ValueError(f"{where} required[{i}]: channels must be among {CHANNELS}")
        phrases = tuple(r["phrases"])
        required.append(Rule(r["rule"], "error", r["message"], Matcher.of(phrases), phrases, channels))
    allow = data.get("allow", {})
    _check_keys(f"{where} allow", allow, {"phrases"}, set())
    return Lexicon(str(data["locale"]), int(data["version"]), tuple(forbidden), tuple(required),
                   Matcher.of(allow.get("phrases", ())))


def load_lexicons(directory: Path = LEXICON_DIR) -> dict[str, Lexicon]:
    lexicons = {}
    for path in sorted(directory.glob("*.toml")):
        lexicon = parse_lexicon(tomllib.loads(path.read_text(encoding="utf-8")), path.name)
        if lexicon.locale != path.stem:
            raise ValueError(f"{path.name}: locale {lexicon.locale!r} does not match the file name")
        lexicons[lexicon.locale] = lexicon
    if not lexicons:
        raise ValueError(f"no lexicon in {directory}")
    return lexicons


LEXICONS: dict[str, Lexicon] = load_lexicons()


def lexicon_locale(locale: str) -> str:
    """The lexicon for a customer's locale: zh-* -> zh-CN, anything else -> en (as the templates)."""
    return "zh-CN" if locale.lower().startswith("zh") else "en"


def lint(text: str, locale: str, channel: str, *, lender: str | None = None, part: str = "body",
         required: bool = True) -> list[Finding]:
    """The findings on ``text`` (a template's source or a rendered message) for a customer of ``locale``
    on ``channel``, ordered by position; missing elements last. ``lender``: the lender's name the text must
    show; without it the text must contain the ``{{ lender }}`` placeholder (a template's source).
    ``required=False`` checks forbidden content only (an e-mail's subject)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    spaced, compact = normalise(text), normalise(text, compact=True)
    allowed = [span for lex in LEXICONS.values() for span, _ in lex.allow.find(spaced, compact)]
    findings: dict[tuple[str, tuple[int, int]], Finding] = {}
    for lex in LEXICONS.values():
        for rule in lex.forbidden:
            for span, matched in rule.matcher.find(spaced, compact):
                if any(a <= span[0] and span[1] <= b for a, b in allowed):
                    continue
                findings.setdefault((rule.rule, span), Finding(rule.rule, rule.severity, span, rule.message,
                                                               text[span[0]:span[1]] or matched, part))
    out = sorted(findings.values(), key=lambda f: (f.span or (0, 0), f.rule))
    if not required:
        return out
    if lender is not None:
        name = normalise(lender).text.strip()
        if not name or name not in spaced.text:
            out.append(Finding("lender", "error", None, f"the lender ({lender!r}) is not named", part=part))
    elif not _LENDER_PLACEHOLDER.search(text):
        out.append(Finding("lender", "error", None, "the lender is not named (no {{ lender }} placeholder)",
                           part=part))
    for rule in LEXICONS[lexicon_locale(locale)].required:
        if channel in rule.channels and not rule.matcher.find(spaced, compact):
            out.append(Finding(rule.rule, "error", None, rule.message, part=part))
    return out


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def describe(findings: Iterable[Finding]) -> str:
    """A short, one-line summary of findings (no message text beyond the matched phrase)."""
    return "; ".join(f"{f.part}: {f.rule}" + (f" {f.match!r} at {f.span[0]}" if f.span else " missing")
                     for f in findings)
