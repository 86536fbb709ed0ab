"""The notation appendix is the book's single source of notation.

``book/appendix/notation.md`` has book-wide sections ("General conventions",
"Learning"), one section per chapter (its heading carries ``{ref}`ch-...``),
and an "Overloads" table. These tests parse its tables and fail when

* one symbol has two different meanings in different rows or sections and is
  not listed in the Overloads table;
* a chapter of ``_toc.yml`` with code cells has no notation section;
* a symbol listed for a chapter does not occur in that chapter's text (a
  stale row);
* a symbol in the Overloads table is not actually listed with two meanings
  (a stale overload).
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTATION = ROOT / "book" / "appendix" / "notation.md"
sys.path.insert(0, str(ROOT / "tools"))
from toc import toc_files  # noqa: E402

#: Part II chapters in _toc.yml that are being written at the same time as this
#: test and have not yet added their notation section. Each entry is a promise:
#: the chapter adds its section and removes itself from this list.
PENDING: set[str] = set()

#: Book-wide sections: their symbols are shared and not checked against one chapter.
SHARED = {"General conventions", "Learning"}


# ------------------------------------------------------------------ parsing
def _split_top(text: str, seps: str) -> list[str]:
    """Split ``text`` at the characters in ``seps`` outside {}, (), [] groups."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(text):
        ch = text[i]
        if text.startswith(("\\langle", "\\rangle"), i):   # <u, v> is one group
            depth += 1 if text[i + 1] == "l" else -1
            cur += text[i:i + 7]
            i += 7
            continue
        if ch == "\\" and i + 1 < len(text):       # \{ \} \, and commands
            depth += {"{": 1, "}": -1}.get(text[i + 1], 0)
            cur += text[i:i + 2]
            i += 2
            continue
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        if ch in seps and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def normalize(tex: str) -> str:
    """A canonical form of LaTeX for comparing symbols and finding them in text."""
    tex = re.sub(r"\\(left|right|big|Big|bigl|bigr|Bigl|Bigr)\b", "", tex)
    tex = tex.replace("\\widehat", "\\hat").replace("\\widetilde", "\\tilde")
    for long, short in [("\\lVert", "\\|"), ("\\rVert", "\\|"), ("\\Vert", "\\|"),
                        ("\\lvert", "|"), ("\\rvert", "|")]:
        tex = tex.replace(long, short)
    tex = re.sub(r"\\[,;:! ]", "", tex)
    tex = re.sub(r"\s+", "", tex)
    tex = re.sub(r"([_^])\{(\\?\w)\}", r"\1\2", tex)   # x_{i} -> x_i
    return tex


def symbols_of(cell: str) -> list[str]:
    """The symbols named in a table's first cell, each in normalized form.

    Math spans are split at top-level commas and semicolons, and a
    definition ``a = ...`` keeps only ``a``; text outside math (``JVP``)
    counts as one symbol per comma-separated word.
    """
    out = []
    spans = re.findall(r"\$(.+?)\$", cell)
    for span in spans:
        for part in _split_top(span, ",;"):
            head = _split_top(part, "=")[0] if "=" in part else part
            head = re.split(r"\\in\b", head)[0]
            if head:
                out.append(normalize(head))
    rest = re.sub(r"\$.+?\$", "", cell)
    out += [w.strip() for w in rest.split(",") if w.strip()]
    return out


def parse_notation(text: str) -> list[dict]:
    """Rows ``{section, label, symbols, meaning, line}`` of every table."""
    rows, section, label = [], None, None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].strip()
            m = re.search(r"\{ref\}`(ch-[\w-]+)`", section)
            label = m.group(1) if m else None
            continue
        if not line.startswith("|") or re.match(r"^\|\s*-", line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "symbol":
            continue
        rows.append({"section": section, "label": label, "line": lineno,
                     "symbols": symbols_of(cells[0]),
                     "meaning": " ".join(cells[1].lower().split()) if len(cells) > 1
                     else "", "cells": cells})
    return rows


def chapter_files() -> dict[str, Path]:
    """Chapter label ``ch-...`` -> file, for the files of ``_toc.yml``."""
    out = {}
    for f in toc_files():
        path = ROOT / f"{f}.md"
        if path.exists():
            for lab in re.findall(r"^\((ch-[\w-]+)\)=", path.read_text(), flags=re.M):
                out[lab] = path
    return out


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return parse_notation(NOTATION.read_text())


def overloads(rows: list[dict]) -> set[str]:
    return {s for r in rows if r["section"] == "Overloads" for s in r["symbols"]}


# ------------------------------------------------------------------ the parser itself
def test_parser_splits_symbols_and_definitions():
    assert symbols_of(r"$\beta_1, \beta_2$") == [r"\beta_1", r"\beta_2"]
    assert symbols_of(r"$\gamma(u) = \min_i y_i \langle u, x_i \rangle$") == [r"\gamma(u)"]
    assert symbols_of(r"$S = \{(x_i, y_i)\}_{i=1}^n$") == ["S"]
    assert symbols_of(r"$\widehat{\mathcal{R}}_S(f)$") == [r"\hat{\mathcal{R}}_S(f)"]
    assert symbols_of("JVP, VJP") == ["JVP", "VJP"]
    table = "## A ({ref}`ch-x`)\n\n| symbol | meaning | in code |\n| --- | --- | --- |\n" \
            "| $a$ | one | |\n"
    (row,) = parse_notation(table)
    assert row["label"] == "ch-x" and row["symbols"] == ["a"] and row["meaning"] == "one"


# ------------------------------------------------------------------ the appendix
def test_one_symbol_one_meaning_unless_listed_as_an_overload(rows):
    meanings: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["section"] == "Overloads":
            continue
        for s in r["symbols"]:
            meanings[s][r["meaning"]].append(f"{r['section']} (line {r['line']})")
    allowed = overloads(rows)
    clashes = {s: dict(m) for s, m in meanings.items() if len(m) > 1 and s not in allowed}
    assert not clashes, f"symbols with two meanings, not in Overloads: {clashes}"


def test_overloads_table_lists_only_real_overloads(rows):
    meanings: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["section"] != "Overloads":
            for s in r["symbols"]:
                meanings[s].add(r["meaning"])
    stale = [s for s in overloads(rows) if len(meanings[s]) < 2]
    assert not stale, f"Overloads rows for symbols with one meaning: {stale}"


def test_every_chapter_with_code_has_a_notation_section(rows):
    labels = {r["label"] for r in rows if r["label"]}
    files = chapter_files()
    missing = []
    for f in toc_files():
        path = ROOT / f"{f}.md"
        if f in PENDING or not path.exists() or path == NOTATION:
            continue
        if "```{code-cell}" not in path.read_text():
            continue
        mine = {lab for lab, p in files.items() if p == path}
        if not mine & labels:
            missing.append(f)
    assert not missing, f"chapters with code cells but no notation section: {missing}"


def test_pending_allow_list_is_small_and_current():
    assert len(PENDING) <= 6
    assert PENDING <= set(toc_files()), "remove PENDING entries that left _toc.yml"
    assert not any(f.startswith("book/foundations/") for f in PENDING), \
        "every Part I chapter must have its notation section"


def test_every_chapter_symbol_occurs_in_its_chapter(rows):
    files = chapter_files()
    stale = []
    for r in rows:
        if r["section"] in SHARED or r["section"] == "Overloads" or not r["label"]:
            continue
        path = files.get(r["label"])
        assert path is not None, f"line {r['line']}: no chapter defines {r['label']}"
        raw = path.read_text()
        text = normalize(raw)
        for s in r["symbols"]:
            head = s.split("(")[0] if "(" in s else s
            if s in text or (head and head in text) or s in raw:
                continue
            stale.append(f"line {r['line']}: {s!r} not in {path.name}")
    assert not stale, "stale notation rows:\n" + "\n".join(stale)


def test_every_section_table_has_three_columns(rows):
    bad = [r["line"] for r in rows if r["section"] not in ("Overloads",)
           and r["section"] != "General conventions" and len(r["cells"]) != 3]
    assert not bad, f"rows without | symbol | meaning | in code |: lines {bad}"
