"""Fuzz every loader, the archive extractor, model folders, checkpoints and the CLI.

Two engines:

- a seeded mutation fuzzer (always): for each target, cases 0..N-1 copy a small valid input,
  damage one file (bytes, fields, separators, line ends, JSON values, zip structure) and run
  the reader; a case is reproduced by `targets()[name].case(workdir, seed)` from
  tests/robustness/fuzzkit.py, where the targets and the checks live;
- atheris (coverage-guided libFuzzer, when installed: `pip install atheris`) on the byte-level
  readers, each in a subprocess with `-runs=N`.

A crash is any exception other than a MovieRecError, or a returned value that breaks the
target's checks (e.g. a Dataset with a non-finite rating or a duplicated pair). The table also
counts errors whose message names a file and line ("u.data:12:").

    .venv/bin/python benchmarks/fuzz_loaders.py                 # ~5,000 mutation cases
    .venv/bin/python benchmarks/fuzz_loaders.py --cases 50 --atheris-runs 0   # quick look

Writes benchmarks/results/fuzz_loaders.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the targets are shared with the robustness tests
# movierec and the targets are imported inside the functions, so that an atheris worker can
# import them under its instrumentation (of movierec only: instrumenting pandas takes minutes).

SLOW = {"checkpoint", "cli-describe"}
ATHERIS_TARGETS = ("file-csv", "release-ml1m", "release-csv", "archive")


def run_mutation(names: list[str], cases: int, slow_cases: int, first_seed: int,
                 workdir: Path) -> list[dict]:
    """Run the seeded mutation cases of each target; one summary row per target."""
    from robustness.fuzzkit import Outcome, targets

    all_targets = targets()
    rows = []
    for name in names:
        target = all_targets[name]
        n = slow_cases if name in SLOW else cases
        counts: Counter[str] = Counter()
        located = 0
        crashes: dict[str, list[int]] = {}
        t0 = time.perf_counter()
        for seed in range(first_seed, first_seed + n):
            outcome: Outcome = target.case(workdir, seed)
            counts[outcome.kind] += 1
            located += outcome.kind == "error" and outcome.located
            if outcome.kind == "crash":
                crashes.setdefault(outcome.detail[:200], []).append(seed)
        rows.append({"target": name, "engine": "mutation", "cases": n, "ok": counts["ok"],
                     "errors": counts["error"], "located": located, "crashes": counts["crash"],
                     "seconds": round(time.perf_counter() - t0, 2),
                     "crash_kinds": [{"detail": d, "seeds": s[:5], "count": len(s)}
                                     for d, s in crashes.items()]})
        print(f"  {name}: {n} cases, {counts['crash']} crashes", file=sys.stderr, flush=True)
    return rows


# --- atheris -------------------------------------------------------------------------------------
def atheris_worker(name: str, workdir: Path, record: Path) -> None:
    """Run inside a subprocess: feed atheris' inputs to target `name`, record crashes."""
    import shutil

    import atheris

    with atheris.instrument_imports(include=["movierec"]):
        import movierec.artifact
        import movierec.data.dataset
        import movierec.data.download
        import movierec.data.files
        import movierec.data.movielens  # noqa: F401
    from robustness.fuzzkit import classify, targets

    logging.disable(logging.WARNING)
    target = targets(torch=False, cli=False)[name]
    target.case(workdir, 0)  # builds the template
    template = workdir / f"{name}.template"
    folder = workdir / f"{name}.atheris"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template, folder)
    victim = folder / target._templates[template][0]
    counter = {"runs": 0}

    def one_input(data: bytes) -> None:
        counter["runs"] += 1
        shutil.rmtree(folder / "cache", ignore_errors=True)  # the archive target extracts here
        victim.write_bytes(data)
        outcome = classify(lambda: target.run(folder), lambda r: target.check(r, folder))
        line = {"kind": outcome.kind, "located": outcome.located}
        if outcome.kind == "crash":
            line["detail"] = outcome.detail[:300]
            line["input"] = data[:200].hex()
        with open(record, "a") as fh:
            fh.write(json.dumps(line) + "\n")

    corpus = workdir / f"{name}.corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "seed").write_bytes((template / victim.name).read_bytes())
    atheris.Setup([sys.argv[0], *sys.argv[sys.argv.index("--") + 1:], str(corpus)], one_input)
    atheris.Fuzz()


def run_atheris(runs: int, workdir: Path, seed: int = 1) -> list[dict]:
    """One atheris subprocess per byte-level target; summary rows (empty without atheris)."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: coverage-guided runs skipped", file=sys.stderr)
        return []
    rows = []
    for name in ATHERIS_TARGETS:
        record = workdir / f"{name}.atheris.jsonl"
        record.unlink(missing_ok=True)
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--atheris-worker", name, "--workdir", str(workdir),
             "--record", str(record), "--", f"-runs={runs}", "-max_len=4096", f"-seed={seed}",
             f"-artifact_prefix={workdir}/"],
            capture_output=True, text=True, timeout=1800)
        lines = [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []
        kinds = Counter(x["kind"] for x in lines)
        crashes = Counter(x["detail"] for x in lines if x["kind"] == "crash")
        rows.append({"target": name, "engine": "atheris", "cases": len(lines),
                     "ok": kinds["ok"], "errors": kinds["error"],
                     "located": sum(x["located"] for x in lines if x["kind"] == "error"),
                     "crashes": kinds["crash"] + (done.returncode != 0),
                     "seconds": round(time.perf_counter() - t0, 2),
                     "crash_kinds": [{"detail": d, "count": c} for d, c in crashes.items()]
                     + ([{"detail": f"worker exit {done.returncode}: {done.stderr[-300:]}",
                          "count": 1}] if done.returncode != 0 else [])})
        print(f"  {name} (atheris): {len(lines)} cases", file=sys.stderr, flush=True)
    return rows


# --- report --------------------------------------------------------------------------------------
def print_table(rows: list[dict]) -> None:
    head = f"{'target':16} {'engine':9} {'cases':>6} {'ok':>6} {'errors':>7} {'w/ line':>8} " \
           f"{'crashes':>8} {'s':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['target']:16} {r['engine']:9} {r['cases']:>6} {r['ok']:>6} {r['errors']:>7} "
              f"{r['located']:>8} {r['crashes']:>8} {r['seconds']:>7.1f}")
    total = {k: sum(r[k] for r in rows) for k in ("cases", "ok", "errors", "located", "crashes")}
    print("-" * len(head))
    print(f"{'total':16} {'':9} {total['cases']:>6} {total['ok']:>6} {total['errors']:>7} "
          f"{total['located']:>8} {total['crashes']:>8}")
    for r in rows:
        for kind in r["crash_kinds"]:
            print(f"CRASH {r['target']} ({r['engine']}) x{kind['count']}: {kind['detail']}"
                  + (f" seeds {kind['seeds']}" if "seeds" in kind else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=400, help="mutation cases per target")
    parser.add_argument("--slow-cases", type=int, default=150,
                        help="mutation cases of the checkpoint and CLI targets (slower)")
    parser.add_argument("--seed", type=int, default=0, help="first case seed")
    parser.add_argument("--targets", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--atheris-runs", type=int, default=2000,
                        help="atheris runs per byte-level target (0: skip)")
    parser.add_argument("--atheris-seed", type=int, default=1, help="libFuzzer -seed")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                        "fuzz_loaders.json")
    parser.add_argument("--atheris-worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.atheris_worker:
        atheris_worker(args.atheris_worker, args.workdir, args.record)
        return
    from movierec.io import atomic_write_text
    from robustness.fuzzkit import targets

    logging.disable(logging.WARNING)  # duplicate/future-date warnings are expected while fuzzing
    names = [n for n in (args.targets.split(",") if args.targets else targets()) if n]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="movierec-fuzz-") as tmp:
        workdir = Path(tmp)
        rows = run_mutation(names, args.cases, args.slow_cases, args.seed, workdir)
        if args.atheris_runs > 0:
            rows += run_atheris(args.atheris_runs, workdir, args.atheris_seed)
    print_table(rows)
    import movierec

    result = {"benchmark": "fuzz_loaders", "movierec_version": movierec.__version__,
              "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
              "args": {k: v for k, v in vars(args).items() if k in
                       ("cases", "slow_cases", "seed", "targets", "atheris_runs",
                        "atheris_seed")},
              "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
