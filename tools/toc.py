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


#: The dlbook modules each chapter owns, by chapter slug (../shared/OUTLINE.md).
#: A module may import shared machinery and the modules of its own or earlier
#: chapters; a chapter may import the same (tests/test_lint.py enforces it).
CHAPTER_MODULES = {
    "history": ["history"], "backprop": ["autodiff"], "training": ["optim"],
    "approximation": ["approximation"], "generalization": ["generalization"],
    "cnn": ["cnn"], "gnn": ["gnn"], "geometry": ["geometry"],
    "transformers": ["transformer"], "memory": ["rnn"], "practice": ["practice"],
    "reconstruction": ["reconstruction"], "similarity": ["similarity"],
    "representation-theory": ["representation"], "generative-basics": ["generative"],
    "vae": ["vae"], "conditional": ["conditional"], "ood": ["robustness"],
    "transfer-models": ["transfer"], "transfer-data": ["transfer"],
    "scaling": ["scaling"], "architecture-theory": ["architecture_theory"],
    "optimization-theory": ["optimization_theory"], "efficiency": ["efficiency"],
    "reinforcement": ["rl"], "language-models": ["language"],
    "deployment": ["deployment"],
}
#: Shared machinery: usable by every chapter and module.
SHARED_MODULES = {"data", "nn", "train", "plot", "seed"}


def module_ranks(root: Path = ROOT) -> dict[str, int]:
    """Each chapter module's position: the index in ``_toc.yml`` of the first
    chapter that owns it (chapters not yet in the book rank after all)."""
    order = [Path(f).name for f in toc_files(root)]
    ranks = {}
    for slug, mods in CHAPTER_MODULES.items():
        pos = order.index(slug) if slug in order else len(order) + 1
        for m in mods:
            ranks[m] = min(pos, ranks.get(m, pos))
    return ranks
