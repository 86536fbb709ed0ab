"""Fixes to the book's output that the stock extensions get wrong.

HTML:

* sphinx-thebe's configuration script is registered twice, which makes the
  browser report a redeclared constant on every page; each page here gets
  every script once.

LaTeX (PDF):

* sphinx-proof renders a proof as an admonition box with an empty title bar;
  here a proof is typeset as in a printed book: the text, then a QED square.
* The appendices are lettered (A, B, ...) as in a printed book.
* The bibliography page becomes the book's one unnumbered bibliography: the
  numbered chapter that would otherwise stand empty before it is dropped.
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.writers.latex import LaTeXTranslator
from sphinx_proof.nodes import proof_node


def _visit_proof_latex(self: LaTeXTranslator, node: proof_node) -> None:
    # The directive wraps the proof's paragraphs in an untitled admonition;
    # unwrap it so that LaTeX sees plain paragraphs.
    for child in list(node.children):
        if isinstance(child, nodes.admonition):
            node.replace(child, child.children)
    self.body.append("\n\\begin{dlbookproof}\n")


def _depart_proof_latex(self: LaTeXTranslator, node: proof_node) -> None:
    self.body.append("\n\\end{dlbookproof}\n")


def _visit_proof_html(self, node) -> None:
    pass


PREAMBLE = r"""
% --- dlbook: proofs end with a QED square, no box ---
\newenvironment{dlbookproof}{\par\medskip}{\nobreak\hfill$\square$\par\medskip}
\usepackage{amssymb}
\usepackage{bm}
"""


def _extend_preamble(app: Sphinx, config) -> None:
    elements = dict(config.latex_elements or {})
    elements["preamble"] = elements.get("preamble", "") + PREAMBLE
    config.latex_elements = elements


def _postprocess_tex(app: Sphinx, exc: Exception | None) -> None:
    """Edit the written .tex before ``make all-pdf`` compiles it."""
    if exc is not None or app.builder.name != "latex":
        return
    for tex in Path(app.outdir).glob("*.tex"):
        text = tex.read_text(encoding="utf-8")
        text = text.replace("\\part{Appendices}", "\\appendix\n\\part{Appendices}", 1)
        # \chapter{Bibliography}, its labels and intro, then the bibliography:
        # keep the labels (links point at them), drop the heading and prose.
        text = re.sub(
            r"\\chapter\{Bibliography\}\n(\\label\{[^\n]*\n)(.*?)"
            r"(?=\\begin\{sphinxthebibliography\})",
            lambda m: "\\phantomsection" + m.group(1), text, count=1, flags=re.S)
        tex.write_text(text, encoding="utf-8")


def _dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        # The same inline script can come once with filename None and once
        # with filename "": compare by content.
        key = (getattr(js, "filename", str(js)) or "",
               repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_proof")
    app.add_node(proof_node, override=True,
                 html=(_visit_proof_html, _visit_proof_html),
                 latex=(_visit_proof_latex, _depart_proof_latex))
    app.connect("config-inited", _extend_preamble, priority=400)
    app.connect("build-finished", _postprocess_tex)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True,
            "parallel_write_safe": True}
