#!/usr/bin/env python3
"""Check the book's sources for what a build does not catch, or catches
without saying where: each problem is reported as ``file:line: message``.

* imports that break the book's order: a chapter, or a ``dlbook`` module,
  importing the module of a later chapter (``tools/toc.py`` says which
  chapter owns which module);
* figures without a caption, a label or alt text, and alt text that types a
  number (alt text describes shapes and trends);
* labels defined twice anywhere in the book;
* exercises without a solution;
* guarded claims (``assert`` in a ``remove-cell`` cell) without a message.

Usage: python tools/lint_book.py   (exit 1 when it finds a problem)
       python tools/lint_book.py --report   (index entries, guarded claims and
       glued values per chapter)
"""
from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml
from toc import SHARED_MODULES, module_ranks, toc_files

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "code" / "dlbook"


@dataclass(frozen=True)
class Cell:
    """A code cell of a MyST notebook: its first source line, options, code."""

    line: int          # 1-based line of the first line of code
    options: dict
    source: str
    fence: int = 0     # 1-based line of the ```{code-cell} fence


_FENCE = re.compile(r"^(`{3,}|:{3,})\s*\{([\w:-]+)\}\s*(.*)$")


def code_cells(text: str) -> list[Cell]:
    """The ``{code-cell}`` blocks of a MyST notebook with their options
    (``:tags:`` lines and the ``---`` YAML header)."""
    lines, cells, i = text.splitlines(), [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not (m and m.group(2) == "code-cell"):
            i += 1
            continue
        fence, fence_line, i = m.group(1), i + 1, i + 1
        opts: dict = {}
        if i < len(lines) and lines[i].strip() == "---":
            end = lines.index("---", i + 1)
            opts = yaml.safe_load("\n".join(lines[i + 1:end])) or {}
            i = end + 1
        while i < len(lines) and lines[i].startswith(":") and not lines[i].startswith(fence):
            key, _, value = lines[i][1:].partition(":")
            opts[key.strip()] = yaml.safe_load(value.strip())
            i += 1
        start, body = i, []
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        cells.append(Cell(start + 1, opts, "\n".join(body), fence_line))
        i += 1
    return cells


_MAGIC = re.compile(r"^\s*(%|!(?!=))")


def _without_magics(source: str) -> str:
    """``source`` with IPython magics and shell escapes blanked (not ``!=``)."""
    return "\n".join("" if _MAGIC.match(l) else l for l in source.splitlines())


def dlbook_imports(source: str) -> list[tuple[int, str]]:
    """``(line, top-level module)`` for every ``dlbook`` import in ``source``
    (absolute imports; IPython magics are skipped)."""
    src = _without_magics(source)
    out = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "dlbook" and len(parts) > 1:
                    out.append((node.lineno, parts[1]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "dlbook":
                continue
            if len(parts) > 1:
                out.append((node.lineno, parts[1]))
            else:
                out += [(node.lineno, a.name) for a in node.names]
    return out


def _module_of(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def check_import_order() -> list[str]:
    """Chapters and modules import only shared machinery and modules of
    their own or earlier chapters."""
    ranks, problems = module_ranks(ROOT), []
    order = [Path(f).name for f in toc_files(ROOT)]
    for py in sorted(PKG.rglob("*.py")):
        mod = _module_of(py)
        if mod in ("__init__",) or py.parent.name == "corpora":
            continue
        if mod not in ranks and mod not in SHARED_MODULES:
            problems.append(f"{py.relative_to(ROOT)}:1: module dlbook.{mod} belongs "
                            "to no chapter (add it to CHAPTER_MODULES in tools/toc.py)")
            continue
        mine = -1 if mod in SHARED_MODULES else ranks[mod]
        for line, other in dlbook_imports(py.read_text()):
            theirs = -1 if other in SHARED_MODULES else ranks.get(other, 10**6)
            if other != mod and theirs > mine:
                what = "shared machinery" if mine < 0 else f"an earlier chapter's module"
                problems.append(f"{py.relative_to(ROOT)}:{line}: dlbook.{mod} is "
                                f"{what} but imports dlbook.{other}, a later chapter's")
    for doc in toc_files(ROOT):
        path = ROOT / f"{doc}.md"
        pos = order.index(Path(doc).name)
        if "/appendix/" in f"/{doc}" or doc == toc_files(ROOT)[0]:
            continue  # the preface and the appendices come after nothing
        for cell in code_cells(path.read_text()):
            for line, other in dlbook_imports(cell.source):
                if ranks.get(other, -1) > pos:
                    problems.append(f"{doc}.md:{cell.line + line - 1}: chapter "
                                    f"{Path(doc).name} imports dlbook.{other}, the "
                                    "module of a later chapter")
    return problems


def check_figures(doc: str, text: str) -> list[str]:
    """Figure cells need a caption, a label and alt text without numbers."""
    problems = []
    lines = text.split("\n")
    starts = [i + 1 for i, l in enumerate(lines) if l.startswith("```{solution-start}")]
    ends = [i + 1 for i, l in enumerate(lines) if l.startswith("```{solution-end}")]
    solutions = list(zip(starts, ends))
    for cell in code_cells(text):
        mystnb = cell.options.get("mystnb") or {}
        fig, img = mystnb.get("figure"), mystnb.get("image") or {}
        where = f"{doc}.md:{cell.fence}"
        if fig is not None and any(a < cell.fence < b for a, b in solutions):
            problems.append(f"{where}: a figure inside a solution (a LaTeX float "
                            "in a box breaks the PDF); print the numbers instead")
        if fig is None:
            tags = cell.options.get("tags") or []
            draws = any(k in cell.source for k in ("plt.show()", "plt.subplots("))
            if img or (draws and not {"remove-cell", "remove-output"} & set(tags)):
                problems.append(f"{where}: an image without a captioned figure")
            continue
        if not str(fig.get("caption", "")).strip():
            problems.append(f"{where}: figure has no caption")
        if not fig.get("name"):
            problems.append(f"{where}: figure has no name (label)")
        alt = str(img.get("alt", "")).strip()
        if not alt:
            problems.append(f"{where}: figure has no alt text")
        elif re.search(r"\d", alt):
            problems.append(f"{where}: alt text types a number ({alt[:60]!r}...); "
                            "describe shapes and trends instead")
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(r"^(`{3,}|:{3,})\{figure\}", line):
            block = "\n".join(text.splitlines()[n:n + 8])
            if ":alt:" not in block:
                problems.append(f"{doc}.md:{n}: figure directive without :alt:")
        for m in re.finditer(r"!\[([^\]]*)\]\(", line):
            if not m.group(1).strip():
                problems.append(f"{doc}.md:{n}: image without alt text")
    return problems


_LABEL_PATTERNS = [re.compile(r"^\(([\w:.-]+)\)=\s*$"),
                   re.compile(r"^\s*:(?:label|name):\s*([\w:.-]+)\s*$")]


def labels(text: str) -> list[tuple[int, str]]:
    """``(line, label)`` for every label a page defines: ``(label)=``
    targets, ``:label:`` / ``:name:`` options and figure cells' names."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        for pat in _LABEL_PATTERNS:
            m = pat.match(line)
            if m:
                out.append((n, m.group(1)))
                break
    for cell in code_cells(text):
        name = ((cell.options.get("mystnb") or {}).get("figure") or {}).get("name")
        if name:
            out.append((cell.fence, str(name)))
    return out


def check_labels(docs: list[str]) -> list[str]:
    seen: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        for n, label in labels((ROOT / f"{doc}.md").read_text()):
            seen[label].append(f"{doc}.md:{n}")
    return [f"{places[1]}: label {label!r} is defined twice (also at {places[0]})"
            for label, places in seen.items() if len(places) > 1]


def check_exercises(doc: str, text: str) -> list[str]:
    """Every exercise has a solution (``{solution}`` or ``{solution-start}``
    naming its label)."""
    lines = text.splitlines()
    exercises, solved = [], set()
    for n, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if not m:
            continue
        if m.group(2) in ("exercise", "exercise-start"):
            label = next((l.split(":label:")[1].strip() for l in lines[n:n + 6]
                          if ":label:" in l), None)
            exercises.append((n, label))
        elif m.group(2) in ("solution", "solution-start"):
            solved.add(m.group(3).strip())
    return [f"{doc}.md:{n}: exercise {label or '(no label)'} has no solution"
            for n, label in exercises if label not in solved]


def guarded_claims(text: str) -> list[tuple[int, ast.Assert]]:
    """The asserts of the ``remove-cell`` cells: the chapter's guarded claims."""
    out = []
    for cell in code_cells(text):
        if "remove-cell" not in (cell.options.get("tags") or []):
            continue
        src = _without_magics(cell.source)
        out += [(cell.line + node.lineno - 1, node) for node in ast.walk(ast.parse(src))
                if isinstance(node, ast.Assert)]
    return out


def check_claims(doc: str, text: str) -> list[str]:
    return [f"{doc}.md:{line}: a guarded claim without a message "
            "(write `assert cond, \"the sentence it guards\"`)"
            for line, node in guarded_claims(text) if node.msg is None]


_INDEX_ROLE = re.compile(r"\{index\}`")
_INDEX_BLOCK = re.compile(r"^(`{3,}|:{3,})\{index\}\s*(.*)$")


def index_entries(text: str) -> int:
    """How many index entries a page makes: ``{index}`` roles, and the
    entries of ``{index}`` directives (its argument, or one per line)."""
    lines, count = text.splitlines(), len(_INDEX_ROLE.findall(text))
    for n, line in enumerate(lines):
        m = _INDEX_BLOCK.match(line)
        if not m:
            continue
        if m.group(2).strip():
            count += len([e for e in m.group(2).split(";")[:1] if e.strip()])
            continue
        for body in lines[n + 1:]:
            if body.strip().startswith(m.group(1)):
                break
            if body.strip() and not body.strip().startswith(":"):
                count += 1
            elif re.match(r"^\s*:(single|pair|triple|see|seealso):", body):
                count += 1
    return count


def chapter_docs() -> list[str]:
    """The chapters proper: the pages of ``_toc.yml`` with code cells, but
    not the preface or the appendices."""
    from toc import notebook_files

    return [d for d in notebook_files(ROOT) if "/appendix/" not in f"/{d}"]


def report() -> str:
    """A table per chapter: index entries, guarded claims, glued values."""
    rows = ["| chapter | index entries | guarded claims | glued values |",
            "| --- | ---: | ---: | ---: |"]
    for doc in chapter_docs():
        text = (ROOT / f"{doc}.md").read_text()
        glued = len(re.findall(r"\bglue\(", text))
        rows.append(f"| {doc} | {index_entries(text)} | {len(guarded_claims(text))} "
                    f"| {glued} |")
    return "\n".join(rows)


def all_problems() -> list[str]:
    docs = toc_files(ROOT)
    problems = check_import_order() + check_labels(docs)
    for doc in docs:
        text = (ROOT / f"{doc}.md").read_text()
        problems += check_figures(doc, text) + check_exercises(doc, text)
        problems += check_claims(doc, text)
    return problems


def main() -> int:
    if "--report" in sys.argv:
        print(report())
        return 0
    problems = all_problems()
    print("\n".join(problems) or "lint_book: no problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
