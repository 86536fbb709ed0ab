#!/usr/bin/env python3
"""Keep the execution cache honest: drop the cached outputs of every chapter
whose code changed underneath it.

myst-nb's cache (jupyter-cache) keys a notebook on its own cells only, so an
edit to ``code/dlbook`` or to the pinned dependencies would otherwise be served
stale outputs. For each chapter in ``_toc.yml`` this script computes a
fingerprint of everything its execution depends on:

* the ``dlbook`` modules it imports or includes, closed under the imports
  between ``dlbook`` modules,
* ``requirements.txt`` and ``code/pyproject.toml`` (the pinned environment),

and removes the chapter's cache records when the fingerprint differs from the
one recorded at the last build. Run it before ``jupyter-book build``.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
from pathlib import Path

from toc import toc_files

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "code" / "dlbook"
CACHE = ROOT / "_build" / ".jupyter_cache"
STATE = CACHE / "dlbook-fingerprints.json"
ENV_FILES = [ROOT / "requirements.txt", ROOT / "code" / "pyproject.toml"]

_ABS = re.compile(r"\bdlbook((?:\.\w+)*)")
_FROM = re.compile(r"^\s*from\s+dlbook((?:\.\w+)*)\s+import\s+(\([^)]*\)|[\w, ]+)", re.M)
_REL = re.compile(r"^\s*from\s+(\.+)(\w*(?:\.\w+)*)\s+import\s+(\([^)]*\)|[\w, ]+)", re.M)


def toc_chapters() -> list[Path]:
    """Every page of ``_toc.yml`` that exists as a ``.md`` file."""
    return [p for f in toc_files(ROOT) if (p := ROOT / f"{f}.md").exists()]


def module_file(dotted: str) -> Path | None:
    """The source file of ``dlbook.<dotted>`` (a module or a package)."""
    base = PKG.joinpath(*dotted.split(".")) if dotted else PKG
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def dotted_of(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def references(text: str, here: str | None) -> set[str]:
    """Dotted ``dlbook`` module names that ``text`` refers to."""
    names = set()
    for m in _ABS.finditer(text):
        parts = m.group(1).lstrip(".").split(".") if m.group(1) else []
        # `dlbook.a.b.func` -> try the longest prefix that is a module.
        for k in range(len(parts), -1, -1):
            if module_file(".".join(parts[:k])):
                names.add(".".join(parts[:k]))
                break
    for sub, imported in _FROM.findall(text):  # `from dlbook.x import y`
        base = sub.lstrip(".")
        for name in re.findall(r"\w+", imported):
            cand = f"{base}.{name}" if base else name
            if module_file(cand):
                names.add(cand)
    for m in re.finditer(r"code/dlbook/([\w/]+)\.py", text):
        names.add(dotted_of(PKG / f"{m.group(1)}.py"))
    if here is not None:
        for dots, mod, imported in _REL.findall(text):
            pkg = here.split(".")[: len(here.split(".")) - len(dots) + 1]
            pkg = [p for p in pkg if p]
            base = ".".join(pkg + ([mod] if mod else []))
            names.add(base)
            for name in re.findall(r"\w+", imported):
                sub = f"{base}.{name}" if base else name
                if module_file(sub):
                    names.add(sub)
    return {n for n in names if module_file(n)}


def imports_of(source: str, here: str) -> set[str]:
    """Dotted ``dlbook`` modules that a module's import statements name.

    Parsed with :mod:`ast`, so a module named in a docstring or a comment is
    not a dependency.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
            names |= {".".join(m.split(".")[1:]) for m in mods
                      if m.split(".")[0] == "dlbook"}
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative: resolve against the importing package
            parts = here.split(".") if here else []
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([p for p in parts if p] + ([node.module] if node.module else []))
        elif node.module and node.module.split(".")[0] == "dlbook":
            base = ".".join(node.module.split(".")[1:])
        else:
            continue
        names.add(base)
        for alias in node.names:
            sub = f"{base}.{alias.name}" if base else alias.name
            names.add(sub)
    return {n for n in names if module_file(n)}


def closure(start: set[str]) -> set[Path]:
    """Files of ``start`` and of every dlbook module they import, iteratively."""
    seen: set[str] = set()
    todo = list(start | {""})
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(imports_of(path.read_text(), here) - seen)
    return {module_file(n) for n in seen if module_file(n)}


def fingerprint(chapter: Path) -> str:
    files = sorted(closure(references(chapter.read_text(), None))) + ENV_FILES
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def same_chapter(uri: str, chapter: Path) -> bool:
    """Whether a cache record's path is ``chapter``, or a copy of it made by
    ``tools/build_one.py`` (which shares this cache), by path suffix."""
    rel = chapter.resolve().relative_to(ROOT).parts
    return Path(uri).parts[-len(rel):] == rel


def drop_records(chapter: Path) -> int:
    from jupyter_cache import get_cache

    cache = get_cache(str(CACHE))
    dropped = 0
    for rec in cache.list_cache_records():
        if same_chapter(rec.uri, chapter):
            cache.remove_cache(rec.pk)
            dropped += 1
    return dropped


def main() -> int:
    old = json.loads(STATE.read_text()) if STATE.exists() else {}
    new = {}
    for chapter in toc_chapters():
        key = str(chapter.relative_to(ROOT))
        new[key] = fingerprint(chapter)
        if CACHE.exists() and old.get(key) != new[key]:
            n = drop_records(chapter)
            if n:
                print(f"cache_guard: {key}: code changed, re-executing "
                      f"({n} cached record(s) dropped)")
    CACHE.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(new, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
