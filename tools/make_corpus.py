#!/usr/bin/env python3
"""Write the character corpora that ship inside dlbook (run once, by hand).

```python-docs``: the docstrings (Python's own documentation) of a fixed list
of pure-Python standard-library modules, of their public classes and
functions, and of the classes' public methods; ``python-source``: the source of a fixed list of such modules.
The files are generated once and committed, so that every reader, Binder and
CI train on the same bytes whatever their Python version; the header of each
file records the interpreter it came from.

Usage: python3 tools/make_corpus.py   (writes code/dlbook/corpora/*.txt)
"""
from __future__ import annotations

import importlib
import inspect
import platform
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "code" / "dlbook" / "corpora"
DOC_MODULES = ["abc", "argparse", "bisect", "calendar", "collections", "contextlib",
               "copy", "csv", "dataclasses", "datetime", "decimal", "difflib",
               "enum", "fractions", "functools", "heapq", "inspect", "ipaddress",
               "json", "logging", "pathlib", "pprint", "queue", "random", "shlex",
               "statistics", "string", "textwrap", "threading", "typing",
               "unittest", "uuid", "zipfile", "email.message", "http.client",
               "tarfile", "configparser", "optparse", "pydoc", "sched",
               "smtplib", "socketserver", "tempfile", "traceback", "turtle",
               "urllib.parse", "xml.dom.minidom", "zoneinfo", "asyncio.queues",
               "concurrent.futures", "ftplib", "mailbox", "imaplib", "nntplib",
               "poplib", "cmd", "code", "codecs", "gettext", "locale", "netrc",
               "numbers", "operator", "os", "shutil", "subprocess", "sysconfig",
               "timeit", "trace", "tracemalloc", "wave", "weakref", "webbrowser"]
SOURCE_MODULES = ["bisect", "heapq", "textwrap", "fractions", "statistics", "shlex",
                  "string", "functools", "dataclasses", "colorsys", "queue",
                  "calendar", "pprint", "difflib"]


def _docs(name: str) -> list[str]:
    mod = importlib.import_module(name)
    parts = [f"{name}\n{'=' * len(name)}\n\n{inspect.getdoc(mod) or ''}"]
    for attr in sorted(getattr(mod, "__all__", None) or dir(mod)):
        obj = getattr(mod, attr, None)
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        doc = inspect.getdoc(obj)
        if doc and (inspect.isclass(obj) or inspect.isfunction(obj)):
            parts.append(f"{name}.{attr}\n\n{doc}")
        if inspect.isclass(obj):  # and the methods the class itself defines
            for meth, fn in sorted(vars(obj).items()):
                mdoc = inspect.getdoc(fn) if inspect.isfunction(fn) else None
                if mdoc and not meth.startswith("_"):
                    parts.append(f"{name}.{attr}.{meth}\n\n{mdoc}")
    return parts


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"Python {platform.python_version()}"
    docs = [p for m in DOC_MODULES for p in _docs(m)]
    (OUT / "python-docs.txt").write_text(
        f"# Docstrings of the Python standard library ({tag}).\n\n"
        + "\n\n".join(docs) + "\n", encoding="utf-8")
    src = [Path(importlib.import_module(m).__file__).read_text(encoding="utf-8")
           for m in SOURCE_MODULES]
    (OUT / "python-source.txt").write_text(
        f"# Source of Python standard-library modules ({tag}).\n\n"
        + "\n\n".join(src), encoding="utf-8")


if __name__ == "__main__":
    main()
