"""The book's sources obey the rules a build does not check (tools/lint_book.py),
and each rule's failure names the chapter and the line."""
from __future__ import annotations

from pathlib import Path

import lint_book  # tools/, on the path through conftest.py
import pytest
from toc import CHAPTER_MODULES, toc_files

ROOT = Path(__file__).resolve().parents[1]
DOCS = toc_files()


def test_the_book_order_of_imports_holds():
    problems = lint_book.check_import_order()
    assert not problems, "\n".join(problems)


def test_no_label_is_defined_twice():
    problems = lint_book.check_labels(DOCS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS)
def test_figures_exercises_and_claims_are_well_formed(doc):
    text = (ROOT / f"{doc}.md").read_text()
    problems = (lint_book.check_figures(doc, text) + lint_book.check_exercises(doc, text)
                + lint_book.check_claims(doc, text))
    assert not problems, "\n".join(problems)


def test_every_toc_chapter_owns_its_modules():
    """A chapter slug in the book is known to tools/toc.py (or is an appendix)."""
    for doc in DOCS[1:]:
        slug = Path(doc).name
        if "/appendix/" not in f"/{doc}" and doc != "book/bibliography":
            assert slug in CHAPTER_MODULES, f"{doc}: add {slug!r} to CHAPTER_MODULES"


# --- the detectors themselves, on pages written to break each rule ----------

BAD = '''---
kernelspec:
  name: python3
---
(sec-a)=
# A page

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: A curve.
    name: fig-a
  image:
    alt: A line rising from 0 to 5.
---
from dlbook import later_module
```

```{code-cell} ipython3
---
mystnb:
  figure:
    name: fig-b
---
x = 1
```

````{exercise}
:label: ex-a

Prove it.
````

```{code-cell} ipython3
:tags: [remove-cell]
assert x == 1
assert x > 0, "x is positive"
```

(sec-a)=
## Again
'''


def test_detectors_name_the_file_and_line():
    figs = lint_book.check_figures("book/x/bad", BAD)
    assert any(p.startswith("book/x/bad.md:8:") and "types a number" in p for p in figs)
    assert any(p.startswith("book/x/bad.md:20:") and "no caption" in p for p in figs)
    assert any("no alt text" in p for p in figs)
    ex = lint_book.check_exercises("book/x/bad", BAD)
    assert ex == ["book/x/bad.md:29: exercise ex-a has no solution"]
    claims = lint_book.check_claims("book/x/bad", BAD)
    assert len(claims) == 1 and claims[0].startswith("book/x/bad.md:37:")
    assert [n for n, l in lint_book.labels(BAD) if l == "sec-a"] == [5, 41]
    assert lint_book.dlbook_imports("from dlbook import later_module\n"
                                    "import dlbook.nn\nfrom dlbook.gnn.layers import G") == [
        (1, "later_module"), (2, "nn"), (3, "gnn")]
    assert len(lint_book.guarded_claims(BAD)) == 2


def test_import_order_detector_catches_a_later_module(tmp_path, monkeypatch):
    pkg = tmp_path / "code" / "dlbook"
    (pkg / "history").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "history" / "__init__.py").write_text("from dlbook.cnn import conv2d\n")
    (pkg / "cnn.py").write_text("from dlbook.history import perceptron\n")
    (pkg / "nn.py").write_text("import dlbook.autodiff\n")
    (pkg / "autodiff.py").write_text("")
    (tmp_path / "_toc.yml").write_text(
        "root: book/intro\nparts:\n  - chapters:\n      - file: book/f/history\n"
        "      - file: book/f/backprop\n      - file: book/a/cnn\n")
    (tmp_path / "book" / "f").mkdir(parents=True)
    (tmp_path / "book" / "a").mkdir(parents=True)
    (tmp_path / "book" / "intro.md").write_text("# Preface\n")
    (tmp_path / "book" / "f" / "history.md").write_text(
        "# H\n\n```{code-cell} ipython3\nimport torch\nfrom dlbook import cnn\n```\n")
    (tmp_path / "book" / "f" / "backprop.md").write_text("# B\n")
    (tmp_path / "book" / "a" / "cnn.md").write_text("# C\n")
    monkeypatch.setattr(lint_book, "ROOT", tmp_path)
    monkeypatch.setattr(lint_book, "PKG", pkg)
    problems = lint_book.check_import_order()
    assert any(p.startswith("code/dlbook/history/__init__.py:1:") and "dlbook.cnn" in p
               for p in problems), problems
    assert any(p.startswith("code/dlbook/nn.py:1:") and "shared" in p for p in problems)
    assert any(p.startswith("book/f/history.md:5:") for p in problems), problems
    assert not any(p.startswith("code/dlbook/cnn.py") for p in problems)


CHAPTERS = lint_book.chapter_docs()
MIN_INDEX_ENTRIES = 15   # DEVELOPERS.md: at least 15 a chapter
MIN_GUARDED_CLAIMS = 3   # a chapter states computed outcomes; it guards them


@pytest.mark.parametrize("doc", CHAPTERS)
def test_chapter_has_index_entries_for_its_key_terms(doc):
    n = lint_book.index_entries((ROOT / f"{doc}.md").read_text())
    assert n >= MIN_INDEX_ENTRIES, f"{doc}.md has {n} index entries, needs {MIN_INDEX_ENTRIES}"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_chapter_guards_its_claims(doc):
    n = len(lint_book.guarded_claims((ROOT / f"{doc}.md").read_text()))
    assert n >= MIN_GUARDED_CLAIMS, (
        f"{doc}.md guards {n} claims (assert ... in remove-cell cells); a chapter "
        f"that reports computed results guards at least {MIN_GUARDED_CLAIMS}")


def test_index_entries_are_counted():
    text = ("A {index}`perceptron` and {index}`margin <margin; of a classifier>`.\n"
            "```{index} single: convolution; transposed\n```\n"
            ":::{index}\n:name: idx-a\nsingle: pooling\npair: graph; network\n:::\n")
    assert lint_book.index_entries(text) == 5


def test_lint_finds_a_plot_that_is_not_a_captioned_figure():
    text = ("```{code-cell} ipython3\nfig, ax = plt.subplots()\nplt.show()\n```\n\n"
            "```{code-cell} ipython3\n:tags: [remove-cell]\nfig, ax = plt.subplots()\n```\n")
    figs = lint_book.check_figures("book/x/plot", text)
    assert figs == ["book/x/plot.md:1: an image without a captioned figure"], figs


def test_lint_finds_a_figure_inside_a_solution():
    text = ("```{solution-start} ex-a\n:class: dropdown\n```\n\n"
            "```{code-cell} ipython3\n---\nmystnb:\n  figure:\n    caption: A plot.\n"
            "    name: fig-a\n  image:\n    alt: A line.\n---\nplt.show()\n```\n\n"
            "```{solution-end}\n```\n")
    figs = lint_book.check_figures("book/x/sol", text)
    assert any(p.startswith("book/x/sol.md:5:") and "inside a solution" in p
               for p in figs), figs
