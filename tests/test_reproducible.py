"""Two executions of a chapter from nothing give identical glued values.

Every number in the prose is glued from a computation with fixed seeds, so a
second clean run must reproduce each one exactly (as printed). The chapter is
executed here in a fresh kernel, with no cache, and compared with a second
execution: the build's own, when the build has one that provably ran the same
cells with the current code (tests/test_notebooks.py), or else a second fresh
run. (A value measured in wall-clock time, such as a speed-up, differs
between any two runs; the chapter tested here glues none.)
"""
from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient
from test_notebooks import build_execution

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "book/foundations/history"  # glues many values, none of them a timing


def glued(nb) -> dict[str, str]:
    """``name -> text/plain`` of every glued output of an executed notebook."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            if book.get("name"):
                out[book["name"]] = o["data"].get(book.get("mime_prefix", "") + "text/plain")
    return out


def execute(doc: str):
    path = ROOT / f"{doc}.md"
    nb = jupytext.read(path)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.mark.slow
def test_two_clean_executions_glue_the_same_values():
    first = execute(CHAPTER)
    second = build_execution(CHAPTER, jupytext.read(ROOT / f"{CHAPTER}.md"))
    if second is None:
        second = execute(CHAPTER)
    a, b = glued(first), glued(second)
    assert len(a) >= 10, f"{CHAPTER} glues only {len(a)} values"
    assert a.keys() == b.keys()
    differ = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differ, f"glued values differ between two clean runs: {differ}"
