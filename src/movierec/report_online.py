"""The "Online evaluation" section of `movierec report`: how each model version's lists fared.

`online_frame(store)` gathers, per model version registered in (or seen in the impressions of)
a feedback store, `movierec.online.evaluate_feedback` (lists, users, rated share, hit@k and
NDCG@k of the liked movies among the impressions) and, for versions whose model folder (the
path the store registered) can still be loaded, `movierec.online.full_ranking` (the same liked
movies against the version's full ranking of the catalog). `online_section` renders it as a
table and a bar chart; `build_report(..., store=URL)` adds it to a benchmark report, and
`build_online_report(folder, URL)` writes a page with this section alone (`movierec report
FOLDER --store URL` on a folder without results.json, e.g. a models root).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from movierec import __version__
from movierec.errors import MovieRecError
from movierec.io import atomic_write_text
from movierec.report import _CSS, OPTIONAL_SECTIONS, _e, _frame_html, _note, _Page

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from movierec.online import Ranker
    from movierec.store import Store

__all__ = ["build_online_report", "online_frame", "online_section", "store_section"]

logger = logging.getLogger(__name__)



def _rankers(store: Store, versions: list[str], k: int) -> tuple[dict[str, Ranker], list[str]]:
    """A service ranker per version whose registered model folder loads; notes for the rest."""
    from movierec.artifact import load_model
    from movierec.online import service_ranker

    paths = {v.version: v.path for v in store.model_versions()}
    rankers: dict[str, Ranker] = {}
    notes = []
    for version in versions:
        path = paths.get(version)
        if path is None:
            notes.append(f"{version}: not registered in the store (no model folder known)")
            continue
        try:
            rankers[version] = service_ranker(load_model(path), k)
        except (MovieRecError, OSError, ValueError) as exc:
            notes.append(f"{version}: model folder {path} could not be loaded ({exc})")
    return rankers, notes


def online_frame(store: Store, *, k: int = 10, relevance: float = 4.0,
                 full: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Per model version: status, the shown-list metrics and the full-ranking metrics.

    Args:
        store: the feedback store.
        k: cut-off of hit rate and NDCG.
        relevance: ratings at or above this are "liked".
        full: also rank again with each version's model (`movierec.online.full_ranking`).

    Returns:
        (frame, notes): one row per version (sorted): version, status, the columns of
        `evaluate_feedback`, full_lists, `full_hit@k`, `full_ndcg@k` (None where the version's
        model is unavailable or no list was followed by a liked rating); notes say which
        versions could not be ranked again and why.
    """
    from movierec.online import evaluate_feedback, full_ranking

    impressions = store.impressions_since(0.0)
    ratings = store.all_ratings()
    status = {v.version: v.status for v in store.model_versions()}
    frame = evaluate_feedback(impressions, ratings, k=k, relevance=relevance, versions=status)
    frame.insert(1, "status", [status.get(v) for v in frame["version"]])
    judged = frame.loc[frame["liked_lists"] > 0, "version"].tolist()
    rankers, notes = _rankers(store, judged, k) if full else ({}, [])
    full_cols = ["full_lists", f"full_hit@{k}", f"full_ndcg@{k}"]
    ranked = full_ranking(impressions, ratings, rankers, k=k, relevance=relevance)
    frame = frame.merge(ranked, on="version", how="left")
    frame["full_lists"] = frame["full_lists"].fillna(0).astype("int64")
    metrics = ["rated_share", f"hit@{k}", f"ndcg@{k}", *full_cols[1:]]
    frame[metrics] = frame[metrics].astype(object).where(frame[metrics].notna(), None)
    return frame, notes


def _figure(frame: pd.DataFrame, k: int) -> Figure:
    """Grouped bars per version: rated share, hit@k and NDCG@k among the shown and full lists."""
    import numpy as np

    from movierec.plots._base import model_colors, new_figure, style

    series = {"rated share": "rated_share", f"hit@{k} shown": f"hit@{k}",
              f"NDCG@{k} shown": f"ndcg@{k}", f"hit@{k} full": f"full_hit@{k}",
              f"NDCG@{k} full": f"full_ndcg@{k}"}
    shown = frame[frame["lists"] > 0]
    if shown.empty:
        raise ValueError("no version showed a list yet")
    fig, (ax,) = new_figure(figsize=(max(6.5, 1.6 * len(shown) + 2.5), 4.0))
    x = np.arange(len(shown))
    width = 0.8 / len(series)
    colors = model_colors(list(series))
    for n, (label, col) in enumerate(series.items()):
        values = pd.to_numeric(shown[col], errors="coerce").fillna(0.0).to_numpy(float)
        ax.bar(x + (n - (len(series) - 1) / 2) * width, values, width, label=label,
               color=colors[label])
    ax.set_xticks(x, shown["version"].tolist())
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over lists")
    ax.set_title("Online evaluation per model version")
    fig.legend(fontsize="small", ncols=len(series), loc="outside lower center")
    style(ax)
    return fig


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "–"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    return frame.apply(lambda column: column.map(cell))


def online_section(page: _Page, frame: pd.DataFrame, notes: list[str], *, k: int,
                   relevance: float, source: str) -> str:
    """The section's HTML: what was measured, the table per version, the chart and the notes."""
    intro = (f"<p>Lists shown by the service with <code>?log=true</code> in {_e(source)}, and the "
             "ratings that followed them: each rating is credited to the list it cites, else to "
             "the latest list shown to the same user before it was written. <i>rated_share</i>: "
             "lists after which a shown movie was rated. Among the lists followed by a rating "
             f"≥ {relevance:g} (<i>liked_lists</i>): <i>hit@{k}</i> and <i>ndcg@{k}</i> of "
             f"those movies in the list as shown; <i>full_hit@{k}</i> and <i>full_ndcg@{k}</i> "
             "in the version's full ranking of the catalog, replayed with the ratings stored "
             "before the list was shown.</p>")
    if frame.empty:
        return intro + _note("The store holds no model version and no impression yet.")
    table = _frame_html(_formatted(frame), ("version", "status"))
    chart = page.figure("online-evaluation", lambda: _figure(frame, k),
                        "Per version: share of lists that led to a rating, and hit rate / NDCG "
                        f"at {k} of the liked movies among the shown lists and in the full "
                        "ranking.") if (frame["lists"] > 0).any() else ""
    return intro + f"<div class='scroll'>{table}</div>" + chart + "".join(
        _note(f"Full ranking left out for {n}") for n in notes)


def store_section(page: _Page, url: str | None, *, k: int = 10,
                  relevance: float = 4.0) -> str:
    """Open the store at `url` (default: $MOVIEREC_STORE's) and render the section."""
    from movierec.store import Store

    with Store(url) as store:
        frame, notes = online_frame(store, k=k, relevance=relevance)
        source = store.display_url
    return online_section(page, frame, notes, k=k, relevance=relevance, source=source)


def build_online_report(folder: str | Path, url: str | None, *, k: int = 10,
                        relevance: float = 4.0, dpi: int = 110) -> Path:
    """Write `folder/report.html` with the online-evaluation section alone; return its path."""
    folder = Path(folder)
    page = _Page(folder, dpi)
    body = store_section(page, url, k=k, relevance=relevance)
    sid, title = "online", OPTIONAL_SECTIONS["online"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">"
            f"<title>movierec online evaluation</title><style>{_CSS}</style></head><body><main>"
            f"<h1>movierec online evaluation</h1><p class='muted'>movierec {_e(__version__)} · "
            f"generated {stamp}</p><section id='{sid}'><h2>{_e(title)}</h2>{body}</section>"
            "</main></body></html>\n")
    out = folder / "report.html"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return out
