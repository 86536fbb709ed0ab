"""Accessibility of the book's HTML and PDF (WCAG 2.1 AA; see tests/test_a11y.py).

HTML, where the stock theme and extensions fall short:

* Theme components whose accessible name disagreed with their visible text
  (WCAG 2.5.3, "label in name") are overridden by the templates in
  ``templates/``: the search field, the colour-mode switch; the logo link in the
  side bar sits in a navigation landmark.
* myst-nb names every hidden-cell toggle "Toggle hidden content" while it
  shows "Show code cell source"; the label is dropped, so the toggle's name is
  what it says.
* docutils marks bibliography entries with the deprecated ARIA role
  ``doc-biblioentry`` inside a ``role="list"``, which then has no list items;
  they become ``listitem``.
* An empty header cell (the corner of a table whose first column names its
  rows) becomes a data cell: a header must say what it heads.

Colours live in ``book/_static/a11y.css`` (``html_css_files`` in _config.yml),
MathJax's assistive MathML in ``mathjax3_config``.

PDF: the document information (title, author, subject, language) is embedded
with hyperref, and the outline (bookmarks) lists parts, chapters, sections and
subsections, numbered as in the text, with the unnumbered bibliography.
"""
from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _add_templates(app: Sphinx, config) -> None:
    # First in the search path: ahead of the theme's own components.
    config.templates_path.insert(0, str(TEMPLATES))


_BODY_FIXES = [
    # myst-nb's hidden-cell toggle: let the visible "Show code cell source" name it.
    (re.compile(r'<summary aria-label="Toggle hidden content">'), "<summary>"),
    # ARIA 1.2 deprecates doc-biblioentry; a role="list" needs listitems.
    (re.compile(r'role="doc-biblioentry"'), 'role="listitem"'),
    # An empty corner cell of a table's header row heads nothing: a data cell.
    (re.compile(r'<th class="head">(\s*(?:<p>\s*</p>)?\s*)</th>'),
     r'<td class="head">\1</td>'),
]


def _fix_body(app: Sphinx, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if not body:
        return
    for pattern, replacement in _BODY_FIXES:
        body = pattern.sub(replacement, body)
    context["body"] = body


def _pdf_metadata(app: Sphinx, config) -> None:
    language = (config.language or "en").replace("_", "-")
    setup = (
        "\n% --- dlbook (a11y.py): document information and a complete outline ---\n"
        # Options that hyperref reads once, before \begin{document}.
        f"\\hypersetup{{pdflang={{{language}}}, pdfdisplaydoctitle=true,"
        # Parts, chapters, sections and subsections in the outline, numbered.
        " bookmarksdepth=subsection, bookmarksnumbered=true, bookmarksopen=true,"
        " bookmarksopenlevel=0}\n"
        # The title page's title and author, once \title and \author are set.
        "\\makeatletter\n"
        "\\AtBeginDocument{\\hypersetup{pdftitle={\\@title}, pdfauthor={\\@author},"
        " pdfsubject={Deep learning}}}\n"
        "\\makeatother\n")
    elements = dict(config.latex_elements or {})
    elements["preamble"] = elements.get("preamble", "") + setup
    config.latex_elements = elements


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _add_templates)
    app.connect("config-inited", _pdf_metadata, priority=450)
    app.connect("html-page-context", _fix_body)
    return {"version": "1.0", "parallel_read_safe": True,
            "parallel_write_safe": True}
