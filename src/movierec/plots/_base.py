"""Figure creation, styling and PNG output shared by every plot.

Figures are built as `matplotlib.figure.Figure` objects with an explicit Agg canvas, never through
pyplot: nothing global is switched (a notebook keeps its own backend), no figure manager keeps
them alive, and rendering works without a display.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from movierec.io import atomic_write_bytes

#: Colours of the fixed series; models take the tab10 colours in run order.
CATALOG = "#b8b8b8"
HISTORY = "#222222"
HEAD = "#d62728"
TAIL = "#1f77b4"
USER = "#1f77b4"
MOVIE = "#ff7f0e"
WHERE = {"only history": "#9ecae1", "both": "#6a51a3", "only recommended": "#fd8d3c"}


def _listed(name: str) -> list[tuple[float, float, float]]:
    """The colours of one of matplotlib's listed (qualitative) colormaps, as RGB tuples."""
    cmap = mpl.colormaps[name]
    assert isinstance(cmap, ListedColormap), name
    return list(cmap.colors)  # type: ignore[arg-type]  # stubs: ArrayLike, here RGB tuples


#: Distinct model colours: tab10, then tab20's light shades (not its light grey, too close to
#: CATALOG), then the darkest and the middle shade of each tab20b hue: 29 before any repeats.
MODEL_PALETTE = (
    *(mpl.colors.to_hex(c) for c in _listed("tab10")),
    *(mpl.colors.to_hex(c) for c in _listed("tab20")[1::2] if c[0] != c[2]),
    *(mpl.colors.to_hex(c) for c in _listed("tab20b")[0::4]),
    *(mpl.colors.to_hex(c) for c in _listed("tab20b")[2::4]),
)
#: Markers of dot plots, changed every ten models so that a light shade differs from its dark
#: one by shape too.
MODEL_MARKERS = ("o", "s", "^", "D", "v", "P")


def model_colors(models: list[str]) -> dict[str, str]:
    """A stable colour per model, in the order given.

    tab10 up to ten models, then `MODEL_PALETTE`'s distinct colours (repeated only past 29 models).
    """
    return {m: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, m in enumerate(models)}


def model_markers(models: list[str]) -> dict[str, str]:
    """A marker per model for dot plots: circles for the first ten, squares for the next..."""
    return {m: MODEL_MARKERS[(i // 10) % len(MODEL_MARKERS)] for i, m in enumerate(models)}


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (7.0, 4.2),
               **subplot_kw: Any) -> tuple[Figure, list[Axes]]:
    """A constrained-layout Figure on an Agg canvas and its axes as a flat list."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, [ax for row in axes for ax in row]


def style(ax: Axes, grid: Literal["x", "y", "both", ""] = "y") -> None:
    """Light grid on the value axis, no top/right frame."""
    ax.spines[["top", "right"]].set_visible(False)
    if grid:
        ax.grid(axis=grid, color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)


def empty(ax: Axes, message: str) -> None:
    """Mark an axes as having nothing to show, saying why."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes,
            color="#666666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _human(value: float, _pos: object = None) -> str:
    """Tick label of a count: 950, 12k, 1.5M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def counts(axis: Axis) -> None:
    """Format an axis of counts: at most 6 integer ticks labelled 950, 12k, 1.5M."""
    axis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    axis.set_major_formatter(FuncFormatter(_human))


def shorten(text: str, width: int = 38) -> str:
    """`text` cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> bytes:
    """Write the figure as a PNG atomically and return its bytes."""
    data = to_png(fig, dpi)
    atomic_write_bytes(path, data)
    return data
