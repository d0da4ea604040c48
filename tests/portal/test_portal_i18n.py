"""The portal's words (services/plans/portal/i18n.py): pure."""

from __future__ import annotations

import re
import string
from datetime import date

import pytest

from services.plans.portal import i18n


def test_both_languages_have_the_same_keys_and_fields() -> None:
    en, zh = i18n.STRINGS["en"], i18n.STRINGS["zh-CN"]
    assert en.keys() == zh.keys()
    for key in en:
        fields = {name for _, name, _, _ in string.Formatter().parse(en[key]) if name}
        assert fields == {name for _, name, _, _ in string.Formatter().parse(zh[key]) if name}, key


def test_every_key_used_by_the_templates_and_routes_exists() -> None:
    from pathlib import Path

    root = Path(i18n.__file__).parent
    used: set[str] = set()
    for template in (root / "templates").glob("*.html"):
        used |= set(re.findall(r'\bt\("([a-z_]*[a-z])"', template.read_text()))
    routes = (root / "routes.py").read_text()
    used |= set(re.findall(r'i18n\.text\([a-z_]+, "([a-z_]+)"', routes))
    assert used, "nothing found: the pattern is wrong"
    assert used <= i18n.STRINGS["en"].keys(), used - i18n.STRINGS["en"].keys()
    # pages named by kind: <kind>_title and <kind>_text
    for kind in re.findall(r'_message\([a-z_]+, "([a-z_]+)"', routes) + re.findall(r'_done\(row, "([a-z_]+)"', routes):
        assert {f"{kind}_title", f"{kind}_text"} <= i18n.STRINGS["en"].keys(), kind


@pytest.mark.parametrize(("contact", "chosen", "expected"), [
    ("en", None, "en"), ("zh-CN", None, "zh-CN"), (None, None, "zh-CN"), ("fr", None, "zh-CN"),
    ("zh-CN", "en", "en"), ("en", "zh-CN", "zh-CN"), ("en", "xx", "en"), (42, None, "zh-CN")])
def test_the_language_is_the_choice_else_the_contact_locale_else_chinese(contact: object, chosen: str | None,
                                                                         expected: str) -> None:
    assert i18n.locale_of(contact, chosen) == expected


def test_text_fills_fields_and_dates_read_naturally() -> None:
    assert i18n.text("en", "account_ref", ref="1234") == "Account ending 1234"
    assert i18n.text("zh-CN", "account_ref", ref="1234") == "尾号1234账户"
    assert i18n.long_date("en", date(2026, 2, 3)) == "3 Feb 2026"
    assert i18n.long_date("zh-CN", date(2026, 2, 3)) == "2026年2月3日"
    assert i18n.product_name("zh-CN", "credit-card") == "信用卡"
    assert i18n.product_name("en", "boat") == "boat"
    assert i18n.other_locale("en") == "zh-CN" and i18n.other_locale("zh-CN") == "en"
