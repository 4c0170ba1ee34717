"""A self-contained HTML report of a benchmark folder: data, protocol, results and every figure.

`build_report(folder)` reads `results.json` and `lists/*.parquet` written by `movierec benchmark
--out`, loads the dataset named in results.json (for titles, genres and the users' histories),
re-creates the training part of the split from its record, draws every figure of
`movierec.plots`, writes them as PNGs under `folder/figures/` and embeds them as base64 in one
`folder/report.html` that needs no network (a Content-Security-Policy forbids any fetch).
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from movierec import __version__
from movierec import analysis as A
from movierec.benchmark import RANKING, BenchmarkResult
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.io import atomic_write_text
from movierec.metrics import best_direction

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: Section ids, in page order (tests check that each is present).
SECTIONS = {"summary": "Summary", "dataset": "Dataset", "protocol": "Protocol",
            "results": "Results", "significance": "Significance",
            "exploration": "Data exploration",
            "comparison": "Model comparison", "training": "Training curves",
            "genres": "Genres of the recommendations", "popularity": "Popularity bias",
            "user-card": "User card"}
#: Sections shown only when asked for: "online" with a feedback store (`movierec.report_online`).
OPTIONAL_SECTIONS = {"online": "Online evaluation"}

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.45}
main{max-width:1150px;margin:0 auto;padding:1.5rem 2rem 4rem;background:#fff}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e5e5e5;padding-bottom:.2rem;margin-top:2.4rem}
nav a{margin-right:.9rem;font-size:.92rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.25rem .6rem;text-align:right;vertical-align:top}
th:first-child,td:first-child,td.text,th.text{text-align:left}
thead th{background:#f3f3f3}
td.best{font-weight:700}
figure{margin:1.2rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88rem;color:#555;max-width:60rem}
.note{background:#fff7e0;border-left:4px solid #f0b400;padding:.4rem .8rem;font-size:.9rem}
.muted{color:#777}.scroll{overflow-x:auto}
.cards{display:flex;gap:2rem;flex-wrap:wrap}.cards>div{flex:1 1 26rem}
"""


@dataclass
class _Page:
    """Where the figures go, at which resolution, and which ones were written."""

    folder: Path
    dpi: int = 110
    written: list[Path] = field(default_factory=list)

    def figure(self, name: str, draw: Callable[[], Figure], caption: str) -> str:
        """Draw one figure, write its PNG and return the <figure> element (or a note)."""
        from movierec.plots import save_png

        try:
            fig = draw()
        except (MovieRecError, ValueError, KeyError) as exc:
            logger.warning("figure %s skipped: %s", name, exc)
            return _note(f"Figure “{name}” could not be drawn: {exc}")
        path = self.folder / "figures" / f"{name}.png"
        data = save_png(fig, path, dpi=self.dpi)
        self.written.append(path)
        alt = fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()),
                                          name)
        b64 = base64.b64encode(data).decode("ascii")
        return (f'<figure id="fig-{name}"><img alt="{_e(alt)}" src="data:image/png;base64,'
                f'{b64}"><figcaption>{caption}</figcaption></figure>')


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th class='text'>{_e(k)}</th><td class='text'>{_e(v)}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _frame_html(frame: pd.DataFrame, text_cols: Sequence[str] = ()) -> str:
    head = "".join(f"<th{' class=text' if c in text_cols else ''}>{_e(c)}</th>"
                   for c in frame.columns)
    body = "".join("<tr>" + "".join(
        f"<td{' class=text' if c in text_cols else ''}>{_e(v)}</td>" for c, v in row.items())
        + "</tr>" for _, row in frame.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- data --------------------------------------------------------------------------------------
def load_dataset(name: str, *, data_dir: str | Path | None = None,
                 dataset: str | Path | None = None) -> Dataset:
    """The dataset a benchmark ran on: a release name, `data_dir/name`, or an explicit path.

    Args:
        name: the dataset name recorded in results.json.
        data_dir: folder of releases (default $MOVIEREC_DATA_DIR, then the cache).
        dataset: release name or folder to use instead of `name`.
    """
    from movierec.data import load
    from movierec.data.releases import RELEASES

    target = dataset if dataset is not None else name
    if isinstance(target, str) and target in RELEASES:
        return load(target, data_dir=data_dir)
    if data_dir is not None and (Path(data_dir) / str(target)).is_dir():
        return load(Path(data_dir) / str(target))
    return load(target)


def _training_part(result: BenchmarkResult, ds: Dataset, data_dir: str | Path | None
                   ) -> tuple[Dataset, str]:
    """(training data for histories and popularity, a sentence saying where it came from)."""
    try:
        split = A.recreate_split(result, ds, data_dir=data_dir)
    except (MovieRecError, ValueError, KeyError) as exc:
        return ds, (f"The training split could not be re-created ({exc}); users' histories, "
                    "genre shares and popularity below use every rating of the dataset instead.")
    return split.train, (
        f"The lists store only item ids, so the training part ({split.train.n_ratings:,} "
        f"ratings) was re-created for histories, genres and popularity: the same "
        f"“{split.name}” split of the same data with the recorded fractions and seed; its part "
        "sizes match those in results.json.")


# --- sections ----------------------------------------------------------------------------------
def _summary(result: BenchmarkResult, k: int) -> str:
    models = list(dict.fromkeys(r["model"] for r in result.runs))
    seeds = sorted({r["seed"] for r in result.runs})
    table = result.table(k)
    best = ""
    if f"ndcg@{k}" in table:
        top = table[f"ndcg@{k}"].idxmax()
        best = f" Best NDCG@{k}: <b>{_e(top)}</b> ({table.loc[top, f'ndcg@{k}']:.4f})."
    return (f"<p>{len(models)} model(s) ({_e(', '.join(models))}) on <b>{_e(result.dataset)}"
            f"</b>, seed(s) {_e(', '.join(map(str, seeds)))}, lists of length {k}.{best}</p>")


def _dataset(ds: Dataset | None, reason: str) -> str:
    if ds is None:
        return _note(reason)
    from movierec.data.describe import describe

    d = describe(ds)
    rows = [("name", d["name"]), ("users", _fmt(d["users"])), ("movies", _fmt(d["items"])),
            ("ratings", _fmt(d["ratings"])), ("density", f"{d['density']:.3%}"),
            ("sparsity", f"{d['sparsity']:.3%}"),
            ("rating scale", " – ".join(f"{v:g}" for v in d["rating_scale"] or ())),
            ("mean rating", _fmt(d["rating_mean"], 3))]
    if d["time_range"]:
        rows.append(("time range", f"{d['time_range']['first']} to {d['time_range']['last']}"))
    for side, label in (("user_degree", "ratings per user"), ("item_degree", "ratings per movie")):
        s = d[side]
        rows.append((label, f"min {s['min']}, median {s['median']:g}, mean {s['mean']:.1f}, "
                            f"max {s['max']}, Gini {s['gini']:.2f}"))
    rows.append(("users table (age, gender, occupation)", "yes" if d["has_users_table"] else "no"))
    return _table(rows)


def _protocol(result: BenchmarkResult, train_note: str) -> str:
    split = result.split
    counted = ("_ratings", "_unseen_users", "_unseen_items", "_rows_with_unseen")
    params = ", ".join(f"{k}={v}" for k, v in split.items()
                       if k != "name" and not k.endswith(counted))
    sizes = ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in split.items()
                      if k.endswith(counted))
    proto = result.protocol
    rel = proto.get("relevance", 4.0)
    rows = [("split", f"{split.get('name')} ({params})"), ("part sizes", sizes),
            ("candidates", "every training movie the user has not rated in training (full "
                           "ranking)" if proto.get("candidates") == "all-unseen"
             else proto.get("candidates")),
            ("relevant", f"test ratings ≥ {rel:g}" if rel > 0 else "every test rating"),
            ("list lengths k", ", ".join(map(str, proto.get("k", [])))),
            ("seeds", ", ".join(sorted({str(r["seed"]) for r in result.runs}))),
            ("rating metrics", "RMSE and MAE on the dataset's rating scale, for models that "
                               "predict ratings"),
            ("head / tail", "head = the most rated training movies that together hold 20 % of "
                            "the training ratings; tail = all others")]
    return _table(rows) + f"<p>{_e(train_note)}</p>"


def _results(result: BenchmarkResult, k: int) -> str:
    table = result.table(k)
    if table.empty:
        return _note("results.json holds no runs")
    metrics = [c for c in table.columns if not c.endswith("_std")]
    accuracy = [c for c in metrics if c in ("rmse", "mae") or c.split("@")[0] in RANKING]
    rest = [c for c in metrics if c not in accuracy]
    out = []
    for cols, what in ((accuracy, "Accuracy"), (rest, "Beyond accuracy and time (seconds)")):
        head = "".join(f"<th>{_e(c)}{_arrow(c)}</th>" for c in cols)
        rows = []
        for model, row in table.iterrows():
            cells = []
            for c in cols:
                v, std = float(row[c]), row.get(f"{c}_std")
                text = _e(_fmt(v, 4 if not c.endswith("seconds") else 3))
                if std is not None and std == std and v == v:
                    text += f"<br><small class='muted'>± {float(std):.2g}</small>"
                cells.append(f"<td{_best(table, c, model)}>{text}</td>")
            rows.append(f"<tr><td>{_e(model)}</td>{''.join(cells)}</tr>")
        out.append(f"<h3>{what}</h3><div class='scroll'><table><thead><tr><th>model</th>{head}"
                   f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    return "".join(out) + (
        "<p class='muted'>Mean over seeds (± standard deviation where several seeds ran); ↑ "
        "higher is better, ↓ lower is better, and the best value is bold, for the accuracy "
        "metrics, where that holds by definition; beyond-accuracy metrics (coverage, novelty, "
        "popularity...) describe the lists and have no arrow and no best; – the "
        "model cannot compute it.</p>")


def _arrow(col: str) -> str:
    d = best_direction(col)
    return " ↑" if d == "higher" else " ↓" if d == "lower" else ""


def _best(table: pd.DataFrame, col: str, model: Any) -> str:
    """Bold only where a better value is better by definition.

    Not novelty, ARP, coverage...: their extreme goes to weak models, e.g. random lists are the most
    novel.
    """
    d = best_direction(col)
    values = table[col].dropna()
    if d is None or values.empty or len(values) < 2:
        return ""
    best = values.idxmax() if d == "higher" else values.idxmin()
    return " class='best'" if best == model else ""


def _significance(page: _Page, folder: Path, k: int) -> str:
    """Interval bars and a model x model significance matrix from the per-user results."""
    from movierec import compare as C
    from movierec import plots as P
    from movierec.stats import bootstrap_ci

    try:
        frame = C.load_per_user(folder)
    except (MovieRecError, OSError, ValueError) as exc:
        return _note(f"No significance tests: {exc}")
    parts = []
    for metric in (f"ndcg@{k}", "rmse"):
        try:
            values = C.user_values(frame, metric)
        except (ValueError, KeyError):
            continue
        if values.shape[1] < 2:
            continue
        rows = {}
        for model in values.columns:
            v = values[model].dropna()
            low, high = bootstrap_ci(v.to_numpy(), groups=v.index.get_level_values("fold"))
            rows[model] = {"mean": float(v.mean()), "low": low, "high": high}
        intervals = pd.DataFrame.from_dict(rows, orient="index")
        table = C.compare(frame, metric)
        name = metric.replace("@", "-at-")
        parts.append(page.figure(
            f"intervals-{name}", partial(
                P.interval_bars, intervals, metric,
                title=f"{metric}: mean over test users with a 95 % bootstrap interval"),
            f"Each model's mean {_e(metric)} over its test users (pooled over folds, averaged "
            "over seeds) with a 95 % percentile bootstrap interval (users resampled)."))
        shown = table[["model", "baseline", "users", "diff", "ci_low", "ci_high", "p_value",
                       "p_corrected", "effect_size", "verdict"]].copy()
        for col in ("diff", "ci_low", "ci_high", "effect_size"):
            shown[col] = shown[col].map(lambda v: f"{v:+.4f}")
        for col in ("p_value", "p_corrected"):
            shown[col] = shown[col].map(lambda v: f"{v:.2g}")
        parts.append(f"<h3>{_e(metric)} against {_e(table['baseline'].iloc[0])}</h3>"
                     + _frame_html(shown, ("model", "baseline", "verdict")))
        matrix = C.significance_matrix(frame, metric)
        parts.append(page.figure(
            f"significance-{name}", partial(P.significance_matrix, matrix, metric),
            f"Every pair of models on {_e(metric)}: paired t-test over (fold, user) pairs, "
            "Holm-corrected over all pairs at α = 0.05."))
    if not parts:
        return _note("No metric has per-user values for two or more models.")
    return "".join(parts) + (
        "<p class='muted'>diff = model − baseline, with its 95 % paired bootstrap interval; "
        "p = paired t-test over users, corrected by Holm over the rows; effect size = Cohen's "
        "d_z (mean difference / its standard deviation). `movierec compare` gives the same "
        "table with other tests and corrections.</p>")


def _exploration(page: _Page, ds: Dataset | None, reason: str, graph_users: int,
                 graph_items: int, rng: int) -> str:
    if ds is None:
        return _note(reason)
    from movierec import plots as P

    parts = [
        page.figure("rating-distribution", lambda: P.rating_distribution(ds),
                    "How often each rating value was given."),
        page.figure("ratings-over-time", lambda: P.ratings_over_time(ds),
                    "Ratings and distinct active users per period, over the release's time span."),
        page.figure("top-genres", lambda: P.top_genres(ds, 15),
                    "The 15 largest genres by number of movies and by number of ratings."),
        page.figure("long-tail", lambda: P.long_tail(ds),
                    "Left: ratings per movie, most rated first; the red head holds 20 % of the "
                    "ratings. Right: share of all ratings held by the most rated share of movies."),
        page.figure("degree-distributions", lambda: P.degree_distributions(ds),
                    "How many users (movies) have a given number of ratings, log-log axes."),
        page.figure("sparsity", lambda: P.sparsity(ds),
                    "The user x movie rating matrix, users and movies ordered by activity; each "
                    "pixel shows the share of rated pairs in its block (white: none)."),
        page.figure("bipartite-graph", lambda: P.bipartite_graph(ds, graph_users, graph_items,
                                                                  rng=rng),
                    f"{graph_users} random users (blue) and {graph_items} of the movies they "
                    "rated (orange), one line per rating; node size grows with the node's number "
                    f"of ratings in the whole dataset (sample seed {rng})."),
    ]
    if ds.users is not None:
        parts.append(page.figure("demographics", lambda: P.demographics(ds),
                                 "Users by age group, gender and occupation."))
    else:
        parts.append(_note(f"{ds.name} has no users table: no age, gender or occupation."))
    if ds.items is not None and ds.items["year"].notna().any():
        parts.append(page.figure("release-years", lambda: P.release_years(ds),
                                 "Number of rated movies released in each year."))
    return "".join(parts)


def _comparison(page: _Page, result: BenchmarkResult, k: int) -> str:
    from movierec import plots as P

    seeds = len({r["seed"] for r in result.runs})
    bars = "Error bars: standard deviation over seeds. " if seeds > 1 else ""
    fams = set(A.metric_frame(result, k)["family"])
    captions = {"rating": "RMSE and MAE of the predicted ratings on the test ratings (lower is "
                          "better); only models that predict ratings appear.",
                "ranking": f"Ranking accuracy of the top-{k} lists against the relevant test "
                           "movies.",
                "beyond": f"Beyond accuracy of the top-{k} lists: catalog coverage, intra-list "
                          "genre diversity, novelty (mean self-information), average popularity "
                          "of recommended movies, personalization and the Gini coefficient of "
                          "exposure; each has its own scale. None is better high or low by "
                          "definition: a random recommender has the most novel and least "
                          "popular lists."}
    return "".join(page.figure(f"comparison-{fam}",
                               partial(P.model_comparison, result, fam, k),
                               bars + captions[fam]) for fam in captions if fam in fams)


def _training(page: _Page, result: BenchmarkResult) -> str:
    from movierec import plots as P

    hist = A.training_history(result)
    models = list(dict.fromkeys(hist["model"]))
    if not models:
        return _note("No neural model ran in this benchmark: no training curves.")
    return "".join(page.figure(f"training-{m}", partial(P.training_curves, result, m),
                               "Left: mean training loss per epoch. Right: the metric the "
                               "trainer early-stops on, on the validation part; the star marks "
                               "the epoch whose weights were kept.") for m in models)


def _genres(page: _Page, train: Dataset, lists: dict[str, pd.DataFrame], k: int,
            user_id: int, model: str) -> str:
    from movierec import plots as P

    if not train.genres:
        return _note(f"{train.name} has no genres.")
    return (page.figure("genre-distribution", lambda: P.genre_distribution(train, lists, k),
                        "Share of movies carrying each genre: in the catalog (each training "
                        "movie once), in the test users' training histories (each rating), and "
                        f"in each model's top-{k} lists (each recommendation); past "
                        f"{P.MANY_MODELS} models, as a table of shares (darker: larger).")
            + page.figure("genre-overlap",
                          lambda: P.genre_overlap(train, lists, user_id, model),
                          f"Left: for user {user_id} and {model}, movies per genre in the "
                          "history (left) and in the list (right), coloured by whether the "
                          "genre occurs only in the history, in both, or only in the "
                          "recommendations. Right: the mean number of genres in each group "
                          "over all users with a list."))


def _popularity(page: _Page, train: Dataset, lists: dict[str, pd.DataFrame]) -> str:
    from movierec import plots as P

    return page.figure("popularity-bias", lambda: P.popularity_bias(train, lists),
                       "Share of each model's recommendations from the head (the most rated "
                       "movies holding 20 % of the training ratings) and the tail. Reference "
                       "rows: the head's share of the catalog's movies and of the training "
                       "ratings.")


def _user_card(page: _Page, train: Dataset, lists: pd.DataFrame, user_id: int,
               model: str) -> str:
    from movierec import plots as P

    history, recs = A.user_card(train, lists, user_id)
    fig = page.figure("user-card", lambda: P.user_card(train, lists, user_id, model=model),
                      f"User {user_id}'s highest-rated training movies and {model}'s top-10 "
                      "list; “because you liked” names the movie the user liked whose audience "
                      "overlaps most with the recommended one's (cosine of who rated them).")
    history = history.assign(rating=history["rating"].map(lambda v: f"{v:g}"))
    recs = recs.assign(score=recs["score"].map(lambda v: f"{v:.3g}"))
    return (fig + f"<div class='cards'><div><h3>User {user_id} rated highest</h3>"
            + _frame_html(history[["title", "genres", "rating"]], ("title", "genres"))
            + f"</div><div><h3>Recommended by {_e(model)}</h3>"
            + _frame_html(recs[["rank", "title", "genres", "because_you_liked"]]
                          .rename(columns={"because_you_liked": "because you liked"}),
                          ("title", "genres", "because you liked")) + "</div></div>")


def _card_model(result: BenchmarkResult, lists: dict[str, pd.DataFrame], k: int) -> str:
    """The model with the best NDCG@k among those with lists (else the first)."""
    table = result.table(k)
    col = f"ndcg@{k}"
    if col in table:
        ranked = table[col].dropna().sort_values(ascending=False).index
        for model in ranked:
            if model in lists:
                return str(model)
    return next(iter(lists))


# --- assembly ----------------------------------------------------------------------------------
def build_report(
    folder: str | Path,
    *,
    data_dir: str | Path | None = None,
    dataset: str | Path | Dataset | None = None,
    train: Dataset | None = None,
    user_id: int | None = None,
    model: str | None = None,
    k: int | None = None,
    graph_users: int = 20,
    graph_items: int = 20,
    rng: int = 0,
    dpi: int = 110,
    store: str | None = None,
) -> Path:
    """Write `folder/report.html` (self-contained) and `folder/figures/*.png`; return the path.

    Args:
        folder: a benchmark folder (results.json, lists/*.parquet).
        data_dir: folder of releases for loading the dataset (default $MOVIEREC_DATA_DIR).
        dataset: release name or folder to load instead of the name in results.json, or the
            Dataset itself (e.g. the filtered one a notebook split).
        train: the training part of the benchmark's split, when the caller has it (a notebook);
            by default it is re-created from the split record in results.json.
        user_id: user of the user card and the single-user genre overlap (default: a user
            whose history length is the median).
        model: model of the user card (default: best NDCG@k among the models with lists).
        k: list length of the tables and analyses (default 10, or the largest evaluated).
        graph_users: users sampled for the bipartite graph. Default 20.
        graph_items: movies in the bipartite graph. Default 20.
        rng: seed of the graph's sample. Default 0.
        dpi: resolution of the PNGs. Default 110.
        store: URL of a feedback store: adds the "Online evaluation" section
            (`movierec.report_online`). Default None: no such section.
    """
    folder = Path(folder)
    result = A.load_benchmark(folder)
    k = A.default_k(result) if k is None else k
    page = _Page(folder, dpi)
    ds: Dataset | None = None
    reason = ""
    try:
        ds = dataset if isinstance(dataset, Dataset) else load_dataset(
            result.dataset, data_dir=data_dir, dataset=dataset)
    except (MovieRecError, OSError, ValueError) as exc:
        reason = (f"The dataset {result.dataset!r} could not be loaded ({exc}); pass --data-dir "
                  "or --dataset. Sections that need titles, genres or histories are left out.")
        logger.warning("%s", reason)
    if train is not None:
        train_note = (f"The training part of the split ({train.n_ratings:,} ratings) was given "
                      "with the results; histories, genres and popularity use it.")
        ds = train if ds is None else ds
    elif ds is not None:
        train, train_note = _training_part(result, ds, data_dir)
    else:
        train_note = reason
    lists = A.model_lists(result, k)
    body = {"summary": _summary(result, k), "dataset": _dataset(ds, reason),
            "protocol": _protocol(result, train_note), "results": _results(result, k),
            "significance": _significance(page, folder, k),
            "exploration": _exploration(page, ds, reason, graph_users, graph_items, rng),
            "comparison": _comparison(page, result, k), "training": _training(page, result)}
    if train is None or not lists:
        why = reason or "The benchmark kept no recommendation lists (run it with --out)."
        for key in ("genres", "popularity", "user-card"):
            body[key] = _note(why)
    else:
        model = model if model is not None else _card_model(result, lists, k)
        if model not in lists:
            raise ValueError(f"model {model!r} has no lists in {folder}; models: {list(lists)}")
        first = A.model_lists(result, k, first_seed=True)[model]
        user_id = A.pick_user(train, first) if user_id is None else int(user_id)
        body["genres"] = _genres(page, train, lists, k, user_id, model)
        body["popularity"] = _popularity(page, train, lists)
        body["user-card"] = _user_card(page, train, first, user_id, model)
    if store is not None:
        from movierec.report_online import store_section

        body["online"] = store_section(page, store, k=k)
    out = folder / "report.html"
    atomic_write_text(out, _page_html(result, body))
    for stale in set((folder / "figures").glob("*.png")) - set(page.written):
        stale.unlink()  # left by an earlier report of this folder (e.g. another model set)
    return out


def _page_html(result: BenchmarkResult, body: dict[str, str]) -> str:
    titles = {**SECTIONS, **{s: t for s, t in OPTIONAL_SECTIONS.items() if s in body}}
    nav = "".join(f"<a href='#{sid}'>{_e(title)}</a>" for sid, title in titles.items())
    sections = "".join(f"<section id='{sid}'><h2>{_e(title)}</h2>{body[sid]}</section>"
                       for sid, title in titles.items())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>movierec report — {_e(result.dataset)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>movierec benchmark report — {_e(result.dataset)}</h1>"
        f"<p class='muted'>movierec {_e(__version__)} · generated {stamp}</p><nav>{nav}</nav>"
        f"{sections}</main></body></html>\n")


# --- tuning folders ------------------------------------------------------------------------------
TUNING_SECTIONS = {"summary": "Summary", "history": "Optimization history",
                   "importances": "Parameter importances", "trials": "Best trials"}


def is_tuning_folder(folder: str | Path) -> bool:
    """True for a folder written by `movierec tune` (best.json, no results.json)."""
    folder = Path(folder)
    return (folder / "best.json").is_file() and not (folder / "results.json").is_file()


def build_tuning_report(folder: str | Path, *, dpi: int = 110, top: int = 15) -> Path:
    """Write `folder/report.html` for a tuning folder and return its path.

    The page shows the best parameters, the optimization history and the parameter importances
    (fANOVA over the stored study).
    """
    from movierec import plots
    from movierec.tune import read_tuning

    folder = Path(folder)
    best, trials, importances = read_tuning(folder)
    page = _Page(folder, dpi)
    metric, direction = str(best.get("metric", "")), str(best.get("direction", "minimize"))
    tuned = list(best.get("tuned", []))
    params = best.get("params", {})
    rows = [("model", best.get("model")), ("metric", f"{metric} ({direction})"),
            ("best value", _fmt(best.get("value"))),
            ("trials", f"{best.get('trials')} finished: {best.get('complete')} complete, "
                       f"{best.get('pruned')} pruned, {best.get('failed')} failed"),
            ("study", f"{best.get('study')} in {best.get('storage')}")]
    summary = (_table(rows) + "<h3>Best parameters</h3>"
               + _table([(f"{k}{' (tuned)' if k in tuned else ''}", _fmt(v))
                         for k, v in params.items()]))
    history = page.figure("optimization-history", lambda: plots.optimization_history(
        trials, metric, direction, title=f"Optimization history — {best.get('model')}"),
        "Validation value of every complete trial (dots; pruned trials as crosses at their "
        "last reported epoch) and the best value so far (line).")
    importance = page.figure("param-importances", lambda: plots.param_importances(
        importances, title=f"Parameter importances — {best.get('model')}"),
        "Share of the validation metric's variance explained by each tuned parameter "
        "(Optuna's fANOVA over the complete trials).")
    done = trials[trials["state"] == "COMPLETE"].sort_values(
        "value", ascending=direction == "minimize").head(top)
    keep = ["number", "value", *[c for c in done.columns if c.startswith("params_")],
            *[c for c in ("user_attrs_fit_seconds", "user_attrs_epochs_run") if c in done]]
    table = done[keep].rename(columns=lambda c: c.removeprefix("params_").removeprefix(
        "user_attrs_"))
    body = {"summary": summary, "history": history, "importances": importance,
            "trials": _frame_html(table.round(4))}
    nav = "".join(f"<a href='#{sid}'>{_e(t)}</a>" for sid, t in TUNING_SECTIONS.items())
    sections = "".join(f"<section id='{sid}'><h2>{_e(t)}</h2>{body[sid]}</section>"
                       for sid, t in TUNING_SECTIONS.items())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"movierec tuning report — {best.get('model')} ({metric})"
    text = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{_e(title)}</h1><p class='muted'>movierec {_e(__version__)} · generated "
            f"{stamp}</p><nav>{nav}</nav>{sections}</main></body></html>\n")
    out = folder / "report.html"
    atomic_write_text(out, text)
    return out


__all__ = ["OPTIONAL_SECTIONS", "SECTIONS", "TUNING_SECTIONS", "build_report",
           "build_tuning_report", "is_tuning_folder", "load_dataset"]
