#!/usr/bin/env python3
"""Build one chapter on its own, as a contributor previews it.

Usage: .venv/bin/python tools/build_one.py book/foundations/history.md [--pdf]

Makes a small book in _build/one/<slug>/ with the preface, this chapter, the
notation and API appendices and the bibliography, using the project's real _config.yml and references.bib. The other
chapters of _toc.yml are replaced by one-line stubs that carry only their
chapter label (``ch-<slug>``), so that ``{ref}`ch-...``` links resolve. Builds
HTML (and with --pdf the PDF) with warnings as errors, like the full build.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from toc import toc_files

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("chapter")
    ap.add_argument("--pdf", action="store_true")
    a = ap.parse_args()
    chapter = Path(a.chapter).resolve().relative_to(ROOT).with_suffix("")
    out = ROOT / "_build" / "one" / chapter.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    keep = {str(chapter), toc["root"], "book/bibliography",
            "book/appendix/notation", "book/appendix/api",
            "book/appendix/glossary"}
    for f in toc_files():
        dst = out / f"{f}.md"
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = ROOT / f"{f}.md"
        if f in keep and src.exists():
            shutil.copy(src, dst)
        else:
            slug = Path(f).name
            dst.write_text(f"(ch-{slug})=\n# {slug}\n\nStub.\n")
    for name in ["_config.yml", "_toc.yml", "references.bib"]:
        shutil.copy(ROOT / name, out / name)
    (out / "code").symlink_to(ROOT / "code")  # for literalinclude
    for folder in ("_latex", "_ext"):
        shutil.copytree(ROOT / "book" / folder, out / "book" / folder)
    if (ROOT / "book" / "_static").exists():
        shutil.copytree(ROOT / "book" / "_static", out / "book" / "_static")
    jb = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(out),
          "--all", "-W", "-n", "--keep-going"]
    rc = subprocess.call(jb)
    if a.pdf and rc == 0:
        rc = subprocess.call(jb + ["--builder", "pdflatex"])
    print(f"\nHTML: {out}/_build/html/{chapter}.html")
    if a.pdf:
        print(f"PDF:  {out}/_build/latex/book.pdf")
    return rc


if __name__ == "__main__":
    sys.exit(main())
