"""The portal's browser tests' tools: Debian's chromium through Playwright, tabs that record console and page
errors, screenshots under ``test-output/portal/``, and the checks each page passes (labels, contrast, width)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "portal"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
USED_LINK_ERROR = re.compile(r"Failed to load resource: the server responded with a status of 410")

# every text element against its effective background: WCAG's relative luminance and contrast ratio
CONTRAST_FAILURES = """() => {
  const lum = (rgb) => { const [r, g, b] = rgb.map(c => { c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const parse = (s) => (s.match(/[0-9.]+/g) || []).map(Number);
  const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e)
      .backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3); }
    return [255, 255, 255]; };
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === 'hidden' || style.display === 'none' || el.offsetWidth <= 1) continue;
    const a = lum(parse(style.color).slice(0, 3)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) failures.push(el.tagName + ' ' + el.textContent.trim().slice(0, 30) + ' ' + ratio.toFixed(2));
  }
  return failures; }"""

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
  .filter(el => !(el.id && document.querySelector(`label[for="${el.id}"]`)) && !el.getAttribute('aria-label'))
  .map(el => el.name)"""


@dataclass
class Tab:
    """A browser tab that records console and page errors; ``expected`` errors are allowed (and required)."""

    page: Any
    name: str
    errors: list[str] = field(default_factory=list)

    async def shot(self, step: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{self.name}-{step}.png"), full_page=True)

    async def accessible(self) -> None:
        """Labels on every input, text contrast of at least 4.5:1, nothing wider than the screen."""
        assert await self.page.evaluate(UNLABELLED) == []
        assert await self.page.evaluate(CONTRAST_FAILURES) == []
        width = self.page.viewport_size["width"]
        assert await self.page.evaluate("document.documentElement.scrollWidth") <= width

    def assert_clean(self, *expected: re.Pattern[str]) -> None:
        unexpected = [e for e in self.errors if not any(p.search(e) for p in expected)]
        assert unexpected == [], unexpected
        for pattern in expected:
            assert any(pattern.search(e) for e in self.errors), (pattern, self.errors)


async def sign_in(tab: Tab, link: str, *, answer: str = "002X", wrong_first: bool = False) -> None:
    page = tab.page
    await page.goto(link)
    await tab.shot("1-link")
    await page.get_by_role("button").click()
    await page.wait_for_url("**/portal/verify")
    await tab.accessible()
    await tab.shot("2-verify")
    if wrong_first:
        await page.get_by_label(re.compile("身份证号码后 4 位|ID number")).fill("1234")
        await page.get_by_role("button").click()
        error = page.locator("#answer-error")
        assert re.search(r"4", await error.inner_text())
        assert "answer-error" in (await page.locator("#answer").get_attribute("aria-describedby") or "")
        assert "1,234.56" not in await page.content()
        await tab.shot("3-wrong-answer")
    await page.get_by_label(re.compile("身份证号码后 4 位|ID number")).fill(answer)
    await page.get_by_role("button").click()
    await page.wait_for_url("**/portal/account")


