"""The book's two editions: the default one with collapsed solutions, and a
student edition without any solution (``make book EDITION=student``).

The edition comes from the environment variable ``DLBOOK_EDITION``
(``full``, the default, or ``student``), which the Makefile sets. In the
student edition every solution is removed from the document tree after
sphinx-exercise has merged its gated form (``solution-start`` ...
``solution-end``, whose code cells run during the build) into one node, so
neither the text nor the code nor the outputs of a solution reach the HTML or
the PDF. (sphinx-exercise's own ``hide_solutions`` drops only the
``solution-start`` marker of a gated solution and leaves its content in the
page, which is why the book does not use it.)
"""
from __future__ import annotations

import os

from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx_exercise.nodes import solution_node

EDITIONS = ("full", "student")


class RemoveSolutions(SphinxTransform):
    """Drop every solution node (after MergeGatedSolutions, priority 10)."""

    default_priority = 20

    def apply(self) -> None:
        if self.config.dlbook_edition != "student":
            return
        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


def _check(app: Sphinx, config) -> None:
    if config.dlbook_edition not in EDITIONS:
        raise ValueError(f"DLBOOK_EDITION must be one of {EDITIONS}, "
                         f"got {config.dlbook_edition!r}")


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_exercise")
    app.add_config_value("dlbook_edition", os.environ.get("DLBOOK_EDITION", "full"),
                         "env")
    app.connect("config-inited", _check)
    app.add_transform(RemoveSolutions)
    return {"version": "1.0", "parallel_read_safe": True,
            "parallel_write_safe": True}
