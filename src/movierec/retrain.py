"""Retraining on stored feedback: fit the served model again, compare, switch only if not worse.

`retrain(root, store)` takes the current version of a models root (`movierec.versions`):

1. Data. The version's original training part is rebuilt from its model.json (the recorded
   split, `SplitSpec.from_record`, and the dataset recorded under "source"). Every rating in the
   store is feedback; each user's newest `holdout` share of feedback ratings (by write time,
   rounded down, so a user with fewer than 1 / holdout feedback ratings holds none out) is
   held out, the rest joins the training part (a feedback rating replaces the dataset's
   rating of the same user and movie; held-out pairs are removed from training). New users and
   new movies of the feedback are thereby part of the new model.
2. Fit. The same registry name and parameters (or those of a `best.json`) are fitted through
   `movierec.pipeline.fit_evaluate`, with the original test part (minus pairs now in training)
   as its test, so the new version's "metrics" stay comparable with the first version's.
3. Compare. The current and the new model are scored the way the service answers a user: the
   user's visible ratings (training ratings + training feedback) folded in with each model's
   own fold-in (`movierec.fold_in`), top-k without those movies. The held-out feedback gives
   NDCG@k / hit@k of the movies rated >= `relevance`, and, for rating models, RMSE of
   `model.predict` on the held-out pairs.
4. Decide. The acceptance rule (`decide`): with metric RMSE for rating models (both predict
   ratings), else NDCG@k, the new version becomes current when it is not worse than the
   current one by more than `tolerance` (absolute, in the metric's units): RMSE_new <=
   RMSE_cur + tolerance, NDCG_new >= NDCG_cur - tolerance. Without held-out feedback (or a
   metric that cannot be computed) nothing is switched. `force` switches anyway.
5. Record. The new version is written under the root (atomically) in any case; the store
   registers it with both sides' metrics and marks it active or rejected, saying why.

A retrain killed at any point before the pointer switch leaves `current` untouched: the
version folder is renamed into place only once complete and the pointer is a separate atomic
write (see `movierec.versions`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from movierec import metrics as M
from movierec import versions
from movierec.errors import ArtifactError, MovieRecError

if TYPE_CHECKING:
    from movierec.data.dataset import Dataset
    from movierec.models.base import Recommender
    from movierec.split import Split
    from movierec.store import Store

__all__ = ["RetrainResult", "decide", "feedback_metrics", "hold_out_feedback", "original_split",
           "retrain", "source_record"]

logger = logging.getLogger(__name__)
_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


@dataclass
class RetrainResult:
    """What a retrain did.

    Attributes:
        version: the version written ("v0007").
        path: its folder.
        previous: the version that was current when the retrain started.
        accepted: whether the new version became current.
        forced: accepted because of `force` although the rule said no.
        metric: the compared metric ("rmse" or "ndcg@10").
        candidate, current: held-out feedback metrics of the new and the current model.
        reason: the decision in one sentence.
        n_feedback, n_heldout: stored feedback ratings, and how many of them were held out.
        pruned: versions deleted afterwards.
        test_metrics: the new model's metrics on the original test part.
    """

    version: str
    path: Path
    previous: str
    accepted: bool
    forced: bool
    metric: str
    candidate: dict[str, Any]
    current: dict[str, Any]
    reason: str
    n_feedback: int
    n_heldout: int
    pruned: list[str] = field(default_factory=list)
    test_metrics: dict[str, Any] = field(default_factory=dict)


# --- data ---------------------------------------------------------------------------------------
def source_record(dataset: str | None, *, data_dir: str | Path | None = None,
                  train: Path | None = None, test: Path | None = None,
                  valid: Path | None = None, sep: str | None = None) -> dict[str, Any]:
    """model.json's "source": what `original_split` needs to rebuild the training part.

    A dataset given as a path is recorded absolute (a release name as it is).
    """
    def absolute(p: str | Path | None) -> str | None:
        return None if p is None else str(Path(p).expanduser().resolve())

    out: dict[str, Any] = {"dataset": absolute(dataset) if dataset and Path(dataset).exists()
                           else dataset, "data_dir": absolute(data_dir)}
    if train is not None:
        out.update(train=absolute(train), test=absolute(test), valid=absolute(valid), sep=sep)
    return out


def original_split(meta: Mapping[str, Any], where: str | Path = "model.json", *,
                   data_dir: str | Path | None = None) -> Split:
    """The split a version was trained on, rebuilt from its model.json.

    Args:
        meta: the version's model.json (with "split" and "source" or "dataset").
        where: the folder, for messages.
        data_dir: folder of releases (default: the recorded one, then $MOVIEREC_DATA_DIR).

    Raises:
        ArtifactError: model.json records no split, or not enough to rebuild it.
    """
    from movierec.errors import SplitError
    from movierec.pipeline import SplitSpec

    record = meta.get("split")
    raw_source = meta.get("source")
    source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
    if not isinstance(record, dict):
        raise ArtifactError(f"{where}/model.json records no \"split\": retrain needs a model "
                            "written by `movierec train`")
    dataset = source.get("dataset") or meta.get("dataset")
    data_dir = data_dir or source.get("data_dir")
    if record.get("name") == "files":
        if not source.get("train"):
            raise ArtifactError(f"{where}/model.json: a split read from files, and no "
                                "\"source\" naming them; train again with --models-root")
        read = {"sep": source["sep"]} if source.get("sep") else {}
        spec = SplitSpec(kind="files", dataset=dataset, train=Path(source["train"]),
                         test=Path(source["test"]),
                         valid=Path(source["valid"]) if source.get("valid") else None,
                         valid_size=float(record.get("valid_size") or 0.0),
                         seed=record.get("seed"), read_options=read)
    else:
        try:
            spec = SplitSpec.from_record(record, dataset=dataset)
        except SplitError as exc:
            raise ArtifactError(f"{where}/model.json: {exc}") from None
    try:
        return spec.build(data_dir=data_dir)
    except (FileNotFoundError, MovieRecError) as exc:
        raise ArtifactError(f"{where}: cannot rebuild the training data of dataset "
                            f"{dataset!r} ({exc})") from None


def hold_out_feedback(feedback: pd.DataFrame, share: float = 0.2
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training feedback, held-out feedback): each user's newest `share` of ratings held out.

    Newest by write time (`updated_at`, then `timestamp`, then item id for ties); a user holds
    out floor(n * share) of their n ratings.
    """
    if not 0 < share < 1:
        raise ValueError(f"holdout share must be in (0, 1), found {share}")
    if feedback.empty:
        return feedback.iloc[:0], feedback.iloc[:0]
    order = [c for c in ("updated_at", "timestamp", "item_id") if c in feedback.columns]
    ordered = feedback.sort_values(["user_id", *order], kind="stable")
    group = ordered.groupby("user_id", sort=False)
    from_end = group.cumcount(ascending=False).to_numpy()  # 0 = the user's newest
    n_test = np.floor(group["item_id"].transform("size").to_numpy() * share + 1e-9)
    test = from_end < n_test
    return ordered[~test], ordered[test]


def training_data(base: Dataset, feedback: pd.DataFrame, heldout: pd.DataFrame) -> Dataset:
    """`base`'s ratings with the training feedback (which wins per pair), held-out pairs removed."""
    parts = [base.ratings[_COLUMNS], feedback[_COLUMNS].astype(base.ratings[_COLUMNS].dtypes)]
    ratings = pd.concat(parts, ignore_index=True).drop_duplicates(["user_id", "item_id"],
                                                                  keep="last")
    if len(heldout):
        held = pd.MultiIndex.from_frame(heldout[["user_id", "item_id"]])
        ratings = ratings[~pd.MultiIndex.from_frame(ratings[["user_id", "item_id"]]).isin(held)]
    return base.with_ratings(ratings.reset_index(drop=True), name=base.name)


def _without_pairs(part: Dataset, train: Dataset) -> Dataset:
    pairs = pd.MultiIndex.from_frame(train.ratings[["user_id", "item_id"]])
    keep = ~pd.MultiIndex.from_frame(part.ratings[["user_id", "item_id"]]).isin(pairs)
    return part if keep.all() else part.with_ratings(part.ratings[keep].reset_index(drop=True))


# --- comparison ---------------------------------------------------------------------------------
def feedback_metrics(model: Recommender, history: pd.DataFrame, heldout: pd.DataFrame, *,
                     k: int = 10, relevance: float = 4.0) -> dict[str, Any]:
    """A model's metrics on held-out feedback, scoring each user as the service would.

    Args:
        model: a fitted model.
        history: the ratings each held-out user had before (user_id, item_id, rating): folded
            in with the model's fold-in, and never recommended.
        heldout: held-out ratings (user_id, item_id, rating).
        k: list length.
        relevance: held-out ratings at or above this are the movies to find.

    Returns:
        "ndcg@k", "hit@k" (None without relevant held-out ratings), "rmse" (rating models;
        None without held-out ratings), "users" (with a relevant held-out rating), "ratings".
    """
    from movierec.fold_in import fold_in
    from movierec.ranking import rank_block

    out: dict[str, Any] = {f"ndcg@{k}": None, f"hit@{k}": None, "users": 0,
                           "ratings": int(len(heldout))}
    if model.rates:
        out["rmse"] = None
        if len(heldout):
            pred = model.predict(heldout["user_id"].to_numpy(), heldout["item_id"].to_numpy())
            out["rmse"] = M.rmse(heldout["rating"].to_numpy(), pred)
    relevant = heldout[heldout["rating"] >= relevance]
    users = np.unique(relevant["user_id"].to_numpy())
    if not len(users):
        return out
    hits = np.zeros((len(users), k), dtype=bool)
    n_relevant = np.zeros(len(users), dtype=np.int64)
    seen = {u: g for u, g in history.groupby("user_id")}
    wanted = {u: g["item_id"].to_numpy() for u, g in relevant.groupby("user_id")}
    empty = history.iloc[:0]
    for row, user in enumerate(users):  # one fold-in per held-out user: not a hot path
        h = seen.get(user, empty)
        fold = fold_in(model, h["item_id"].to_numpy(np.int64), h["rating"].to_numpy(np.float64))
        codes, _ = rank_block(fold.scores[None, :], k, exclude=fold.item_codes)
        rel = model.item_vocab_.codes(wanted[user], missing="negative")
        hits[row] = np.isin(codes[0], rel[rel >= 0])
        n_relevant[row] = len(wanted[user])
    out[f"ndcg@{k}"] = float(M.ndcg(hits, n_relevant).mean())
    out[f"hit@{k}"] = float(M.hit_rate(hits).mean())
    out["users"] = len(users)
    return out


def decide(metric: str, candidate: float | None, current: float | None, *,
           tolerance: float, force: bool = False) -> tuple[bool, bool, str]:
    """The acceptance rule: (accepted, forced, reason).

    RMSE (lower is better): accepted when candidate <= current + tolerance; any other metric
    (higher is better): candidate >= current - tolerance. A missing value is not accepted.
    `force` accepts whatever the rule says (forced is then True when the rule said no).
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, found {tolerance}")
    if candidate is None or current is None:
        ok, reason = False, f"{metric} could not be computed on held-out feedback"
    else:
        lower = metric == "rmse"
        worse_by = candidate - current if lower else current - candidate
        ok = worse_by <= tolerance + 1e-12
        verb = "within" if ok else "beyond"
        reason = (f"{metric} {candidate:.4f} against {current:.4f} of the current version: "
                  f"{'worse' if worse_by > 0 else 'not worse'} by {max(worse_by, 0.0):.4f}, "
                  f"{verb} the tolerance {tolerance:g}")
    if force and not ok:
        return True, True, f"forced: {reason}"
    return ok, False, reason


# --- the retrain --------------------------------------------------------------------------------
def _model_spec(meta: Mapping[str, Any], params_file: str | Path | None
                ) -> tuple[str, dict[str, Any]]:
    if params_file is not None:
        from movierec.tune import load_params_file

        return load_params_file(params_file)
    params = dict(meta.get("params") or {})
    for key in meta.get("tuple_params") or []:
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    return str(meta["model"]), params


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, recursively."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def retrain(root: str | Path, store: Store, *, params_file: str | Path | None = None,
            holdout: float = 0.2, tolerance: float = 0.01, force: bool = False,
            k: int = 10, relevance: float = 4.0, keep: int | None = 5,
            seed: int | None = None, data_dir: str | Path | None = None,
            progress: bool = False) -> RetrainResult:
    """Retrain the current version on its training data plus the store's feedback (see module).

    Args:
        root: the models root.
        store: the feedback store; the decision is recorded there.
        params_file: a `best.json` of `movierec tune` (its model and parameters) instead of
            the current version's.
        holdout: each user's newest share of feedback ratings held out (default 0.2).
        tolerance: how much worse (absolute, in the metric's units) the new version may be
            and still become current (default 0.01).
        force: make the new version current whatever the comparison says.
        k: list length of the ranking comparison (default 10).
        relevance: held-out ratings at or above this count as liked (default 4.0).
        keep: prune to the newest `keep` versions afterwards (None: no pruning).
        seed: the model's seed (default: the current version's).
        data_dir: folder of releases (default: the recorded one).
        progress: show the model's progress bars.

    Raises:
        ArtifactError: no current version, or its training data cannot be rebuilt.
        MovieRecError: the store holds no feedback.
    """
    from movierec.artifact import load_model, read_meta
    from movierec.pipeline import EvaluationSpec, fit_evaluate
    from movierec.split import Split

    root = Path(root)
    folder = versions.current_path(root)
    previous = folder.name
    meta = read_meta(folder)
    feedback = store.all_ratings()
    if feedback.empty:
        raise MovieRecError(f"store {store.display_url} holds no feedback ratings: nothing to "
                            "retrain on")
    name, params = _model_spec(meta, params_file)
    split = original_split(meta, folder, data_dir=data_dir)
    fb_train, fb_test = hold_out_feedback(feedback, holdout)
    base = split.train
    train = training_data(base, fb_train, fb_test)
    test = _without_pairs(split.test, train)
    seed = int(meta.get("seed", 42) if seed is None else seed)
    record = fit_evaluate(name, Split(train=train, test=test, name=split.name,
                                      params=split.params),
                          params=params, seed=seed, progress=progress,
                          evaluation=EvaluationSpec(k=(k,), relevance=relevance))
    fitted = record.fitted
    assert fitted is not None
    current_model = load_model(folder)
    history = train.ratings[train.ratings["user_id"].isin(fb_test["user_id"].unique())]
    new_m = feedback_metrics(fitted, history, fb_test, k=k, relevance=relevance)
    old_m = feedback_metrics(current_model, history, fb_test, k=k, relevance=relevance)
    metric = "rmse" if fitted.rates and current_model.rates else f"ndcg@{k}"
    accepted, forced, reason = decide(metric, new_m.get(metric), old_m.get(metric),
                                      tolerance=tolerance, force=force)
    comparison = {"metric": metric, "tolerance": tolerance, "holdout": holdout,
                  "candidate": new_m, "current": old_m, "current_version": previous,
                  "feedback_ratings": int(len(feedback)), "heldout_ratings": int(len(fb_test)),
                  "accepted": accepted, "forced": forced, "reason": reason}
    extra: dict[str, Any] = {key: meta[key] for key in ("dataset", "split", "source", "protocol")
                             if key in meta}
    extra.update(seed=seed, trained_at=_now(), parent=previous, fit_seconds=round(
        record.fit_seconds, 3), validation=record.validation, metrics=record.metrics,
        retrain=_finite(comparison), note=reason)
    version = versions.write_version(root, fitted, catalog=base.items, extra=extra)
    path = root / version
    _record(store, root, previous, meta, version, comparison)
    if accepted:
        versions.set_current(root, version, reason="retrain")
        store.activate_model_version(version, note=reason)
    else:
        store.reject_model_version(version, note=reason)
    pruned = versions.prune(root, keep) if keep else []
    return RetrainResult(version, path, previous, accepted, forced, metric, new_m, old_m,
                         reason, len(feedback), len(fb_test), pruned, record.metrics)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(store: Store, root: Path, previous: str, meta: Mapping[str, Any], version: str,
            comparison: dict[str, Any]) -> None:
    """Register the new version (and the current one, if the store does not know it yet)."""
    known = {v.version for v in store.model_versions()}
    if previous not in known:
        store.register_model_version(previous, str((root / previous).resolve()),
                                     metrics=_finite(dict(meta.get("metrics") or {})),
                                     note="current version, registered by retrain")
        if store.current_model_version() is None:
            store.activate_model_version(previous)
    store.register_model_version(version, str((root / version).resolve()),
                                 metrics=json.loads(json.dumps(_finite(comparison))),
                                 note=comparison["reason"])
