#!/usr/bin/env python3
"""Execute the chapters whose cached outputs are stale, in parallel, before
Sphinx reads them; then write the table of execution times.

myst-nb (``execute_notebooks: cache``) executes a stale chapter while Sphinx
reads it, one chapter after another. This script does that work first, over a
pool of worker processes (one per CPU core by default), and stores each
result in the same jupyter-cache that myst-nb reads: the notebook is read
with myst-nb's own reader, so its cache key is the one myst-nb computes, and
executed as myst-nb executes it (a fresh kernel, in the chapter's folder,
with the build's timeout). Sphinx then finds every chapter cached. Only the
parent process writes to the cache.

It ends by writing ``_build/execution_times.md``: each chapter's execution
time from its cache record. A chapter that raises stops the build here, with
its traceback.

Sphinx re-reads only the pages whose sources changed, and it cannot see that
a chapter's cached outputs changed, nor that ``dlbook``'s docstrings did. So
this script updates the modification time of every chapter it re-executed,
and of the API appendix when a ``dlbook`` source changed since its last run:
the next build re-reads exactly those pages.

Usage: python tools/execute.py [--jobs N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml
from toc import notebook_files

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
TIMES = ROOT / "_build" / "execution_times.md"
API = ROOT / "book" / "appendix" / "api.md"
CODE_STAMP = ROOT / "_build" / ".dlbook-sources"


def _read(path: Path):
    from myst_nb.core.read import myst_nb_reader_plugin

    return myst_nb_reader_plugin(str(path))


def stale_chapters(cache, docs: list[str]) -> list[str]:
    """The chapters with no cache record matching their current code cells."""
    stale = []
    for doc in docs:
        try:
            cache.match_cache_notebook(_read(ROOT / f"{doc}.md"))
        except KeyError:
            stale.append(doc)
    return stale


def _execute(doc: str, timeout: int):
    """Worker: execute one chapter in a fresh kernel; return the notebook,
    the seconds it took, and the error text (None on success)."""
    from jupyter_cache.executors.utils import single_nb_execution

    path = ROOT / f"{doc}.md"
    nb = _read(path)
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=timeout,
                                 allow_errors=False, meta_override=True)
    return nb, result.time, (result.exc_string if result.err else None)


def _timeout() -> int:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return int(config.get("execute", {}).get("timeout", 300))


def write_times(cache, docs: list[str]) -> None:
    """The table of execution times of every chapter, from the cache."""
    rows = []
    for doc in docs:
        path = str(ROOT / f"{doc}.md")
        records = [r for r in cache.list_cache_records() if r.uri == path]
        if records:
            r = max(records, key=lambda r: r.created)
            rows.append((doc, r.data.get("execution_seconds", float("nan")),
                         r.created.strftime("%Y-%m-%d %H:%M")))
    total = sum(s for _, s, _ in rows)
    lines = ["# Execution time of each chapter", "",
             "Written by `tools/execute.py` at every `make book`, from the "
             "execution cache (seconds in a fresh kernel, on the machine that "
             "executed the chapter). CI fails a chapter at 60 s or more.", "",
             "| chapter | seconds | executed |", "| --- | ---: | --- |"]
    lines += [f"| `{d}` | {s:.1f} | {c} |" for d, s, c in rows]
    lines += [f"| **all {len(rows)} chapters, serial** | **{total:.1f}** | |", ""]
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text("\n".join(lines))


def mark_changed(executed: list[str]) -> None:
    """Make Sphinx re-read the re-executed chapters, and the API appendix if
    a dlbook source file is newer than at the last run."""
    for doc in executed:
        (ROOT / f"{doc}.md").touch()
    newest = max(p.stat().st_mtime for p in (ROOT / "code" / "dlbook").rglob("*.py"))
    seen = float(CODE_STAMP.read_text()) if CODE_STAMP.exists() else 0.0
    if newest > seen:
        API.touch()
        CODE_STAMP.parent.mkdir(parents=True, exist_ok=True)
        CODE_STAMP.write_text(repr(newest))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(CACHE))
    docs = notebook_files()
    stale = stale_chapters(cache, docs)
    failed, executed = [], []
    if stale:
        print(f"execute: {len(stale)} stale chapter(s) over {args.jobs} "
              f"process(es): {', '.join(Path(d).name for d in stale)}", flush=True)
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            jobs = {pool.submit(_execute, d, _timeout()): d for d in stale}
            for job in as_completed(jobs):
                doc = jobs[job]
                nb, seconds, error = job.result()
                if error:
                    failed.append(doc)
                    print(f"execute: {doc} FAILED after {seconds:.1f} s\n{error}",
                          file=sys.stderr, flush=True)
                    continue
                cache.cache_notebook_bundle(
                    CacheBundleIn(nb, str(ROOT / f"{doc}.md"),
                                  data={"execution_seconds": seconds}),
                    check_validity=False, overwrite=True)
                executed.append(doc)
                print(f"execute: {doc}: {seconds:.1f} s", flush=True)
        print(f"execute: wall time {time.perf_counter() - start:.1f} s", flush=True)
    write_times(cache, docs)
    mark_changed(executed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
