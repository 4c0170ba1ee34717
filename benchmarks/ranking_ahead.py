"""Issue #21's comparison: the new top-N models against EASE, chosen on validation only.

For each setting (dataset and split kind, 80/20 per user) and each split seed (default 1, 2, 3):

1. every tunable model in `--tune` (EASE always: its λ is tuned the same way) is tuned with
   `movierec tune` on THAT split seed's training part: each user's 10 % carve-out (the latest
   on time-ordered splits) is the validation part, NDCG@10 with relevance 0 (every validation
   movie relevant), `--trials` TPE trials. The test part is never read;
2. `movierec benchmark` fits every model on the whole training part with those parameters
   (the others: their defaults; models that early-stop carve their own validation from the
   training part) and evaluates full ranking, relevance 0, on the test part, into
   OUT/<setting>/split-seed-<s>/ (per-user values kept);
   With `--tuned-members`, a model that nests others (`fusion`'s and `blend`'s members,
   `rerank`'s generators) gets their parameters from that split seed's tuning of the same
   model (e.g. fusion's EASE member takes the λ tuned for EASE), through a params file
   OUT/<setting>/tune/seed-<s>/<model>/members.json; its own settings stay at their defaults;
3. `movierec.compare` pairs every model with EASE over (split seed, user): mean difference,
   95 % paired bootstrap interval, paired t-test, Holm over the models.

Prints, per setting, each model's NDCG@10 per split seed, the mean, the ratio to EASE and the
paired verdict; writes OUT/ranking_ahead.json and benchmarks/results/ranking_ahead.json.

    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/ranking_ahead.py \\
        --settings ml-100k:user-random --models ease,rp3beta,edlae,rerank --tune ease,rp3beta

One process per split seed (`--split-seeds 2`, same `--out`), then `--report-only` with all of
them, runs the seeds side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import json_default
from rich.console import Console
from rich.table import Table

from movierec import compare as C
from movierec.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
CLI = [sys.executable, "-m", "movierec.cli"]
console = Console(width=150)


def run(cmd: list[str]) -> float:
    """Run a movierec command (output shown); its wall seconds. Raises on failure."""
    console.print("[dim]$ " + " ".join(cmd[2:]) + "[/dim]")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def split_args(dataset: str, split: str, seed: int) -> list[str]:
    return ["--dataset", dataset, "--split", split, "--test-size", "0.2", "--seed", str(seed)]


def one_setting(dataset: str, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """Tune, benchmark and compare one (dataset, split) over the split seeds."""
    models = args.models.split(",")
    tuned = [m for m in args.tune.split(",") if m and m in models]
    root = args.out / f"{dataset}-{split}"
    seconds: dict[str, float] = {}
    for seed in [] if args.report_only else args.split_seeds:
        params_files = []
        for model in tuned:
            out = root / "tune" / f"seed-{seed}" / model
            seconds[f"tune {model} seed {seed}"] = run(
                [*CLI, "tune", "--model", model, *split_args(dataset, split, seed),
                 "--relevance", "0", "--metric", "ndcg@10", "--trials", str(args.trials),
                 "--threads", "1", "--no-progress", "--out", str(out),
                 *[a for kv in args.tune_param if kv.startswith(f"{model}.")
                   for a in ("--param", kv)]])
            params_files += ["--params-file", str(out / "best.json")]
        if args.tuned_members:
            params_files += tuned_member_files(root / "tune" / f"seed-{seed}", models, tuned)
        seconds[f"benchmark seed {seed}"] = run(
            [*CLI, "benchmark", *split_args(dataset, split, seed), "--models", ",".join(models),
             "--relevance", "0", "--k", "10", "--seeds", "1", "--threads", "1",
             *params_files, *[p for kv in args.param for p in ("--param", kv)],
             "--no-progress", "--out", str(root / f"split-seed-{seed}")])
    rows = per_seed_table(root, models, args.split_seeds)
    frame = C.load_per_user(root)
    table = C.compare(frame[frame["model"].isin(models)], "ndcg@10", baseline="ease")
    verdicts = {r["model"]: r for r in table.to_dict(orient="records")}
    return {"dataset": dataset, "split": split, "folder": str(root), "ndcg@10": rows,
            "against_ease": verdicts, "seconds": seconds,
            "tuned": tuned, "params": tuned_params(root, tuned, args.split_seeds)}


def tuned_member_files(folder: Path, models: list[str], tuned: list[str]) -> list[str]:
    """--params-file arguments giving nesting models (not tuned themselves) tuned members.

    For each model in `models` made of others (its `nested_param`: fusion's and blend's
    members, rerank's generators), its default ones with every one named in `tuned` given that
    tuning's parameters (folder/<name>/best.json), written to folder/<model>/members.json;
    models with none tuned are left out.
    """
    from movierec.models import get, get_class
    from movierec.tune import load_params_file

    out: list[str] = []
    for model in models:
        key = get_class(model).nested_param
        if model in tuned or key is None:
            continue
        defaults = getattr(get(model), key)
        found = {name: load_params_file(folder / name / "best.json")[1]
                 for name in {name for name, _ in defaults} & set(tuned)}
        if not found:
            continue
        nested = [[name, {**params, **found.get(name, {})}] for name, params in defaults]
        path = folder / model / "members.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"model": model, "params": {key: nested}},
                                           indent=2, default=json_default) + "\n")
        console.print(f"{model}: {key} {nested}")
        out += ["--params-file", str(path)]
    return out


def per_seed_table(root: Path, models: list[str], seeds: list[int]) -> dict[str, Any]:
    """{model: {"seeds": {seed: ndcg@10}, "mean": ..., "fit_seconds": ...}} from results.json."""
    out: dict[str, Any] = {}
    for seed in seeds:
        runs = json.loads((root / f"split-seed-{seed}" / "results.json").read_text())["runs"]
        for r in runs:
            if r["model"] in models:
                entry = out.setdefault(r["model"], {"seeds": {}, "fit_seconds": {}})
                entry["seeds"][seed] = r["metrics"]["ndcg@10"]
                entry["fit_seconds"][seed] = r["fit_seconds"]
    for entry in out.values():
        values = list(entry["seeds"].values())
        entry["mean"] = sum(values) / len(values)
    ease = out.get("ease", {}).get("mean")
    for entry in out.values():
        entry["ratio_to_ease"] = entry["mean"] / ease if ease else None
    return out


def tuned_params(root: Path, tuned: list[str], seeds: list[int]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in tuned:
        for seed in seeds:
            path = root / "tune" / f"seed-{seed}" / model / "best.json"
            if path.is_file():
                found.setdefault(model, {})[seed] = json.loads(path.read_text()).get("params")
    return found


def print_setting(result: dict[str, Any], seeds: list[int]) -> None:
    table = Table(title=f"{result['dataset']} {result['split']} 80/20, NDCG@10 (relevance 0, "
                        "full ranking)", title_justify="left")
    for col in ["model", *[f"seed {s}" for s in seeds], "mean", "× EASE", "diff [95 % CI]",
                "Holm p", "verdict"]:
        table.add_column(col, justify="left" if col in ("model", "verdict") else "right")
    rows = sorted(result["ndcg@10"].items(), key=lambda kv: -kv[1]["mean"])
    for model, entry in rows:
        v = result["against_ease"].get(model)
        table.add_row(
            model, *[f"{entry['seeds'].get(s, float('nan')):.4f}" for s in seeds],
            f"{entry['mean']:.4f}", f"{entry['ratio_to_ease']:.3f}",
            "—" if v is None else f"{v['diff']:+.4f} [{v['ci_low']:+.4f}, {v['ci_high']:+.4f}]",
            "—" if v is None else f"{v['p_corrected']:.2g}",
            "baseline" if v is None else v["verdict"])
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="ml-100k:user-random,ml-100k:user-time,"
                        "ml-latest-small:user-time",
                        help="comma-separated DATASET:SPLIT pairs (80/20 per user)")
    parser.add_argument("--models", default="ease,rp3beta,slim,edlae,multvae,recvae,ultragcn,"
                        "xsimgcl,rerank", help="comma-separated registry names (ease needed)")
    parser.add_argument("--tune", default="ease,rp3beta,edlae",
                        help="models tuned per split seed on validation (the rest: defaults)")
    parser.add_argument("--trials", type=int, default=20, help="TPE trials per tuned model")
    parser.add_argument("--split-seeds", default="1,2,3", type=lambda s: [int(x) for x in
                                                                        s.split(",")])
    parser.add_argument("--param", action="append", default=[],
                        help="MODEL.KEY=VALUE for the benchmark (repeatable)")
    parser.add_argument("--tune-param", action="append", default=[],
                        help="MODEL.KEY=VALUE held fixed while tuning MODEL (repeatable; "
                        "removed from its search, e.g. recvae.batch_size=100)")
    parser.add_argument("--tuned-members", action="store_true",
                        help="give nesting models' members (fusion's EASE...) the parameters "
                        "tuned for the same model on the same split seed")
    parser.add_argument("--report-only", action="store_true",
                        help="tune and benchmark nothing: compare what OUT already holds for "
                        "--split-seeds (e.g. after one process per split seed)")
    parser.add_argument("--out", type=Path, default=Path("runs/ranking-ahead"))
    args = parser.parse_args()
    if "ease" not in args.models.split(","):
        parser.error("--models must include ease (the baseline)")
    results = []
    for setting in args.settings.split(","):
        dataset, _, split = setting.partition(":")
        results.append(one_setting(dataset, split or "user-random", args))
        print_setting(results[-1], args.split_seeds)
    report = {"benchmark": "ranking_ahead", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "protocol": "80/20 per user; full ranking; relevance 0; NDCG@10; tuning on each "
                          "split seed's 10 % per-user validation carve-out of the training part",
              "settings": {"models": args.models, "tuned": args.tune, "trials": args.trials,
                           "split_seeds": args.split_seeds, "param": args.param,
                           "tuned_members": args.tuned_members,
                           "tune_param": args.tune_param,
                           "threads": 1},
              "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
              "results": results}
    text = json.dumps(report, indent=2, default=json_default)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "ranking_ahead.json", text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "ranking_ahead.json", text)
    console.print(f"wrote {args.out / 'ranking_ahead.json'}")


if __name__ == "__main__":
    main()
