"""The student edition (``make student``) has no solution; the default
edition has every one, collapsed. Run after the builds (``pytest -m site``)."""
from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from toc import toc_files

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "_build"
STUDENT = ROOT / "_build" / "student" / "_build"
_START = re.compile(r"^(`{3,}|:{3,})\{(solution|solution-start)\}\s*(\S+)")


def solutions(text: str) -> list[tuple[str, str]]:
    """``(label, body)`` for each solution of a MyST page: the text of a
    ``{solution}`` block, or everything between ``solution-start`` and
    ``solution-end``."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = _START.match(lines[i])
        if not m:
            i += 1
            continue
        end = (lambda l: l.startswith("```{solution-end}")) if m.group(2) == "solution-start" \
            else (lambda l, f=m.group(1): l.rstrip() == f)
        j = i + 1
        while j < len(lines) and not end(lines[j]):
            j += 1
        out.append((m.group(3), "\n".join(lines[i + 1:j])))
        i = j + 1
    return out


def _prose(body: str) -> str:
    """The lines of a solution outside fenced blocks (code cells, nested
    directives) and option lines."""
    keep, fence = [], None
    for line in body.splitlines():
        s = line.strip()
        m = re.match(r"^(`{3,}|:{3,})(.*)$", s)
        if fence is not None:
            if s == fence:
                fence = None
            continue
        if m:
            if m.group(2).strip():
                fence = m.group(1)  # an opener: skip to its closing fence
            continue                # a lone fence closes the solution's header
        if not s.startswith(":"):
            keep.append(line)
    return "\n".join(keep)


def signature(body: str) -> str | None:
    """A run of six plain words from a solution's prose, to look for in a page
    (math, code and markup removed), or None if it has no such run."""
    # Cut the prose at every piece of markup, so that the six words are
    # contiguous in the page as well as in the source.
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", "|", _prose(body), flags=re.S)
    prose = re.sub(r"`[^`]*`|\{[^}]*\}|[*_()\[\]]", "|", prose)
    m = re.search(r"(?:\b[A-Za-z]{3,}\b[ ,\n]+){5}\b[A-Za-z]{3,}\b", prose)
    return re.sub(r"[\s,]+", " ", m.group(0)) if m else None


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.solution_divs = [], 0

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if "solution" in classes:
            self.solution_divs += 1

    def handle_data(self, data):
        self.parts.append(data)


def page(path: Path) -> _Text:
    p = _Text()
    p.feed(path.read_text(encoding="utf-8"))
    p.text = re.sub(r"[\s,]+", " ", " ".join(p.parts))
    return p


CHAPTERS = [d for d in toc_files() if solutions((ROOT / f"{d}.md").read_text())]


def test_some_chapters_have_solutions():
    assert len(CHAPTERS) >= 5


@pytest.mark.parametrize("doc", CHAPTERS)
def test_student_edition_has_no_solution_and_the_full_one_has_all(doc):
    sols = solutions((ROOT / f"{doc}.md").read_text())
    full, student = page(FULL / "html" / f"{doc}.html"), page(STUDENT / "html" / f"{doc}.html")
    assert student.solution_divs == 0, f"{doc}: a solution in the student edition"
    assert full.solution_divs >= len(sols), f"{doc}: solutions missing from the book"
    for label, body in sols:
        sig = signature(body)
        if sig is None:
            continue
        assert sig in full.text, f"{doc}: solution {label} ({sig!r}) not in the book"
        assert sig not in student.text, f"{doc}: solution {label} leaks into the student edition"
    # the exercises themselves stay
    assert "exercise" in (STUDENT / "html" / f"{doc}.html").read_text()


def test_student_pdf_has_no_solution():
    pdf = STUDENT / "latex" / "book.pdf"
    assert pdf.exists(), "run `make student` first"
    text = re.sub(r"\s+", " ", subprocess.run(["pdftotext", str(pdf), "-"], check=True,
                                              capture_output=True, text=True).stdout)
    full = re.sub(r"\s+", " ", subprocess.run(["pdftotext", str(FULL / "latex" / "book.pdf"),
                                               "-"], check=True, capture_output=True,
                                              text=True).stdout)
    found = 0
    for doc in CHAPTERS:
        for label, body in solutions((ROOT / f"{doc}.md").read_text()):
            sig = signature(body)
            if sig and sig in full:
                found += 1
                assert sig not in text, f"{doc}: solution {label} is in the student PDF"
    assert found >= 10, f"only {found} solution texts found in the full PDF"
