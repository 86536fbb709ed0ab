"""The book's figure style, applied by an explicit call (shared machinery).

Every chapter's first cell calls :func:`use_book_style`. It sets a small,
print-friendly matplotlib style and asks the notebook to emit each figure both
as a high-resolution PNG (used by the HTML site) and as vector PDF (used by the
LaTeX build), so figures are sharp on screen and on paper.
"""
from __future__ import annotations

import logging

import matplotlib as mpl

__all__ = ["use_book_style", "COLORS", "FULL", "HALF"]

#: A colour-blind-safe qualitative palette (Okabe and Ito, 2008).
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
          "#56B4E9", "#F0E442", "#000000"]
#: Figure size (inches) of a full-width figure.
FULL = (7.0, 3.2)
#: Figure size (inches) of a half-width figure.
HALF = (3.6, 2.8)

_STYLE = {
    "figure.figsize": FULL,
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 9.5,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
    "pdf.fonttype": 42,
}


def use_book_style(formats: tuple[str, ...] = ("retina", "pdf")) -> None:
    """Apply the book's matplotlib style and figure output formats.

    ``formats`` are IPython's inline formats; the default gives the HTML
    build a 2x PNG and the PDF build a vector figure. Outside IPython only
    the style is applied. It also keeps fontTools' logger to errors (see the
    comment in the code).
    """
    mpl.rcParams.update(_STYLE)
    # Embedding fonts in PDF figures makes fontTools log a harmless note about
    # a font's timestamp on stderr, which the strict build would treat as an
    # error output; keep its logger to real errors.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=COLORS)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: style only
        return
    if get_ipython() is not None:
        set_matplotlib_formats(*formats)
