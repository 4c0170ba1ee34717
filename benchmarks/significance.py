"""Which classic models are statistically tied with the best on ML-100K's five folds (u1..u5).

Runs every classic model (mean, bias, pop, userknn, itemknn, ease; default parameters) on each of
ML-100K's own folds u1..u5 through `movierec.benchmark.cross_validate` (the code path of
`movierec benchmark --split ml100k-5fold`), then for RMSE and NDCG@10:

* the mean over the 5 folds and its 95 % Student-t interval (each fold's value is the model's
  summary metric on that fold's test set);
* each model against the best, paired over (fold, user): mean difference of per-user values,
  95 % paired bootstrap interval (users resampled within folds, 2000 resamples, seed 0), paired
  t-test p-value, Holm-corrected over the models; "tied" = corrected p >= 0.05.

Prints one table per metric and writes benchmarks/results/significance.json.
Data: $MOVIEREC_DATA_DIR (or --data-dir) must hold ml-100k with its u1..u5 files.

`--models all` runs every installed registered model (about an hour on 2 cores). With
`--work DIR` the fold folders are kept there and a re-run skips the folds and runs already done,
so a long run can be stopped and resumed. `--fold N --work DIR` runs fold N alone (into
DIR/fold-N/, e.g. in a second process beside the main one); a later call without --fold finds
it there and skips it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from movierec import benchmark
from movierec import compare as C
from movierec.models import CLASSIC, installed
from movierec.pipeline import SplitSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=",".join(CLASSIC),
                        help="comma-separated names, or 'all' for every installed model "
                        "(default: the classic ones)")
    parser.add_argument("--data-dir", default=None, help="folder of releases")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--test", default="t", choices=["t", "wilcoxon", "permutation"])
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the fold folders here and resume from them (default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--threads", type=int, default=1, help="threads per fit (default 1)")
    parser.add_argument("--fold", type=int, default=None, choices=range(1, 6),
                        help="run only this fold (1-5) into WORK/fold-N/ and stop; needs --work")
    args = parser.parse_args()
    models = installed() if args.models == "all" else args.models.split(",")
    specs = benchmark.fold_specs(SplitSpec(kind="ml100k-5fold", dataset="ml-100k"))
    t0 = time.perf_counter()
    if args.fold is not None and args.work is None:
        parser.error("--fold needs --work")

    def live(record: dict) -> None:
        print(f"  {record.get('model')} seed {record.get('seed')}: fit "
              f"{record.get('fit_seconds') or 0:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = benchmark.cross_validate(models, specs, out=work, data_dir=args.data_dir,
                                           progress=False, keep_lists=False, ks=(10,),
                                           threads=args.threads, on_run=live,
                                           only=None if args.fold is None else [args.fold])
        if args.fold is not None:
            print(f"fold {args.fold} done in {time.perf_counter() - t0:.0f} s: "
                  f"{benchmark.fold_folder(work, args.fold)}")
            return
        frame = C.load_per_user(work)
    seconds = time.perf_counter() - t0
    folds = benchmark.fold_table(results, 10)
    report: dict = {"dataset": "ml-100k", "folds": ["u1", "u2", "u3", "u4", "u5"],
                    "models": models, "test": args.test, "correction": "holm", "alpha": 0.05,
                    "interval_over_folds": "95 % Student t (4 df) over the 5 fold means",
                    "paired": "(fold, user); 95 % bootstrap interval, 2000 resamples, seed 0",
                    "seconds": round(seconds, 1), "metrics": {}}
    for metric in ("rmse", "ndcg@10"):
        if metric not in folds or folds[metric].isna().all():
            print(f"\n{metric}: none of these models computes it; skipped")
            continue
        table = C.compare(frame, metric, test=args.test)
        best = str(table["baseline"].iloc[0])
        by_model = table.set_index("model")
        rows = []
        print(f"\n{metric} · ML-100K u1..u5 · mean over folds [95 % t-interval] · against "
              f"{best}: paired {args.test}-test over (fold, user), Holm, α=0.05")
        print(f"{'model':<9} {'mean':>7} {'interval':>18}  {'diff':>8} {'bootstrap CI':>20} "
              f"{'p(Holm)':>8}  verdict")
        for model in folds.index:
            if folds.loc[model, metric] != folds.loc[model, metric]:
                continue  # the model cannot compute it (rmse of ranking-only models)
            mean, low, high = (float(folds.loc[model, c]) for c in
                               (metric, f"{metric}_low", f"{metric}_high"))
            row = {"model": model, "mean": mean, "low": low, "high": high}
            if model in by_model.index:
                r = by_model.loc[model]
                row.update(diff=float(r["diff"]), ci_low=float(r["ci_low"]),
                           ci_high=float(r["ci_high"]), p_corrected=float(r["p_corrected"]),
                           users=int(r["users"]), verdict=str(r["verdict"]))
                tail = (f"{row['diff']:+8.4f} [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] "
                        f"{row['p_corrected']:8.2g}  {row['verdict']}")
            else:
                row["verdict"] = "best"
                tail = f"{'':>8} {'':>20} {'':>8}  best"
            rows.append(row)
            print(f"{model:<9} {mean:7.4f} [{low:.4f}, {high:.4f}]  {tail}")
        report["metrics"][metric] = {"best": best, "rows": rows,
                                     "tied_with_best": [r["model"] for r in rows
                                                        if r["verdict"] == "tied"]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "significance.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
