"""Data-parallel training: 2 gloo processes under torchrun vs one process, same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from movierec import distributed  # noqa: E402
from movierec.data.synthetic import write_release  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")

# Training runs (one per loss), executed by 2 torchrun processes or by plain python; each rank
# writes its final weights (safetensors) and history (JSON) per loss. Validation exercises sharded
# RMSE (mse) and sharded NDCG@10 with negative sampling (bpr); dropout stays 0.
WORKER = """
import json, sys
import numpy as np, pandas as pd
from safetensors.numpy import save_file
from movierec import distributed
from movierec.data.dataset import Dataset
from movierec import evaluate as E
from movierec.models.mf import MF
from movierec.split import Split

out = sys.argv[1]
gen = np.random.default_rng(0)
p, q = gen.normal(size=(60, 2)), gen.normal(size=(40, 2))
u, i = np.nonzero(gen.random((60, 40)) < 0.35)
r = np.clip(np.round(3 + (p[u] * q[i]).sum(1) + gen.normal(0, 0.3, len(u))), 1, 5)
frame = pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "rating": r,
                      "timestamp": np.arange(len(u))})
is_valid = gen.random(len(frame)) < 0.15
train = Dataset(frame[~is_valid], name="t", rating_scale=(1.0, 5.0))
valid = Dataset(frame[is_valid], name="v", rating_scale=(1.0, 5.0))
for run in ("mse", "bpr", "lazy"):
    # "lazy": row-sparse gradients and LazyAdam; rows touched on any rank are updated.
    loss = "mse" if run == "lazy" else run
    model = MF(embedding_size=4, epochs=4, batch_size=96, learning_rate=0.02, loss=loss,
               patience=None, device="cpu", sparse_updates=run == "lazy")
    model.fit(train, valid, rng=7, progress=False)
    rank = distributed.rank()
    save_file({k: v.numpy() for k, v in model.module_.state_dict().items()},
              f"{out}/{run}-rank{rank}.safetensors")
    # Final evaluation, sharded by test users when there are 2 ranks; then the same model
    # evaluated by this process alone, for comparison.
    scored = []
    top_k_codes = model.top_k_codes
    def counting(users, *args, **kwargs):
        scored.append(len(users))
        return top_k_codes(users, *args, **kwargs)
    model.top_k_codes = counting
    split = Split(train=train, test=valid)
    sharded = E.evaluate(model, split, ks=(5, 10), relevance=0, keep_lists=True, block_size=7)
    group, E._group = E._group, lambda: (1, 0)
    alone = E.evaluate(model, split, ks=(5, 10), relevance=0, keep_lists=True)
    E._group = group
    def dump(res):
        return {"summary": res.summary, "lists": res.lists.to_numpy().tolist(),
                "processes": res.meta.get("processes", 1),
                "users_with_lists": res.counts["users_with_lists"]}
    with open(f"{out}/{run}-rank{rank}.json", "w") as fh:
        json.dump({"world": distributed.world_size(), "history": model.history_,
                   "sharded": dump(sharded), "alone": dump(alone),
                   "scored": sum(scored) - sharded.counts["users_with_lists"]}, fh)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(single-process folder, 2-process folder), both runs started at the same time."""
    if not TORCHRUN.is_file():
        pytest.skip("torchrun not installed beside the interpreter")
    root = tmp_path_factory.mktemp("ddp")
    script = root / "worker.py"
    script.write_text(WORKER)
    single, multi = root / "single", root / "multi"
    single.mkdir()
    multi.mkdir()
    procs = [
        subprocess.Popen([sys.executable, str(script), str(single)], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script),
                          str(multi)], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True),
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
    return single, multi


@pytest.fixture(params=["mse", "bpr", "lazy"])
def runs(request, folders):
    """(single-process files, 2-process files) of one loss: paths without the rank suffix."""
    single, multi = folders
    return single / request.param, multi / request.param


def _file(prefix: Path, rank: int, ext: str) -> Path:
    return prefix.with_name(f"{prefix.name}-rank{rank}.{ext}")


def test_ranks_hold_identical_parameters(runs):
    _, multi = runs
    first = _weights(_file(multi, 0, "safetensors"))
    second = _weights(_file(multi, 1, "safetensors"))
    assert json.loads(_file(multi, 0, "json").read_text())["world"] == 2
    assert first.keys() == second.keys()
    for key in first:
        # Every rank applies the same all-reduced gradient to the same weights: bitwise equal.
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_two_processes_match_one_with_the_same_global_batch(runs):
    single, multi = runs
    one = _weights(_file(single, 0, "safetensors"))
    two = _weights(_file(multi, 0, "safetensors"))
    scale = max(float(np.abs(one[k]).max()) for k in one)
    for key in one:
        # Same global batches and negatives (shared seed), so the only difference is float32
        # summation order: two weighted half-batch gradients added vs one full-batch mean,
        # ~1 ulp per step. Measured: ≤ 1.8e-7 absolute on weights of scale 3.1 after 4 epochs
        # × 8 steps. 1e-5 of the scale leaves a 100× margin; unweighted shard gradients (their
        # sum, not the global mean, which Adam nearly hides) were measured 1e-2 off.
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=1e-5 * max(scale, 1.0),
                                   err_msg=key)
    h1 = json.loads(_file(single, 0, "json").read_text())["history"]
    h2 = json.loads(_file(multi, 0, "json").read_text())["history"]
    assert len(h1) == len(h2) == 4
    for a, b in zip(h1, h2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        # Sharded validation: float64 sums of the same float32 predictions, all-reduced.
        assert b["valid_metric"] == pytest.approx(a["valid_metric"], rel=1e-5)
        assert b["metric"] == a["metric"]
    # Not trivially equal because nothing was learned.
    assert h1[-1]["train_loss"] < h1[0]["train_loss"]
    assert json.loads(_file(single, 0, "json").read_text())["world"] == 1


def test_final_evaluation_is_sharded_and_matches_one_process(runs):
    single, multi = runs
    ranks = [json.loads(_file(multi, r, "json").read_text()) for r in (0, 1)]
    n_users = ranks[0]["sharded"]["users_with_lists"]
    assert n_users > 10
    # `scored` = users ranked by the sharded call (total minus the unsharded call's count):
    # the two ranks split the test users between them, about half each.
    assert ranks[0]["scored"] + ranks[1]["scored"] == n_users
    assert ranks[0]["scored"] == n_users // 2
    for run in ranks:
        assert run["sharded"]["processes"] == 2 and run["alone"]["processes"] == 1
        # All-reduced lists and predictions are exact, so metrics equal the unsharded ones.
        assert run["sharded"]["lists"] == run["alone"]["lists"]
        assert run["sharded"]["summary"].keys() == run["alone"]["summary"].keys()
        for key, value in run["alone"]["summary"].items():
            np.testing.assert_equal(run["sharded"]["summary"][key], value, err_msg=key)
    assert ranks[0]["sharded"] == ranks[1]["sharded"]
    assert "ndcg@10" in ranks[0]["alone"]["summary"]
    lonely = json.loads(_file(single, 0, "json").read_text())
    assert lonely["sharded"]["processes"] == 1 and lonely["scored"] == n_users


def test_cli_under_torchrun_writes_one_artifact(tmp_path):
    if not TORCHRUN.is_file():
        pytest.skip("torchrun not installed beside the interpreter")
    release = write_release("csv", tmp_path / "data" / "ml-synth", n_users=30, n_items=25,
                            n_ratings=300)
    models = tmp_path / "models"
    models.mkdir()
    out = models / "mf"
    proc = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "movierec", "train",
         "--dataset", str(release), "--model", "mf", "--out", str(out), "--valid-size", "0.1",
         "--param", "embedding_size=4", "--param", "epochs=2", "--param", "batch_size=64",
         "--device", "cpu", "--no-progress"],
        env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in models.iterdir()) == ["mf", "mf.ckpt"]
    assert (out / "model.json").is_file()
    assert proc.stderr.count(f"saved {out}") == 1
    assert json.loads((out / "model.json").read_text())["params"]["epochs"] == 2


def test_single_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init() == 1
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert not distributed.is_distributed()
    value = torch.tensor([2.0])
    assert distributed.all_reduce_sum(value) is value and float(value) == 2.0


def test_bad_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        distributed.init()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK"):
        distributed.init()
