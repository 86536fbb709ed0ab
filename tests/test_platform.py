"""Tests of the book's shared machinery and of the build's own guarantees."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dlbook import data, plot, seed

ROOT = Path(__file__).resolve().parents[1]
import cache_guard  # tools/, on the path through conftest.py
from toc import toc_files


# --- dlbook.data ---------------------------------------------------------------

def test_digits_split_is_stratified_partitioned_and_scaled():
    s = data.digits(seed=0, test_size=0.25, val_size=0.15)
    n = len(s.X_train) + len(s.X_val) + len(s.X_test)
    assert n == 1797
    assert abs(len(s.X_test) / n - 0.25) < 0.01
    assert abs(len(s.X_val) / n - 0.15) < 0.01
    assert s.X_train.shape[1] == 64 and s.X_train.dtype == torch.float32
    assert 0.0 <= s.X_train.min() and s.X_train.max() <= 1.0
    # stratified: every class present in each part in about the same share
    for part in (s.y_train, s.y_val, s.y_test):
        counts = torch.bincount(part, minlength=10).float() / len(part)
        assert counts.min() > 0.08 and counts.max() < 0.12
    # the three parts partition the data set: pixel sums add up exactly
    total = sum(part.sum().item() for part in (s.X_train, s.X_val, s.X_test))
    full = data.digits(seed=0, test_size=0.0)
    assert abs(total - full.X_train.sum().item()) < 1e-3


def test_digits_images_and_determinism():
    a = data.digits(seed=3, images=True)
    b = data.digits(seed=3, images=True)
    assert a.X_train.shape[1:] == (1, 8, 8)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert a.X_val.shape[0] == 0
    c = data.digits(seed=4, images=True)
    assert not torch.equal(a.y_train, c.y_train)


@pytest.mark.parametrize("kw", [{"test_size": 1.0}, {"val_size": -0.1},
                                {"test_size": 0.6, "val_size": 0.5}])
def test_digits_rejects_bad_fractions(kw):
    with pytest.raises(ValueError, match="size"):
        data.digits(**kw)


@pytest.mark.parametrize("make", [lambda s: data.two_moons(200, seed=s),
                                  lambda s: data.spirals(200, classes=3, seed=s)])
def test_synthetic_sets_are_functions_of_the_seed(make):
    (X1, y1), (X2, y2), (X3, _) = make(1), make(1), make(2)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert not torch.allclose(X1, X3)
    assert X1.shape == (200, 2) and y1.shape == (200,)


def test_spirals_balanced_and_xor_labels():
    _, y = data.spirals(300, classes=3)
    assert torch.bincount(y).tolist() == [100, 100, 100]
    X, y = data.xor()
    assert y.tolist() == [int(a) ^ int(b) for a, b in X.long().tolist()]


# --- dlbook.seed and dlbook.plot -----------------------------------------------

def test_seed_everything_makes_global_and_returned_streams_reproducible():
    g = seed.seed_everything(7)
    a = (torch.rand(3).tolist(), np.random.rand(), torch.rand(2, generator=g).tolist())
    g = seed.seed_everything(7)
    b = (torch.rand(3).tolist(), np.random.rand(), torch.rand(2, generator=g).tolist())
    assert a == b
    with pytest.raises(ValueError, match="seed"):
        seed.seed_everything(-1)


def test_importing_dlbook_has_no_side_effects():
    """Importing every module neither seeds, nor changes matplotlib settings."""
    code = """
import pkgutil, importlib, torch, matplotlib as mpl
before = dict(mpl.rcParams); s0 = torch.initial_seed()
import dlbook
for m in pkgutil.walk_packages(dlbook.__path__, "dlbook."):
    importlib.import_module(m.name)
changed = [k for k in before if mpl.rcParams[k] != before[k]]
assert not changed, changed
assert torch.initial_seed() == s0
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_use_book_style_sets_the_style():
    import matplotlib as mpl

    with mpl.rc_context():
        plot.use_book_style()
        assert mpl.rcParams["savefig.dpi"] >= 150
        assert mpl.rcParams["axes.spines.top"] is False


# --- the build's guarantees ----------------------------------------------------

def test_every_toc_page_exists_with_a_python3_kernel():
    for doc in toc_files():
        text = (ROOT / f"{doc}.md").read_text()
        if "```{code-cell}" in text:
            front = yaml.safe_load(text.split("---")[1])
            assert front["kernelspec"]["name"] == "python3", doc
            assert front["jupytext"]["text_representation"]["format_name"] == "myst"


def test_every_dlbook_module_is_in_the_api_reference():
    import pkgutil

    import dlbook

    api = (ROOT / "book" / "appendix" / "api.md").read_text()
    documented = set(re.findall(r"automodule:: (dlbook[\w.]*)", api))
    for m in pkgutil.iter_modules(dlbook.__path__):
        assert f"dlbook.{m.name}" in documented, f"dlbook.{m.name} not in api.md"


def test_bibliography_entries_are_complete_and_cited_keys_exist():
    from pybtex.database import parse_file

    bib = parse_file(str(ROOT / "references.bib"))
    for key, e in bib.entries.items():
        assert e.persons.get("author") or e.persons.get("editor"), key
        assert "title" in e.fields and "year" in e.fields, key
        venue = {"journal", "booktitle", "publisher", "howpublished", "school",
                 "institution", "eprint", "note"}
        assert venue & {f.lower() for f in e.fields}, f"{key} has no venue"
    cited = set()
    for doc in toc_files():
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`",
                                (ROOT / f"{doc}.md").read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited <= set(bib.entries), sorted(cited - set(bib.entries))


def test_cache_guard_follows_imports_transitively(tmp_path, monkeypatch):
    pkg = tmp_path / "dlbook"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from dlbook.b import f\n")
    (pkg / "b.py").write_text("from .c import g\n")
    (pkg / "c.py").write_text("x = 1\n")
    (pkg / "d.py").write_text("y = 2\n")
    (pkg / "sub" / "__init__.py").write_text("from .e import h\n")
    (pkg / "sub" / "e.py").write_text("from ..d import y\n")
    monkeypatch.setattr(cache_guard, "PKG", pkg)
    refs = cache_guard.references("import dlbook.a\nfrom dlbook.sub import h", None)
    assert refs == {"a", "sub"}
    files = {p.relative_to(pkg).as_posix() for p in cache_guard.closure(refs)}
    assert files == {"__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py",
                     "sub/e.py", "d.py"}
    only_c = cache_guard.closure(cache_guard.references("from dlbook import c", None))
    assert {p.name for p in only_c} == {"__init__.py", "c.py"}


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    """A tiny repository (dlbook with modules a and b, pins, two chapters) that
    cache_guard is pointed at."""
    root = tmp_path
    pkg = root / "code" / "dlbook"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("v = 1\n")
    (pkg / "b.py").write_text("w = 1\n")
    (root / "requirements.txt").write_text("torch==2.13.0\n")
    (root / "code" / "pyproject.toml").write_text("[project]\n")
    (root / "book").mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/a\nparts:\n"
                                   "  - chapters:\n      - file: book/b\n")
    (root / "book" / "a.md").write_text("```{code-cell}\nfrom dlbook.a import v\n```\n")
    (root / "book" / "b.md").write_text("```{code-cell}\nx = 1\n```\n")
    cache_dir = root / "_build" / ".jupyter_cache"
    for name, value in [("ROOT", root), ("PKG", pkg), ("CACHE", cache_dir),
                        ("STATE", cache_dir / "dlbook-fingerprints.json"),
                        ("ENV_FILES", [root / "requirements.txt",
                                       root / "code" / "pyproject.toml"])]:
        monkeypatch.setattr(cache_guard, name, value)
    return root


def test_cache_guard_fingerprint_changes_with_a_dependency(fake_repo):
    root, pkg = fake_repo, fake_repo / "code" / "dlbook"
    chapter = root / "book" / "a.md"
    f0 = cache_guard.fingerprint(chapter)
    (pkg / "b.py").write_text("w = 2\n")  # not a dependency
    assert cache_guard.fingerprint(chapter) == f0
    (pkg / "a.py").write_text("v = 2\n")  # a dependency
    f1 = cache_guard.fingerprint(chapter)
    assert f1 != f0
    (root / "requirements.txt").write_text("torch==2.14.0\n")  # the pins
    assert cache_guard.fingerprint(chapter) != f1


def test_cache_guard_matches_copies_of_a_chapter():
    ch = ROOT / "book" / "foundations" / "history.md"
    assert cache_guard.same_chapter(str(ch), ch)
    assert cache_guard.same_chapter(
        str(ROOT / "_build" / "one" / "history" / "book" / "foundations" / "history.md"), ch)
    assert not cache_guard.same_chapter(str(ROOT / "book" / "foundations" / "training.md"), ch)


def test_cache_guard_drops_the_records_of_a_changed_chapter(fake_repo):
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    root, pkg = fake_repo, fake_repo / "code" / "dlbook"
    cache_dir = root / "_build" / ".jupyter_cache"
    cache_guard.main()  # first run: records the fingerprints
    cache = get_cache(str(cache_dir))
    for i, doc in enumerate(["a", "b"]):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"x = {i}")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(root / "book" / f"{doc}.md")),
                                    check_validity=False)
    cache_guard.main()                     # nothing changed: nothing dropped
    assert len(cache.list_cache_records()) == 2
    (pkg / "a.py").write_text("v = 2\n")   # a.md depends on it, b.md does not
    cache_guard.main()
    uris = [Path(r.uri).name for r in cache.list_cache_records()]
    assert uris == ["b.md"]
