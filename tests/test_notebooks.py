"""Every chapter runs as a Binder reader runs it.

On Binder a chapter's ``.md`` file opens, through jupytext, as a notebook that
the reader executes top to bottom in a fresh kernel. These tests check that it
runs, and that the Binder environment in ``binder/`` provides every package
the chapters and ``dlbook`` import.

``make check`` builds the book before it runs the tests, and the build has
just executed every chapter in a fresh kernel. Running each chapter a second
time would double the cost of CI for no new evidence, so a chapter's test
reuses the build's execution when it can prove that it is the same run: the
cache record's code cells are exactly jupytext's code cells, every one of them
ran, in order, from execution count 1 (a fresh kernel), with no error; and the
``dlbook`` code and pins the chapter depends on are those the cache guard
recorded for the build (so no module changed since). Otherwise, or with
``DLBOOK_NOTEBOOK_TESTS=execute``, the chapter is executed here with nbclient.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import json
import os

import cache_guard  # tools/, on the path through conftest.py
import jupytext
import pytest
from nbclient import NotebookClient
from toc import notebook_files

ROOT = Path(__file__).resolve().parents[1]


NOTEBOOKS = notebook_files()



def test_some_chapters_are_notebooks():
    assert len(NOTEBOOKS) >= 1


def _code(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


def build_execution(doc: str, nb):
    """The build's execution of ``doc`` when it provably is this notebook run
    top to bottom in a fresh kernel with the current dlbook code; else None."""
    if os.environ.get("DLBOOK_NOTEBOOK_TESTS") == "execute":
        return None
    chapter = ROOT / f"{doc}.md"
    state = cache_guard.STATE
    if not state.exists():
        return None
    recorded = json.loads(state.read_text()).get(f"{doc}.md")
    if recorded != cache_guard.fingerprint(chapter):
        return None  # dlbook or the pins changed since the build
    from jupyter_cache import get_cache
    from myst_nb.core.read import myst_nb_reader_plugin

    cache = get_cache(str(cache_guard.CACHE))
    try:
        record = cache.match_cache_notebook(myst_nb_reader_plugin(str(chapter)))
    except KeyError:
        return None
    executed = cache.get_cache_bundle(record.pk).nb
    cells = [c for c in executed.cells if c.cell_type == "code"]
    if _code(executed) != _code(nb):
        return None
    if [c.execution_count for c in cells] != list(range(1, len(cells) + 1)):
        return None
    if any(o.get("output_type") == "error" for c in cells for o in c.outputs):
        return None
    return executed


def test_reuse_needs_the_same_cells_in_a_fresh_kernel(tmp_path, monkeypatch):
    """The proof of sameness rejects an edited cell, a cell that did not
    run, and a kernel that did not start fresh."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "code" / "dlbook").mkdir(parents=True)
    (tmp_path / "code" / "dlbook" / "__init__.py").write_text("")
    for name in ("requirements.txt", "pyproject.toml"):
        (tmp_path / name).write_text("")
    text = ("---\njupytext:\n  text_representation:\n    extension: .md\n"
            "    format_name: myst\n    format_version: 0.13\n"
            "kernelspec:\n  name: python3\n  display_name: Python 3\n"
            "  language: python\n---\n# T\n\n```{code-cell} ipython3\nx = 1\n```\n\n"
            "```{code-cell} ipython3\ny = x + 1\n```\n")
    (book / "t.md").write_text(text)
    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(cache_guard, "ROOT", tmp_path)
    monkeypatch.setattr(cache_guard, "PKG", tmp_path / "code" / "dlbook")
    monkeypatch.setattr(cache_guard, "CACHE", cache_dir)
    monkeypatch.setattr(cache_guard, "STATE", cache_dir / "state.json")
    monkeypatch.setattr(cache_guard, "ENV_FILES", [tmp_path / "requirements.txt",
                                                   tmp_path / "pyproject.toml"])
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    cache_dir.mkdir()
    cache_guard.STATE.write_text(json.dumps(
        {"book/t.md": cache_guard.fingerprint(book / "t.md")}))
    from myst_nb.core.read import myst_nb_reader_plugin

    def store(counts):
        nb = myst_nb_reader_plugin(str(book / "t.md"))
        for cell, n in zip([c for c in nb.cells if c.cell_type == "code"], counts):
            cell.execution_count = n
        get_cache(str(cache_dir)).cache_notebook_bundle(
            CacheBundleIn(nb, str(book / "t.md")), check_validity=False, overwrite=True)

    nb = jupytext.read(book / "t.md")
    assert build_execution("book/t", nb) is None      # nothing cached yet
    store([1, 2])
    assert build_execution("book/t", nb) is not None  # same cells, fresh kernel
    store([3, 4])
    assert build_execution("book/t", nb) is None      # not a fresh kernel
    store([1, None])
    assert build_execution("book/t", nb) is None      # a cell did not run
    store([1, 2])
    edited = jupytext.read(book / "t.md")
    edited.cells[-1].source = "y = x + 2"
    assert build_execution("book/t", edited) is None  # different code
    (tmp_path / "requirements.txt").write_text("torch==9\n")
    assert build_execution("book/t", nb) is None      # the pins changed
    assert nbformat  # imported for the cache's notebook objects


@pytest.mark.slow
@pytest.mark.parametrize("doc", NOTEBOOKS)
def test_chapter_runs_top_to_bottom_as_a_notebook(doc, tmp_path):
    path = ROOT / f"{doc}.md"
    nb = jupytext.read(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    assert n_code >= 1
    if build_execution(doc, nb) is not None:
        return  # the build ran exactly this notebook in a fresh kernel
    # Run where Binder runs it: in the chapter's own folder.
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count]
    assert len(ran) == n_code


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


# Import name -> distribution name, where they differ.
DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "myst_nb": "myst-nb",
        "IPython": "ipython", "PIL": "pillow", "mpl_toolkits": "matplotlib",
        "matplotlib_inline": "matplotlib-inline"}


def test_binder_environment_covers_every_import():
    used: set[str] = set()
    for doc in NOTEBOOKS:
        nb = jupytext.read(ROOT / f"{doc}.md")
        for cell in nb.cells:
            if cell.cell_type == "code":
                src = "\n".join(l for l in cell.source.splitlines()
                                if not re.match(r"\s*(%|!(?!=))", l))
                used |= _imports(src)
    for py in (ROOT / "code" / "dlbook").rglob("*.py"):
        used |= _imports(py.read_text())
    third_party = {m for m in used
                   if m not in sys.stdlib_module_names and m != "dlbook"}
    reqs = (ROOT / "binder" / "requirements.txt").read_text().lower()
    listed = {re.split(r"[<>=\[ ;]", l.strip())[0]
              for l in reqs.splitlines() if l.strip() and not l.startswith(("#", "-"))}
    # jupyter's own stack brings IPython and matplotlib-inline.
    listed |= {"ipython", "matplotlib-inline"}
    missing = sorted(m for m in third_party
                     if DIST.get(m, m).lower().replace("_", "-") not in listed)
    assert not missing, f"binder/requirements.txt lacks {missing}"
    assert "torch==" in reqs and "+cpu" in reqs, "Binder must pin a CPU-only torch"
