"""Accessibility of the built book (WCAG 2.1 AA), run by ``make check``.

axe-core (installed by ``make`` from npm into ``_build/axe``, never fetched here)
is injected into every page of the site in headless Chromium, in the light and
the dark theme, as the page loads and again with every hidden code cell and
collapsed solution opened. A violation of impact "serious" or "critical" fails
the test; "moderate" and "minor" ones are written to ``_build/a11y-report.md``
and summarized in a warning. Further checks: every formula carries MathJax's
assistive MathML; a chapter is usable with the keyboard alone, with a visible
focus ring on every tab stop; the PDF names its title, author and language,
its outline lists every heading and its internal links land on its pages.

The site is ``$DLBOOK_SITE`` (default ``_build/html``; a one-chapter preview
``_build/one/<slug>/_build/html`` works too); its PDF is the sibling
``latex/book.pdf``. Select these tests with ``pytest -m site``.
"""
from __future__ import annotations

import collections
import functools
import html
import os
import re
import subprocess
import warnings
import zlib
from pathlib import Path

import pytest
import yaml
from site_helpers import chromium, serve, visit, wait_for_math

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("DLBOOK_SITE", ROOT / "_build" / "html")).resolve()
PDF = SITE.parent / "latex" / "book.pdf"
AXE = ROOT / "_build" / "axe" / "axe.min.js"
REPORT = Path(os.environ.get("DLBOOK_A11Y_REPORT", ROOT / "_build" / "a11y-report.md"))
THEMES = ("light", "dark")
FAIL = ("serious", "critical")
CHAPTER = "book/foundations/training"  # the page the keyboard test walks through


def _pages() -> list[str]:
    if not SITE.is_dir():
        return []
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


PAGES = _pages()


def test_site_and_axe_exist():
    assert (SITE / "index.html").exists(), f"no built site at {SITE}: run `make book`"
    axe = AXE.relative_to(ROOT)
    assert AXE.exists(), f"no {axe}: run `make {axe}`"
    assert len(PAGES) >= 5, f"only {len(PAGES)} pages in {SITE}"


@pytest.fixture(scope="module")
def server():
    with serve(SITE) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _theme_script(theme: str) -> str:
    # pydata-sphinx-theme reads the reader's choice from localStorage "mode".
    return (f"localStorage.setItem('mode', '{theme}');"
            f"localStorage.setItem('theme', '{theme}');")


def _open(browser, server: str, page_path: str, theme: str = "light"):
    page, errors, outside = visit(browser, f"{server}/{page_path}",
                                  init_script=_theme_script(theme),
                                  viewport={"width": 1280, "height": 900},
                                  color_scheme=theme)
    if page.locator(".math").count():
        wait_for_math(page)
    # Every resource is local (visit() aborts any other): once the fonts are in
    # and two frames are drawn, the page is what a reader sees.
    page.evaluate("document.fonts.ready.then(() => new Promise(r =>"
                  " requestAnimationFrame(() => requestAnimationFrame(r))))")
    actual = page.evaluate("document.documentElement.dataset.theme")
    assert actual == theme, f"{page_path}: asked for the {theme} theme, got {actual}"
    return page, errors, outside


# --- axe-core on every page, in both themes --------------------------------

_FINDINGS: list[dict] = []  # moderate and minor violations, for the report


def _target(node: dict) -> str:
    return " ".join(map(str, node["target"]))


def _describe(v: dict, limit: int = 5) -> str:
    """One violation: its rule, impact and the first ``limit`` nodes."""
    nodes = "\n".join(f"      {_target(n)}: {n['html'][:160]}\n"
                      f"        {n.get('failureSummary', '').splitlines()[-1:]}"
                      for n in v["nodes"][:limit])
    n = len(v["nodes"])
    more = f"\n      ... and {n - limit} more" if n > limit else ""
    return f"  [{v['impact']}] {v['id']} ({n} nodes): {v['help']}\n{nodes}{more}"


def _write_report() -> str:
    by_rule: dict[str, list[dict]] = collections.defaultdict(list)
    for f in _FINDINGS:
        by_rule[f["id"]].append(f)
    lines = ["# Accessibility report (axe-core, moderate and minor findings)", "",
             f"Site: `{SITE}`. Serious and critical violations fail"
             " `tests/test_a11y.py` and are not listed here.", ""]
    if not by_rule:
        lines.append("No moderate or minor violations.")
    for rule, hits in sorted(by_rule.items()):
        lines += [f"## {rule} ({hits[0]['impact']}): {hits[0]['help']}", "",
                  hits[0]["helpUrl"], ""]
        for h in hits:
            targets = ", ".join(_target(n) for n in h["nodes"][:5])
            lines.append(f"- {h['page']} ({h['theme']}): {len(h['nodes'])} nodes: "
                         f"`{targets}`")
        lines.append("")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    counts = collections.Counter({r: sum(len(h["nodes"]) for h in hs)
                                  for r, hs in by_rule.items()})
    return ", ".join(f"{r}: {n}" for r, n in counts.most_common()) or "none"


@pytest.fixture(scope="module")
def report():
    yield _FINDINGS
    summary = _write_report()
    warnings.warn(f"axe moderate/minor findings ({summary}); see {REPORT}",
                  stacklevel=1)


EXPAND = """() => {
    document.querySelectorAll('details:not([open])').forEach(d => { d.open = true; });
    document.querySelectorAll('button.toggle-button[aria-expanded="false"]')
        .forEach(b => b.click());
    return document.querySelectorAll('button.toggle-button[aria-expanded="false"]')
        .length; }"""


def run_axe(page) -> list[dict]:
    """Run every axe rule that is not experimental; return the violations."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        "async () => { const r = await axe.run(document, "
        "{resultTypes: ['violations']}); return r.violations; }")


def _axe_as_loaded_and_expanded(page) -> list[dict]:
    """The page as it loads, then with every hidden cell and solution shown."""
    violations = run_axe(page)
    # Check the expanded page as it ends up, not half-way through the fade-in
    # of a toggled cell (colours mid-transition are not what a reader sees).
    page.add_style_tag(content="*, *::before, *::after { transition: none !important;"
                               " animation: none !important; }")
    assert page.evaluate(EXPAND) == 0, "a collapsed solution did not open"
    page.wait_for_timeout(500)
    seen = {(v["id"], _target(n)) for v in violations for n in v["nodes"]}
    for v in run_axe(page):
        new = [n for n in v["nodes"] if (v["id"], _target(n)) not in seen]
        if new:
            violations.append({**v, "nodes": new, "help": v["help"] + " (expanded)"})
    return violations


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("page_path", PAGES)
def test_axe(page_path, theme, server, browser, report):
    page, _, _ = _open(browser, server, page_path, theme)
    try:
        violations = _axe_as_loaded_and_expanded(page)
    finally:
        page.close()
    bad = [v for v in violations if v["impact"] in FAIL]
    report.extend({**v, "page": page_path, "theme": theme}
                  for v in violations if v["impact"] not in FAIL)
    assert not bad, (f"{page_path} ({theme} theme): {len(bad)} serious/critical axe "
                     "violations:\n" + "\n".join(_describe(v) for v in bad))


# --- formulas are read out ---------------------------------------------------

MATH_PAGES = [p for p in PAGES
              if 'class="math' in (SITE / p).read_text(encoding="utf-8")]


@pytest.mark.parametrize("page_path", MATH_PAGES)
def test_every_formula_has_assistive_mathml(page_path, server, browser):
    page, _, _ = _open(browser, server, page_path)
    counts = page.evaluate("""() => {
        const c = [...document.querySelectorAll('mjx-container')];
        return {formulas: document.querySelectorAll('.math').length,
                containers: c.length,
                mml: c.filter(x => {
                    const m = x.querySelector(':scope > mjx-assistive-mml > math');
                    return m && m.children.length > 0; }).length,
                hidden: c.filter(x => x.querySelector(
                    ':scope > mjx-math[aria-hidden="true"]')).length};
    }""")
    page.close()
    assert counts["containers"] >= counts["formulas"] > 0, counts
    assert counts["mml"] == counts["containers"], (
        f"{page_path}: {counts['containers'] - counts['mml']} formulas without "
        f"assistive MathML: {counts}")
    assert counts["hidden"] == counts["containers"], (
        f"{page_path}: the visual rendering is not hidden from screen readers "
        f"(it would be read twice): {counts}")


# --- keyboard only -----------------------------------------------------------

def _focus_by_tab(page, selector: str, limit: int = 1500,
                  no_ring: list[str] | None = None) -> int:
    """Press Tab until an element matching ``selector`` has focus.

    Returns the number of presses; fails if ``selector`` is never reached.
    Each focused element without a visible focus indicator (WCAG 2.4.7) on the
    way is appended to ``no_ring``.
    """
    seen = []
    no_ring = [] if no_ring is None else no_ring
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        here = page.evaluate("""sel => { const a = document.activeElement;
            const s = getComputedStyle(a);
            return {hit: a.matches(sel), tag: a.tagName,
                    ring: s.outlineStyle !== 'none' || s.boxShadow !== 'none',
                    text: (a.getAttribute('aria-label') || a.innerText || '').trim()
                          .slice(0, 40)}; }""", selector)
        seen.append(f"{here['tag']}:{here['text']}")
        if not here["ring"]:
            no_ring.append(seen[-1])
        if here["hit"]:
            return presses
    raise AssertionError(f"Tab never reached {selector!r}; focused: {seen[-20:]}")


def _reload(page) -> None:
    page.goto(page.url.split("#")[0], wait_until="load")
    if page.locator(".math").count():
        wait_for_math(page)


def test_chapter_is_usable_with_the_keyboard(server, browser):
    page_path = f"{CHAPTER}.html"
    assert page_path in PAGES, f"{CHAPTER} is not in the site"
    page, errors, outside = _open(browser, server, page_path)
    no_ring: list[str] = []  # tab stops that do not show that they have focus
    try:
        # A collapsed solution: Enter on its toggle opens it, Space closes it.
        solution = page.locator(".solution.dropdown").first
        assert solution.count(), "no collapsed solution on the page"
        content = solution.locator(".admonition-title ~ *").first
        _focus_by_tab(page, ".solution.dropdown button.toggle-button", no_ring=no_ring)
        assert not content.is_visible()
        page.keyboard.press("Enter")
        content.wait_for(state="visible", timeout=5_000)
        assert page.evaluate(
            "document.activeElement.getAttribute('aria-expanded')") == "true"
        page.keyboard.press("Space")
        content.wait_for(state="hidden", timeout=5_000)

        # A hidden code cell: Enter on "Show code cell source" shows the code.
        _reload(page)
        cell = page.locator("details.hide.above-input").first
        assert cell.count(), "no hidden code cell on the page"
        _focus_by_tab(page, "details.hide.above-input > summary", no_ring=no_ring)
        assert cell.get_attribute("open") is None
        page.keyboard.press("Enter")
        cell.locator(".cell_input").first.wait_for(state="visible", timeout=5_000)
        assert cell.get_attribute("open") is not None

        # The launch button: Enter opens its menu, Tab reaches the Binder link,
        # Escape closes the menu again.
        _reload(page)
        binder = page.locator(".dropdown-launch-buttons a[href*='mybinder.org']").first
        _focus_by_tab(page, ".dropdown-launch-buttons > button", no_ring=no_ring)
        assert not binder.is_visible()
        page.keyboard.press("Enter")
        binder.wait_for(state="visible", timeout=5_000)
        _focus_by_tab(page, ".dropdown-launch-buttons a[href*='mybinder.org']",
                      limit=5, no_ring=no_ring)
        page.keyboard.press("Escape")
        binder.wait_for(state="hidden", timeout=5_000)
    finally:
        page.close()
    assert not no_ring, f"focus is not visible on: {sorted(set(no_ring))[:10]}"
    assert not outside and not errors, (outside, errors)


# --- PDF ---------------------------------------------------------------------
# Not a tagged PDF (LaTeX cannot make one yet); what it offers a screen reader
# is its document information, language, outline and links (see README).

def _pdf_streams(raw: bytes):
    """The PDF's bytes, then each Flate-compressed stream (object streams too)."""
    yield raw
    for m in re.finditer(rb"stream\r?\n", raw):
        end = raw.find(b"endstream", m.end())
        try:
            yield zlib.decompress(raw[m.end():end])
        except zlib.error:
            continue


@functools.cache
def _pdf_xml() -> str:
    return subprocess.run(["pdftohtml", "-xml", "-i", "-stdout", "-q", str(PDF)],
                          check=True, capture_output=True, text=True).stdout


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_pdf_has_title_author_and_language():
    assert PDF.exists(), f"no {PDF}: run `make pdf`"
    info = subprocess.run(["pdfinfo", str(PDF)], check=True, capture_output=True,
                          text=True).stdout
    fields = dict(re.findall(r"^(\w[\w ]*?):\s+(.*)$", info, flags=re.M))
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert fields.get("Title") == config["title"], fields
    assert fields.get("Author") == config["author"], fields
    langs = {m.group(1) for chunk in _pdf_streams(PDF.read_bytes())
             for m in re.finditer(rb"/Lang\s*\(([^)]*)\)", chunk)}
    assert langs == {b"en"}, f"the PDF's /Lang is {langs or 'missing'}"


def test_pdf_outline_lists_every_heading():
    tex = (PDF.parent / "book.tex").read_text(encoding="utf-8")
    heads = re.findall(r"^\\(?:part|chapter|section|subsection)\*?\{(.*)\}", tex,
                       flags=re.M)
    xml = _pdf_xml()
    assert "<outline>" in xml, "the PDF has no outline (bookmarks)"
    items = [_key(html.unescape(t)) for t in
             re.findall(r"<item[^>]*>(.*?)</item>", xml[xml.index("<outline>"):])]
    missing = []
    for h in heads:
        title = _key(re.sub(r"\\[a-zA-Z]+\*?|\\[()\[\]]", "", h.split("}\\")[0]))
        if not any(item.endswith(title) for item in items):
            missing.append(h)
    assert not missing, f"headings missing from the PDF outline: {missing[:10]}"
    assert len(items) >= len(heads) > 5, (len(items), len(heads))
    assert any(item.endswith("bibliography") for item in items), "no Bibliography"


def test_pdf_internal_links_resolve():
    xml = _pdf_xml()
    pages = int(re.search(r"^Pages:\s+(\d+)", subprocess.run(
        ["pdfinfo", str(PDF)], check=True, capture_output=True,
        text=True).stdout, flags=re.M).group(1))
    targets = [int(n) for n in re.findall(r'<a href="[^"#]*\.html#(\d+)"', xml)]
    assert len(targets) > 20, f"only {len(targets)} internal links in the PDF"
    bad = [n for n in targets if not 1 <= n <= pages]
    assert not bad, f"links to pages outside 1..{pages}: {bad[:10]}"
