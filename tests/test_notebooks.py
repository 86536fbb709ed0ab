"""Every chapter runs as a Binder reader runs it.

On Binder a chapter's ``.md`` file opens, through jupytext, as a notebook that
the reader executes top to bottom in a fresh kernel. These tests do exactly
that (no myst-nb, no cache), and check that the Binder environment in
``binder/`` provides every package the chapters and ``dlbook`` import.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient
from toc import notebook_files

ROOT = Path(__file__).resolve().parents[1]


NOTEBOOKS = notebook_files()



def test_some_chapters_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("doc", NOTEBOOKS)
def test_chapter_runs_top_to_bottom_as_a_notebook(doc, tmp_path):
    path = ROOT / f"{doc}.md"
    nb = jupytext.read(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    assert n_code >= 1
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
                                if not l.lstrip().startswith(("%", "!")))
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
