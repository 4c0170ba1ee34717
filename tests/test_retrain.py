"""`movierec train --models-root` and `movierec retrain`: the acceptance rule, both branches,
the store's record, and a retrain that dies half-way leaving `current` untouched.

Every test with a store runs on SQLite and on a real PostgreSQL server (tests/pgstore.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec import versions
from movierec.artifact import load_model, read_meta
from movierec.cli import app
from movierec.data.synthetic import write_release
from movierec.retrain import decide, feedback_metrics, hold_out_feedback, retrain

pytest.importorskip("sqlalchemy", reason="retrain needs the `store` extra")
import pgstore  # noqa: E402
from movierec.store import Store  # noqa: E402

# SQLite and a throw-away PostgreSQL server (tests/pgstore.py).
postgres_server, pg_url, store_url = pgstore.postgres_server, pgstore.pg_url, pgstore.store_url

NEW_USERS = range(1001, 1006)
NEW_MOVIE = 999  # not in the release: only feedback knows it


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_release("csv", tmp_path_factory.mktemp("data") / "ml-synth", n_users=40,
                         n_items=30, n_ratings=600, rng=7)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def root(release: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    run("train", "--dataset", release, "--model", "bias", "--models-root", root,
        "--no-progress")
    return root


def feedback(old: float, new: float) -> list[dict]:
    """Five new users: 8 older ratings of `old` stars (one of the new movie), then 2 newest
    ratings of `new` stars (held out: each user's newest 20 %)."""
    rows = []
    for u in NEW_USERS:
        items = [NEW_MOVIE, *range(1, 8)]
        rows += [{"user_id": u, "item_id": i, "rating": old, "timestamp": 1_000 + n}
                 for n, i in enumerate(items)]
        rows += [{"user_id": u, "item_id": i, "rating": new, "timestamp": 2_000 + n}
                 for n, i in enumerate((8, 9))]
    return rows


def store_with(url: str, rows: list[dict]) -> Store:
    store = Store(url)
    store.put_ratings(rows)
    return store


def test_train_with_models_root_writes_v0001_and_points_current(root: Path,
                                                                release: Path) -> None:
    assert versions.list_versions(root) == ["v0001"]
    assert versions.current(root) == "v0001"
    meta = read_meta(root / "v0001")
    assert meta["version"] == "v0001" and meta["model"] == "bias"
    assert meta["source"]["dataset"] == str(release.resolve())
    assert "v0001" in run("models", "list", "--models-root", root)
    listed = json.loads(run("models", "list", "--models-root", root, "--json"))
    assert listed["current"] == "v0001" and listed["versions"][0]["model"] == "bias"


def test_retrain_accepts_a_better_model_and_records_it(root: Path, store_url: str) -> None:
    # New users who rate everything 5 stars: the retrained biases predict their held-out 5s
    # far better than the current model, which does not know them (user bias 0).
    with store_with(store_url, feedback(old=5.0, new=5.0)) as store:
        result = retrain(root, store, tolerance=0.0)
        assert result.metric == "rmse" and result.accepted and not result.forced
        assert result.candidate["rmse"] < result.current["rmse"]
        assert result.n_feedback == 50 and result.n_heldout == 10
        assert versions.current(root) == "v0002"
        status = {v.version: v.status for v in store.model_versions()}
        assert status == {"v0001": "retired", "v0002": "active"}
        recorded = {v.version: v for v in store.model_versions()}["v0002"]
        assert recorded.metrics["metric"] == "rmse"
        assert recorded.metrics["candidate"]["rmse"] == pytest.approx(result.candidate["rmse"])
    new = load_model(root / "v0002")
    assert set(NEW_USERS) <= set(new.user_vocab_.index.tolist())
    assert NEW_MOVIE in set(new.item_vocab_.index.tolist())  # a movie only feedback knew
    # The held-out ratings (items 8, 9 of the new users) are not in the new model's training.
    seen = new.seen_[new.user_vocab_.codes([1001])[0]].indices
    assert not set(new.item_vocab_.ids(seen).tolist()) & {8, 9}
    assert read_meta(root / "v0002")["parent"] == "v0001"


def test_retrain_rejects_a_worse_model_and_keeps_current(root: Path, store_url: str) -> None:
    # Older feedback says these users hate everything, their newest ratings say they love it:
    # the retrained user biases point the wrong way, the current model's 0 bias is closer.
    with store_with(store_url, feedback(old=0.5, new=5.0)) as store:
        result = retrain(root, store, tolerance=0.01)
        assert not result.accepted
        assert result.candidate["rmse"] > result.current["rmse"] + 0.01
        assert versions.current(root) == "v0001"
        assert versions.list_versions(root) == ["v0001", "v0002"]  # written, not served
        status = {v.version: v.status for v in store.model_versions()}
        assert status == {"v0001": "active", "v0002": "rejected"}
        note = {v.version: v for v in store.model_versions()}["v0002"].note
        assert "beyond the tolerance 0.01" in note
        # The same comparison with a tolerance wider than the gap accepts.
        gap = result.candidate["rmse"] - result.current["rmse"]
        wide = retrain(root, store, tolerance=gap + 0.05)
        assert wide.accepted and versions.current(root) == "v0003"


def test_force_switches_whatever_the_comparison(root: Path, store_url: str) -> None:
    with store_with(store_url, feedback(old=0.5, new=5.0)) as store:
        result = retrain(root, store, force=True)
        assert result.accepted and result.forced and result.reason.startswith("forced")
        assert versions.current(root) == "v0002"
    out = run("models", "rollback", "--models-root", root)
    assert "v0002 -> v0001" in out and versions.current(root) == "v0001"


@pytest.mark.parametrize("where", ["fit", "save"])
def test_a_retrain_killed_half_way_leaves_current_untouched(
        root: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    from movierec.models.baseline import Bias

    pointer = (root / "current").read_bytes()

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # SIGINT, or any crash, in the middle of the retrain

    if where == "fit":
        monkeypatch.setattr(Bias, "fit", killed)
    else:
        monkeypatch.setattr(os, "rename", killed)  # the folder is written, not yet published
    with store_with(store_url, feedback(old=5.0, new=5.0)) as store:
        with pytest.raises(KeyboardInterrupt):
            retrain(root, store, force=True)
        assert store.model_versions() == []  # nothing recorded before the version is whole
    monkeypatch.undo()
    assert (root / "current").read_bytes() == pointer
    assert versions.list_versions(root) == ["v0001"]
    staging = root / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_retrain_cli_prints_the_decision_and_prunes(root: Path, store_url: str) -> None:
    store_with(store_url, feedback(old=5.0, new=5.0)).close()
    for _ in range(3):
        out = json.loads(run("retrain", "--models-root", root, "--store", store_url, "--keep", "2",
                             "--tolerance", "0.5", "--json", "--no-progress"))
        assert out["accepted"] and out["metric"] == "rmse"
    # v0004 current, v0003 the rollback target, newest two kept: v0001 and v0002 pruned.
    assert versions.list_versions(root) == ["v0003", "v0004"]
    assert out["pruned"] == ["v0002"]


def test_retrain_without_feedback_says_so(root: Path, store_url: str) -> None:
    result = CliRunner().invoke(app, ["retrain", "--models-root", str(root), "--store",
                                      store_url])
    assert result.exit_code == 2 and "holds no feedback" in result.output
    assert versions.list_versions(root) == ["v0001"]


# --- the pieces, by hand --------------------------------------------------------------------
def test_hold_out_takes_each_users_newest_share() -> None:
    fb = pd.DataFrame({"user_id": [1] * 5 + [2] * 4, "item_id": list(range(9)),
                       "rating": [4.0] * 9, "timestamp": [0] * 9,
                       "updated_at": [5, 1, 4, 2, 3, 1, 2, 3, 4]})
    train, test = hold_out_feedback(fb, 0.4)
    # user 1: floor(5 * 0.4) = 2 newest (updated 5, 4: items 0, 2); user 2: floor(1.6) = 1.
    assert sorted(test["item_id"]) == [0, 2, 8]
    assert sorted(train["item_id"]) == [1, 3, 4, 5, 6, 7]


def test_decide_follows_the_metric_direction() -> None:
    assert decide("rmse", 0.905, 0.90, tolerance=0.01)[0]
    assert not decide("rmse", 0.92, 0.90, tolerance=0.01)[0]
    assert decide("ndcg@10", 0.295, 0.30, tolerance=0.01)[0]
    assert not decide("ndcg@10", 0.28, 0.30, tolerance=0.01)[0]
    assert decide("ndcg@10", 0.28, 0.30, tolerance=0.01, force=True)[:2] == (True, True)
    assert not decide("rmse", None, 0.9, tolerance=1.0)[0]


def test_feedback_metrics_rank_like_the_service(tiny) -> None:  # noqa: ANN001
    from movierec.models import get

    model = get("pop").fit(tiny)  # counts: 10 -> 3, 20, 30, 40, 50 -> 2 each
    history = pd.DataFrame({"user_id": [9], "item_id": [10], "rating": [5.0]})
    heldout = pd.DataFrame({"user_id": [9, 9], "item_id": [30, 50], "rating": [5.0, 2.0]})
    m = feedback_metrics(model, history, heldout, k=2)
    # Fold-in of pop: counts; 10 is rated, so the list is [20, 30] (ties to the lower id).
    # Liked: 30 at rank 2 -> DCG 1/log2(3), ideal 1 -> NDCG 0.6309.
    assert m["hit@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx(1 / np.log2(3))
    assert m["users"] == 1 and "rmse" not in m


@pytest.mark.slow
def test_sigkill_of_a_retrain_process_never_leaves_a_half_version(root: Path,
                                                                  store_url: str) -> None:
    """`kill -9` of `movierec retrain` at several moments: `current` is always a whole version."""
    import signal
    import subprocess
    import sys
    import time

    store_with(store_url, feedback(old=5.0, new=5.0)).close()
    before = (root / "current").read_bytes()
    outcomes = []
    for delay in (1.0, 2.5, 4.0, 6.0):
        proc = subprocess.Popen([sys.executable, "-m", "movierec.cli", "retrain", "--models-root",
                                 str(root), "--store", store_url, "--force", "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        outcomes.append(proc.returncode)
        current = versions.current(root)
        assert current in versions.list_versions(root)
        for name in versions.list_versions(root):  # every published version loads whole
            load_model(root / name)
        if (root / "current").read_bytes() == before:
            assert current == "v0001"
    assert -signal.SIGKILL in outcomes  # at least one run was really killed mid-way
