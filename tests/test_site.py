"""Checks of the built book, run by ``make check`` after the HTML and PDF builds.

They read ``_build/html`` and ``_build/latex`` and fail (never skip) when the
build is missing. Select them with ``pytest -m site``.
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from site_helpers import chromium, serve, visit
from toc import notebook_files, toc_files

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
LATEX = ROOT / "_build" / "latex"


def chapter_title(doc: str) -> str:
    for line in (ROOT / f"{doc}.md").read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"{doc}.md has no '# ' title")


class _Collect(HTMLParser):
    """Collect ids, hrefs, and images with their enclosing figure state."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.images: list[dict] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, is_figure)
        self._in_article = 0
        self._figures: list[dict] = []
        self._in_caption = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag in ("a", "link") and a.get("href"):
            self.hrefs.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.hrefs.append(a["src"])
        if tag == "article":
            self._in_article += 1
        if tag == "figure":
            self._figures.append({"caption": False, "caption_text": "", "images": []})
        if tag == "figcaption" and self._figures:
            self._figures[-1]["caption"] = True
            self._in_caption += 1
        if tag == "img" and self._in_article:
            img = {"src": a.get("src", ""), "alt": (a.get("alt") or "").strip(),
                   "in_figure": bool(self._figures), "figure": None}
            if self._figures:
                img["figure"] = self._figures[-1]
            self.images.append(img)

    def handle_endtag(self, tag):
        if tag == "article":
            self._in_article -= 1
        if tag == "figure" and self._figures:
            self._figures.pop()
        if tag == "figcaption" and self._in_caption:
            self._in_caption -= 1

    def handle_data(self, data):
        if self._in_caption and self._figures:
            self._figures[-1]["caption_text"] += data


@functools.cache
def parsed(page: Path) -> _Collect:
    p = _Collect()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def test_build_exists():
    assert (HTML / "index.html").exists(), "run `make book` first"
    assert (LATEX / "book.pdf").exists(), "run `make pdf` first"


@pytest.mark.parametrize("doc", toc_files())
def test_every_toc_page_has_html(doc):
    assert (HTML / f"{doc}.html").exists(), f"no HTML page for {doc}"


@functools.cache
def pdf_text() -> str:
    out = subprocess.run(["pdftotext", "-layout", str(LATEX / "book.pdf"), "-"],
                         check=True, capture_output=True, text=True).stdout
    return re.sub(r"\s+", " ", out).lower()


@pytest.mark.parametrize("doc", toc_files()[1:])
def test_every_chapter_is_in_the_pdf(doc):
    tex = (LATEX / "book.tex").read_text(encoding="utf-8")
    title = chapter_title(doc)
    if doc == "book/bibliography":  # typeset as LaTeX's own bibliography
        assert tex.count(r"\begin{sphinxthebibliography}") == 1
        assert r"\bibitem" in tex
        return
    plain = title.replace("`", "")
    chapters = [re.sub(r"\\[a-zA-Z]+|[{}]", "", c)
                for c in re.findall(r"^\\chapter\{(.*)\}$", tex, flags=re.M)]
    assert plain.replace("&", "\\&") in chapters or plain in chapters, (
        f"no \\chapter for {title!r} in book.tex: {chapters}")
    assert plain.lower() in pdf_text(), f"{title!r} not found in the PDF's text"


def test_latex_log_is_clean():
    log = (LATEX / "book.log").read_text(encoding="utf-8", errors="replace")
    for problem in ("There were undefined references", "Citation `",
                    "Missing character", "undefined on input line"):
        assert problem not in log, f"book.log: {problem!r}"


def test_pdf_has_a_real_index_and_no_module_index():
    """The back-of-book index is printed and fed by the chapters' entries."""
    tex = (LATEX / "book.tex").read_text(encoding="utf-8")
    assert r"\printindex" in tex
    ind = (LATEX / "book.ind").read_text(encoding="utf-8", errors="replace")
    entries = ind.count(r"\item ")
    assert entries >= 15 * len(notebook_files()) // 2, f"the index has {entries} entries"
    assert "Python Module Index" not in pdf_text().title()


def test_html_index_lists_the_key_terms():
    page = (HTML / "genindex.html").read_text(encoding="utf-8")
    for term in ("perceptron", "stochastic gradient descent", "double descent"):
        assert term in page.lower(), f"genindex.html lacks {term!r}"


@pytest.mark.parametrize("doc", notebook_files())
def test_no_cell_raised(doc):
    nb = HTML.parent / "jupyter_execute" / f"{doc}.ipynb"
    assert nb.exists(), f"no executed notebook for {doc}"
    cells = json.loads(nb.read_text())["cells"]
    for cell in cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", (
                f"{doc}: a cell raised {out.get('ename')}: {out.get('evalue')}")
            if out["output_type"] == "stream":
                assert out["name"] != "stderr", f"{doc}: stderr: {out['text'][:300]}"
    assert "Traceback (most recent call last)" not in (HTML / f"{doc}.html").read_text()


@pytest.mark.parametrize("doc", notebook_files())
def test_chapter_executes_in_under_a_minute(doc):
    from jupyter_cache import get_cache

    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    rel = Path(f"{doc}.md").parts  # also matches copies made by tools/build_one.py
    records = [r for r in cache.list_cache_records() if Path(r.uri).parts[-len(rel):] == rel]
    assert records, f"{doc} has no execution record"
    seconds = max(records, key=lambda r: r.created).data["execution_seconds"]
    assert seconds < 60, f"{doc} took {seconds:.1f} s to execute"


def _html_pages() -> list[Path]:
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts)


def test_internal_links_resolve():
    broken = []
    for page in _html_pages():
        for href in parsed(page).hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(HTML)} -> {href}")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and frag not in parsed(target).ids:
                broken.append(f"{page.relative_to(HTML)} -> {href} (no #{frag})")
    assert not broken, "broken links:\n" + "\n".join(broken[:50])


@pytest.mark.parametrize("doc", toc_files())
def test_figures_have_caption_and_alt_text(doc):
    p = parsed(HTML / f"{doc}.html")
    for img in p.images:
        assert img["alt"], f"{doc}: image {img['src']} has no alt text"
        assert img["in_figure"] and img["figure"]["caption"], (
            f"{doc}: image {img['src']} is not in a captioned figure")
        assert not alt_repeats_caption(img["alt"], img["figure"]["caption_text"]), (
            f"{doc}: the alt text of {img['src']} only repeats its caption; say what "
            f"the figure shows (axes, trend, point): {img['alt']!r}")


def _words(text: str) -> list[str]:
    text = re.sub(r"^\s*(fig\.|figure)\s*([a-z]\.)?[\d.]+:?", "", text.strip(),
                  flags=re.I)
    return re.findall(r"[a-z0-9]+", text.lower())


def alt_repeats_caption(alt: str, caption: str, extra_words: int = 5) -> bool:
    """True if ``alt`` adds fewer than ``extra_words`` words to (part of) the caption.

    Compares the words of the two texts, without case, punctuation, markup or
    the "Fig. 3.1" number: an alt text equal to the caption, contained in it, or
    the caption with a few words around it says nothing the caption does not.
    """
    a, c = f" {' '.join(_words(alt))} ", f" {' '.join(_words(caption))} "
    if not a.strip() or not c.strip():
        return False
    if a in c:  # equal to the caption, or to a part of it
        return True
    return c in a and len(a.split()) - len(c.split()) < extra_words


@pytest.mark.parametrize("alt, caption, repeats", [
    ("Training loss of the MLP.", "Fig. 3.1 Training loss of the MLP", True),
    ("Training loss", "Fig. 3.1 Training loss of the MLP per epoch.", True),
    ("Plot: training loss of the MLP", "Fig. 3.1 Training loss of the MLP", True),
    ("Loss against epoch: it falls fast, then flattens onto a plateau.",
     "Fig. 3.1 Training loss of the MLP", False),
    ("Figure showing the training loss of the MLP: it falls, then flattens out "
     "onto a plateau", "Fig. 3.1 Training loss of the MLP", False),
    ("Figure A.2: Training loss", "Fig. A.2 Training loss", True),
    ("Raining", "Fig. 3.1 Training loss", False),  # whole words only
])
def test_alt_repeats_caption(alt, caption, repeats):
    assert alt_repeats_caption(alt, caption) is repeats


# --- In a real browser -----------------------------------------------------

@pytest.fixture(scope="module")
def server():
    with serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.mark.parametrize("doc", toc_files())
def test_page_in_chromium(doc, server, browser):
    page, errors, outside = visit(browser, f"{server}/{doc}.html")
    has_math = 'class="math' in (HTML / f"{doc}.html").read_text()
    if has_math:
        page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.promise"
            " && document.querySelectorAll('mjx-container').length > 0",
            timeout=30_000)
        page.evaluate("MathJax.startup.promise")
        assert page.locator("mjx-merror").count() == 0, (
            f"{doc}: MathJax could not typeset: "
            f"{page.locator('mjx-merror').first.get_attribute('data-mjx-error')}")
        assert page.locator("mjx-container").count() > 0
    page.wait_for_load_state("networkidle")
    page.close()
    assert not outside, f"{doc}: requests left localhost: {outside[:5]}"
    assert not errors, f"{doc}: console errors: {errors[:5]}"


def test_search_finds_a_chapter(server, browser):
    page, errors, outside = visit(browser, f"{server}/search.html?q=perceptron")
    page.wait_for_selector("#search-results li", timeout=30_000)
    hits = page.locator("#search-results li a").all_inner_texts()
    page.close()
    assert any("history" in h.lower() for h in hits), hits
    assert not outside and not errors


@pytest.mark.parametrize("doc", notebook_files())
def test_chapter_has_a_binder_launch_button(doc):
    html = (HTML / f"{doc}.html").read_text(encoding="utf-8")
    m = re.search(r'href="(https://mybinder\.org/v2/gh/[^"]+)"', html)
    assert m, f"{doc}: no Binder launch button"
    assert m.group(1).endswith(f"urlpath=lab/tree/{doc}.md"), m.group(1)
