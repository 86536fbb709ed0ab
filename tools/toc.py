"""The book's table of contents as a list of pages (shared by tools and tests)."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files(root: Path = ROOT) -> list[str]:
    """Every page of ``_toc.yml``, root first, as paths without ``.md``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def notebook_files(root: Path = ROOT) -> list[str]:
    """The pages that have code cells (they are executed by the build)."""
    return [f for f in toc_files(root)
            if "```{code-cell}" in (root / f"{f}.md").read_text()]
