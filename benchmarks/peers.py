"""movierec side by side with peer libraries on ML-100K u1.base / u1.test.

Every peer (Surprise, implicit, cornac; whichever is installed, see requirements-peers.txt) is
wrapped as a movierec `Recommender` inside this script, so the ONE evaluator
(`movierec.evaluate.evaluate`) computes every metric on the same split, in the same process, on
the same machine, one run each:

- rating table: movierec bias, svd (numba SGD), mf (torch), svdpp vs Surprise BaselineOnly, SVD,
  SVD++, KNNBaseline (item, pearson_baseline) and cornac MF — RMSE, MAE, fit seconds;
- ranking table (full ranking of every unseen training item, relevance 4 and 0): movierec ease,
  itemknn, ials (numba CG), mf (loss=bpr), lightgcn vs implicit ALS, BPR and cornac BPR, EASE —
  NDCG@10, Recall@10, fit seconds.

Peers run with their library defaults (documented settings, nothing tuned on u1.test); movierec
models with theirs. Fit seconds are the peer library's own `fit` call (data conversion excluded,
which favours the peers) and movierec's whole `fit`, after one untimed-in-the-table torch warm-up
fit and one numba warm-up fit (which loads or compiles the numba kernels; both seconds are
recorded). Ratios are movierec ÷ peer: for RMSE below 1
and for NDCG above 1 means movierec is more accurate; a fit ratio below 1 means movierec is faster.
Threads are limited to `--threads` everywhere (torch, BLAS, implicit, cornac); the load average is
recorded because the machine may be shared. Writes benchmarks/results/peers.json (`--quick`:
peers_quick.json, a smoke run whose numbers are not comparable).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from _common import json_default, version
from threadpoolctl import threadpool_limits

from movierec import __version__
from movierec.data import load
from movierec.data.dataset import Dataset
from movierec.evaluate import evaluate
from movierec.io import atomic_write_text
from movierec.models import get
from movierec.models.base import Recommender
from movierec.split import Split, make_split

RATING_KEYS = ["rmse", "mae"]
RANKING_KEYS = ["ndcg@10", "recall@10"]
# (movierec label, peer label) pairs whose ratios are printed; JSON keeps every movierec x peer.
RATING_PAIRS = [("svd", "surprise SVD"), ("mf", "surprise SVD"), ("svdpp", "surprise SVD++"),
                ("bias", "surprise BaselineOnly"), ("mf", "surprise KNNBaseline"),
                ("mf", "cornac MF")]
RANKING_PAIRS = [("ials", "implicit ALS"), ("mf (bpr)", "implicit BPR"), ("mf (bpr)", "cornac BPR"),
                 ("ease", "implicit ALS"), ("mf (bpr)", "implicit ALS"),
                 ("lightgcn", "implicit ALS"), ("ease", "cornac EASE")]


# --- peers behind the movierec scorer interface ------------------------------------------------
class Peer(Recommender):
    """A foreign library's model scored through movierec's vocabularies.

    Args:
        peer_params: keyword arguments of the peer's constructor (default None: the library's
            defaults).
        threads: threads the peer may use (where it takes a thread count). Default 1.
    """

    library: ClassVar[str] = ""

    def __init__(self, *, peer_params: dict[str, Any] | None = None, threads: int = 1) -> None:
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.peer_params = peer_params
        self.threads = threads

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: Any = None,
            progress: bool = False) -> Peer:
        users, items = self._setup(train)
        ratings = train.ratings["rating"].to_numpy(np.float64)
        seed = int(rng) if rng is not None else 0
        self._fit_peer(users, items, ratings, seed)
        return self

    def _fit_peer(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                  seed: int) -> None:
        raise NotImplementedError

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        self.core_fit_seconds_ = time.perf_counter() - t0


class SurprisePeer(Peer):
    """Surprise (Hug 2020): SVD, SVDpp, KNNBaseline or BaselineOnly on raw ids = movierec codes.

    `_predict` is Surprise's own `predict` (clipped to the rating scale, its fallbacks for unknown
    ids); `_score` recomputes the same estimate from the learned arrays, unclipped, for ranking.
    """

    predicts_ratings = True
    library = "surprise"
    algo: ClassVar[str] = "SVD"

    def _fit_peer(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                  seed: int) -> None:
        import surprise

        lo, hi = self.rating_scale_
        if hi <= lo:
            lo, hi = float(ratings.min()), float(ratings.max())
        frame = pd.DataFrame({"user": users.astype(np.int64), "item": items.astype(np.int64),
                              "rating": ratings})
        data = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(lo, hi)))
        self.trainset_ = data.build_full_trainset()
        params = dict(self.peer_params or {})
        if self.algo in ("SVD", "SVDpp"):
            params.setdefault("random_state", seed)
        self.algo_ = getattr(surprise, self.algo)(**params)
        self._timed(self.algo_.fit, self.trainset_)
        ts = self.trainset_
        self.uinner_ = np.array([ts.to_inner_uid(u) for u in range(self.n_users)])
        self.iinner_ = np.array([ts.to_inner_iid(i) for i in range(self.n_items)])

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        return np.array([self.algo_.predict(int(u), int(i)).est
                         for u, i in zip(user_codes, item_codes, strict=True)], dtype=np.float32)

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        a, ts = self.algo_, self.trainset_
        u = self.uinner_[user_codes]
        items = self.iinner_ if item_codes is None else self.iinner_[item_codes]
        base = ts.global_mean + a.bu[u][:, None] + a.bi[items][None, :]
        if self.algo == "BaselineOnly":
            out = base
        elif self.algo == "SVD":
            out = base + a.pu[u] @ a.qi[items].T
        elif self.algo == "SVDpp":
            implicit = np.stack([a.pu[x] + a.yj[[j for j, _ in ts.ur[x]]].sum(axis=0)
                                 / np.sqrt(len(ts.ur[x])) for x in u])
            out = base + implicit @ a.qi[items].T
        else:
            out = base + np.stack([self._knn_offsets(x) for x in u])[:, items]
        return out.astype(np.float32)

    def _knn_offsets(self, u: int) -> np.ndarray:
        """Item-based KNNBaseline's neighbourhood term for every item, for inner user u."""
        a, ts = self.algo_, self.trainset_
        rated = np.array([j for j, _ in ts.ur[u]])
        resid = np.array([r for _, r in ts.ur[u]]) - (ts.global_mean + a.bu[u] + a.bi[rated])
        sim = a.sim[:, rated]
        k = a.k
        if len(rated) > k:  # keep each item's k most similar rated items (heapq.nlargest)
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            keep = np.zeros_like(sim, dtype=bool)
            np.put_along_axis(keep, top, True, axis=1)
            sim = np.where(keep, sim, 0.0)
        sim = np.where(sim > 0, sim, 0.0)
        den = sim.sum(axis=1)
        num = sim @ resid
        actual_k = (sim > 0).sum(axis=1)
        return np.where((den > 0) & (actual_k >= a.min_k), num / np.where(den > 0, den, 1), 0.0)

    def reference_estimates(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        """Surprise's own unclipped `estimate` for known pairs (to check `_score`)."""
        out = []
        for u, i in zip(self.uinner_[user_codes], self.iinner_[item_codes], strict=True):
            est = self.algo_.estimate(int(u), int(i))
            out.append(est[0] if isinstance(est, tuple) else est)
        return np.asarray(out, dtype=np.float64)


class ImplicitPeer(Peer):
    """implicit (Frederickson): ALS or BPR on the binary training matrix, score = P Q^T."""

    library = "implicit"
    algo: ClassVar[str] = "ALS"

    def _fit_peer(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                  seed: int) -> None:
        if self.algo == "ALS":
            from implicit.cpu.als import AlternatingLeastSquares as Model
        else:
            from implicit.cpu.bpr import BayesianPersonalizedRanking as Model
        model = Model(**(self.peer_params or {}), num_threads=self.threads, random_state=seed)
        matrix = self.seen_.astype(np.float32).tocsr()
        self._timed(model.fit, matrix, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        q = self.item_factors_ if item_codes is None else self.item_factors_[item_codes]
        return self.user_factors_[user_codes] @ q.T


class CornacPeer(Peer):
    """cornac (Salah et al. 2020): MF (rating), BPR or EASE, scored with cornac's `score`."""

    library = "cornac"
    algo: ClassVar[str] = "BPR"

    def _fit_peer(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                  seed: int) -> None:
        import cornac

        triples = list(zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True))
        train_set = cornac.data.Dataset.from_uir(triples, seed=seed)
        params = {"seed": seed, "verbose": False, **(self.peer_params or {})}
        if self.algo in ("MF", "BPR"):
            params.setdefault("num_threads", self.threads)
        self.model_ = getattr(cornac.models, self.algo)(**params)
        self._timed(self.model_.fit, train_set)
        self.uidx_ = np.array([train_set.uid_map[u] for u in range(self.n_users)])
        self.iidx_ = np.array([train_set.iid_map[i] for i in range(self.n_items)])

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        items = self.iidx_ if item_codes is None else self.iidx_[item_codes]
        rows = [np.asarray(self.model_.score(int(u)), dtype=np.float32).ravel()[items]
                for u in self.uidx_[user_codes]]
        return np.stack(rows)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        known = (user_codes >= 0) & (item_codes >= 0)
        out = np.full(len(user_codes), self.model_.default_score(), dtype=np.float32)
        for n in np.flatnonzero(known):
            out[n] = self.model_.rate(int(self.uidx_[user_codes[n]]),
                                      int(self.iidx_[item_codes[n]]))
        return out


def peer_class(library: str, algo: str, rating: bool = False) -> type[Peer]:
    base = {"surprise": SurprisePeer, "implicit": ImplicitPeer, "cornac": CornacPeer}[library]
    attrs: dict[str, Any] = {"algo": algo, "__doc__": base.__doc__}
    if rating:
        attrs["predicts_ratings"] = True
    return type(f"{library.title()}{algo}", (base,), attrs)


# --- the run -----------------------------------------------------------------------------------
def rating_models(quick: bool) -> list[tuple[str, Any]]:
    """(label, factory) for the rating table; factories build unfitted models."""
    ep = {"epochs": 3} if quick else {}
    return [
        ("bias", lambda t: get("bias")),
        ("svd", lambda t: get("svd", **({"epochs": 3} if quick else {}))),
        ("mf", lambda t: get("mf", device="cpu", **ep)),
        ("svdpp", lambda t: get("svdpp", device="cpu", **({"epochs": 1} if quick else {}))),
        ("surprise BaselineOnly", ("surprise", "BaselineOnly", {})),
        ("surprise SVD", ("surprise", "SVD", {"n_epochs": 3} if quick else {})),
        ("surprise SVD++", ("surprise", "SVDpp", {"n_epochs": 1, "cache_ratings": True} if quick
                            else {"cache_ratings": True})),
        ("surprise KNNBaseline", ("surprise", "KNNBaseline", {
            "sim_options": {"name": "pearson_baseline", "user_based": False}, "verbose": False})),
        ("cornac MF", ("cornac", "MF", {"max_iter": 3} if quick else {})),
    ]


def ranking_models(quick: bool, lightgcn_epochs: int) -> list[tuple[str, Any]]:
    return [
        ("ease", lambda t: get("ease")),
        ("itemknn", lambda t: get("itemknn")),
        ("ials", lambda t: get("ials", **({"epochs": 3} if quick else {}))),
        ("mf (bpr)", lambda t: get("mf", loss="bpr", device="cpu",
                                   **({"epochs": 3} if quick else {}))),
        ("lightgcn", lambda t: get("lightgcn", device="cpu",
                                   epochs=2 if quick else lightgcn_epochs)),
        ("implicit ALS", ("implicit", "ALS", {"iterations": 3} if quick else {})),
        ("implicit BPR", ("implicit", "BPR", {"iterations": 10} if quick else {})),
        ("cornac BPR", ("cornac", "BPR", {"max_iter": 10} if quick else {})),
        ("cornac EASE", ("cornac", "EASE", {"posB": False})),
    ]


def build(spec: Any, threads: int, rating: bool) -> Recommender:
    if callable(spec):
        return spec(threads)
    library, algo, params = spec
    return peer_class(library, algo, rating)(peer_params=params, threads=threads)


def check_surprise(model: SurprisePeer, split: Split, seed: int, n: int = 300) -> float:
    """Largest |vectorized score - Surprise's estimate| over n random known pairs."""
    gen = np.random.default_rng(seed)
    u = gen.integers(0, model.n_users, n)
    i = gen.integers(0, model.n_items, n)
    mine = np.array([model._score(u[k:k + 1], i[k:k + 1])[0, 0] for k in range(n)])
    return float(np.max(np.abs(mine - model.reference_estimates(u, i))))


def run_table(models: list[tuple[str, Any]], split: Split, *, seed: int, threads: int,
              rating: bool, relevances: tuple[float, ...]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for label, spec in models:
        library = "movierec" if callable(spec) else spec[0]
        if library != "movierec" and importlib.util.find_spec(library) is None:
            rows[label] = {"library": library, "skipped": f"{library} is not installed"}
            print(f"  {label}: skipped ({library} not installed)", flush=True)
            continue
        model = build(spec, threads, rating)
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        model.fit(split.train, rng=seed, progress=False)
        fit_s = time.perf_counter() - t0
        row: dict[str, Any] = {"library": library, "params": model.params(),
                               "fit_seconds": getattr(model, "core_fit_seconds_", fit_s),
                               "wrapper_fit_seconds": fit_s, "load_avg_1m": load_before}
        for rel in relevances:
            res = evaluate(model, split, ks=(10,), relevance=rel, protocol="full")
            row[f"relevance_{rel:g}"] = res.summary
            if rating:
                row.update({k: res.summary[k] for k in RATING_KEYS})
            row.update({f"{k} r{rel:g}": res.summary[k] for k in RANKING_KEYS})
        if isinstance(model, SurprisePeer):
            row["score_check_max_abs_diff"] = check_surprise(model, split, seed)
        rows[label] = row
        print(f"  {label}: fit {row['fit_seconds']:.2f}s", flush=True)
    return rows


def ratios(rows: dict[str, dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float]]:
    """movierec ÷ peer for every (movierec, peer) pair that ran, on `keys` and fit seconds."""
    ours = {k: v for k, v in rows.items() if v.get("library") == "movierec"}
    peers = {k: v for k, v in rows.items() if v.get("library") != "movierec" and "skipped" not in v}
    out = {}
    for a, ra in ours.items():
        for b, rb in peers.items():
            out[f"{a} ÷ {b}"] = {k: ra[k] / rb[k] for k in [*keys, "fit_seconds"]}
    return out


def show(rows: dict[str, dict[str, Any]], cols: list[str], title: str) -> None:
    done = {k: v for k, v in rows.items() if "skipped" not in v}
    frame = pd.DataFrame.from_dict(done, orient="index")[["library", *cols, "fit_seconds"]]
    print(f"\n{title}")
    print(frame.to_string(float_format=lambda x: f"{x:.4f}"))


def show_ratios(table: dict[str, dict[str, float]], pairs: list[tuple[str, str]],
                title: str) -> None:
    picked = {f"{a} ÷ {b}": table[f"{a} ÷ {b}"] for a, b in pairs if f"{a} ÷ {b}" in table}
    if picked:
        print(f"\n{title} (movierec ÷ peer)")
        print(pd.DataFrame.from_dict(picked, orient="index").to_string(
            float_format=lambda x: f"{x:.3f}"))


def targets(rating: dict[str, Any], ranking: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the numbers that decide it (None: a model did not run)."""
    out: dict[str, Any] = {}
    for mine in ("svd", "mf"):  # movierec's two biased MFs: compiled SGD, and torch/Adam
        r = rating.get(f"{mine} ÷ surprise SVD")
        out[f"{mine} RMSE <= Surprise SVD RMSE"] = None if r is None else {
            "rmse_ratio": r["rmse"], "met": r["rmse"] <= 1.0}
        out[f"{mine} fit >= 10x faster than Surprise SVD"] = None if r is None else {
            "fit_ratio": r["fit_seconds"], "speedup": 1 / r["fit_seconds"],
            "met": r["fit_seconds"] <= 0.1}
    # "Equal quality": NDCG@10 (relevance 4) at least 95% of the peer's.
    for mine, peer in (("ials", "implicit ALS"), ("mf (bpr)", "implicit BPR")):
        q = ranking.get(f"{mine} ÷ {peer}")
        out[f"{mine} fit within 2x of {peer} at equal quality"] = None if q is None else {
            "fit_ratio": q["fit_seconds"], "ndcg_ratio": q["ndcg@10 r4"],
            "met": q["fit_seconds"] <= 2.0 and q["ndcg@10 r4"] >= 0.95}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42, help="model seed (the split is fixed)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every library")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("MOVIEREC_DATA_DIR", "/work/shared/datasets")),
                        help="folder holding ml-100k/")
    parser.add_argument("--lightgcn-epochs", type=int, default=30,
                        help="LightGCN epochs (its default is 200; kept short on a shared CPU)")
    parser.add_argument("--only", choices=["rating", "ranking"], default=None)
    parser.add_argument("--quick", action="store_true", help="few epochs: a smoke run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    ds = load("ml-100k", data_dir=args.data_dir)
    split = make_split(ds, "u1", data_dir=args.data_dir / "ml-100k")
    load_start = os.getloadavg()
    report: dict[str, Any] = {
        "split": split.describe(), "seed": args.seed, "threads": args.threads,
        "quick": args.quick, "lightgcn_epochs": args.lightgcn_epochs,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_start": load_start},
        "versions": {"movierec": __version__, "torch": torch.__version__,
                     **{m: version(m) for m in ("surprise", "implicit", "cornac")}},
        "not_run": {"recbole": "in its own environment (older numpy/scipy pins): per-epoch "
                               "LightGCN/NeuMF times in benchmarks/peers_recbole.py"},
    }
    with threadpool_limits(limits=args.threads):
        # torch's first fit in a process pays a one-off start-up (about 3 s here) that no later
        # fit pays; it is timed and recorded, not charged to whichever torch model runs first.
        t0 = time.perf_counter()
        get("mf", device="cpu", epochs=1).fit(split.train, rng=args.seed, progress=False)
        report["torch_warmup_seconds"] = time.perf_counter() - t0
        if importlib.util.find_spec("numba") is not None:
            # svd and ials never start numba's parallel (OpenMP) pool (ials spreads its compiled
            # rows over a plain thread pool): numba.set_num_threads() would start it, and torch
            # then ran 10-20x slower in this process. Note: implicit's ALS at alpha=1 weighs an
            # observed item by c = 1, movierec's by c = 1 + alpha = 2 (benchmarks/peers_speed.py
            # matches them; this table keeps each library's defaults).
            t0 = time.perf_counter()
            get("svd", epochs=1).fit(split.train, rng=args.seed, progress=False)
            get("ials", epochs=1).fit(split.train, rng=args.seed, progress=False)
            report["numba_warmup_seconds"] = time.perf_counter() - t0
        if args.only != "ranking":
            print("rating models:", flush=True)
            rows = run_table(rating_models(args.quick), split, seed=args.seed,
                             threads=args.threads, rating=True, relevances=(4.0,))
            report["rating"] = {"rows": rows, "ratios": ratios(rows, RATING_KEYS)}
        if args.only != "rating":
            print("ranking models:", flush=True)
            rows = run_table(ranking_models(args.quick, args.lightgcn_epochs), split,
                             seed=args.seed, threads=args.threads, rating=False,
                             relevances=(4.0, 0.0))
            report["ranking"] = {"rows": rows,
                                 "ratios": ratios(rows, [f"{k} r{r}" for k in RANKING_KEYS
                                                         for r in ("4", "0")])}
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["targets"] = targets(report.get("rating", {}).get("ratios", {}),
                                report.get("ranking", {}).get("ratios", {}))

    title = f"ML-100K u1 · seed {args.seed} · {args.threads} thread(s)" + (
        " · QUICK (not comparable)" if args.quick else "")
    if "rating" in report:
        show(report["rating"]["rows"], RATING_KEYS, f"rating prediction — {title}")
        show_ratios(report["rating"]["ratios"], RATING_PAIRS, "rating ratios")
    if "ranking" in report:
        cols = [f"{k} r{r}" for r in ("4", "0") for k in RANKING_KEYS]
        show(report["ranking"]["rows"], cols, f"full ranking, relevance 4 and 0 — {title}")
        show_ratios(report["ranking"]["ratios"], RANKING_PAIRS, "ranking ratios")
    print(f"\nload average (1, 5, 15 min): start {load_start}, end {os.getloadavg()} "
          f"on {os.cpu_count()} CPUs")
    for name, verdict in report["targets"].items():
        print(f"target · {name}: {verdict}")
    out = args.out / ("peers_quick.json" if args.quick else "peers.json")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2, default=json_default))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
