"""Fuzz `movierec serve` with schemathesis: thousands of generated requests, and its memory.

Starts a real `movierec serve` on 127.0.0.1 and a free port, loads the server's own OpenAPI
schema from /openapi.json, and sends generated requests to every operation: schema-valid ones
(positive mode) and schema-invalid ones (negative mode), until `--cases` have been sent. Every
answer goes through schemathesis' checks: no 5xx, a documented status code and content type, a
body that matches the documented schema, schema-invalid input refused. `positive_data_acceptance`
is left out: the service refuses some schema-valid requests on purpose with a 422 naming the
field, for rules JSON Schema cannot state (an unknown genre, a movie rated twice); and a 413
(body over the size limit) counts as refusing invalid input.

The server's resident memory (RSS, from /proc) is read before the first case, after a warm-up
tenth of the cases, and at the end: after the warm-up it should stay flat.

Prints a table and writes benchmarks/results/serve_fuzz.json, e.g.:

    .venv/bin/python benchmarks/serve_fuzz.py --cases 3000
    MOVIEREC_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/serve_fuzz.py \\
        --dataset ml-100k --model itemknn
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from serve_load import free_port, start_server, stop_server, versions

from movierec.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
console = Console(width=None if sys.stdout.isatty() else 150)  # wide tables in logs too


def rss_mib(pid: int) -> float | None:
    """Resident memory of process `pid` in MiB (Linux /proc, else psutil, else None)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process(pid).memory_info().rss / 2**20


def config() -> Any:
    """schemathesis settings: a 413 (body over the size limit) also refuses invalid input."""
    import schemathesis

    return schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {
        "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413", "415",
                              "422", "428", "429", "5XX"]}}})


def model_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """--model-dir, else `movierec train` of --model on --dataset (synthetic: a small release)."""
    if args.model_dir is not None:
        return args.model_dir
    dataset = args.dataset
    if dataset == "synthetic":
        from movierec.data.synthetic import write_release

        dataset = str(write_release("csv", scratch / "ml-synth", n_users=300, n_items=200,
                                    n_ratings=8000, rng=args.seed))
    out = scratch / args.model
    console.print(f"training {args.model} on {args.dataset} ...")
    subprocess.run([sys.executable, "-m", "movierec.cli", "train", "--dataset", dataset,
                    "--model", args.model, "--out", str(out), "--relevance", "0",
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return out


class Fuzzer:
    """Runs generated cases against one server and tallies answers and failures."""

    def __init__(self, schema: Any, base: str, seed: int) -> None:
        import requests
        from schemathesis.checks import positive_data_acceptance

        self.schema = schema
        self.base = base
        self.seed = seed
        self.session = requests.Session()  # keep-alive, like a real client
        self.excluded = [positive_data_acceptance]
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.failures: dict[tuple[str, str], dict[str, Any]] = {}

    def run(self, operation: Any, mode: Any, n: int, seed: int) -> int:
        """Up to `n` cases of one operation and mode; returns how many were sent."""
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hseed
        from hypothesis.errors import Unsatisfiable
        from schemathesis.core.failures import FailureGroup

        label = f"{operation.label} ({mode.value})"
        sent = 0

        @hseed(seed)
        @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def one(case: Any) -> None:
            nonlocal sent
            sent += 1
            try:
                response = case.call_and_validate(session=self.session, timeout=30,
                                                  excluded_checks=self.excluded)
                self.statuses[response.status_code] += 1
            except FailureGroup as group:
                for failure in group.exceptions:
                    self._record(label, failure.title, case)
            except Exception as exc:  # transport errors: the server dropped or hung
                self._record(label, f"{type(exc).__name__}: {exc}"[:200], case)

        try:
            one()
        except Unsatisfiable:  # e.g. negative mode of an operation without input
            pass
        self.cases[label] += sent
        return sent

    def _record(self, label: str, title: str, case: Any) -> None:
        entry = self.failures.setdefault((label, title), {"count": 0, "example": None})
        entry["count"] += 1
        if entry["example"] is None:
            entry["example"] = case.as_curl_command(headers=None)[:2000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000, help="generated requests to send")
    parser.add_argument("--dataset", default="synthetic",
                        help='release to train on ("synthetic": a small generated one)')
    parser.add_argument("--model", default="itemknn", help="registry name of the model")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="serve this model folder instead of training one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated cases")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_fuzz.json")
    args = parser.parse_args()
    if args.cases < 10:
        parser.error("--cases must be at least 10")

    import schemathesis
    from schemathesis import GenerationMode

    with tempfile.TemporaryDirectory(prefix="serve_fuzz_") as tmp:
        folder = model_folder(args, Path(tmp))
        port = free_port()
        proc = start_server(folder, port, args.startup_timeout, "1")
        base = f"http://127.0.0.1:{port}"
        try:
            schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=config())
            fuzzer = Fuzzer(schema, base, args.seed)
            pairs = [(op.ok(), mode) for op in schema.get_all_operations()
                     for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
            rss = {"start": rss_mib(proc.pid)}
            start = time.perf_counter()
            total, round_ = 0, 0
            warm_target = args.cases // 10
            # Rounds over every operation and mode until enough cases were sent: operations
            # with little input (GET /health) run out of distinct cases at once, the others
            # take up the rest.
            while total < args.cases:
                per_pair = max(1, math.ceil((warm_target if round_ == 0 else args.cases - total)
                                            / len(pairs)))
                sent_this_round = 0
                for operation, mode in pairs:
                    sent_this_round += fuzzer.run(operation, mode, per_pair,
                                                  args.seed * 1000 + round_)
                total += sent_this_round
                if round_ == 0:
                    gc.collect()
                    rss["after_warmup"] = rss_mib(proc.pid)
                    rss["warmup_cases"] = total
                    console.print(f"  warm-up: {total} cases, server RSS "
                                  f"{rss['after_warmup']:.1f} MiB")
                round_ += 1
                if sent_this_round == 0:
                    break
            seconds = time.perf_counter() - start
            rss["end"] = rss_mib(proc.pid)
            info = json.loads(fuzzer.session.get(f"{base}/model", timeout=30).text)
            alive = fuzzer.session.get(f"{base}/health", timeout=30).status_code == 200
        finally:
            stop_server(proc)

    n_failures = sum(f["count"] for f in fuzzer.failures.values())
    table = Table(title=f"schemathesis against movierec serve ({info['name']}, "
                  f"{info['n_users']:,} users, {info['n_items']:,} movies): {total:,} cases in "
                  f"{seconds:.0f} s, {n_failures} failing", title_justify="left")
    for col in ("operation (mode)", "cases", "failures"):
        table.add_column(col, justify="left" if col.startswith("op") else "right")
    for label, n in sorted(fuzzer.cases.items()):
        failed = sum(f["count"] for (lbl, _), f in fuzzer.failures.items() if lbl == label)
        table.add_row(label, f"{n:,}", str(failed))
    console.print(table)
    for (label, title), entry in fuzzer.failures.items():
        console.print(f"[red]{escape(label)}: {escape(title)}[/red] ({entry['count']}x)\n"
                      f"  {escape(entry['example'])}", highlight=False)
    growth = None
    if rss.get("after_warmup") is not None and rss.get("end") is not None:
        growth = rss["end"] - rss["after_warmup"]
    statuses = dict(sorted(fuzzer.statuses.items()))
    console.print(f"server RSS: {rss['start']:.1f} MiB at start, {rss['after_warmup']:.1f} MiB "
                  f"after {rss['warmup_cases']} warm-up cases, {rss['end']:.1f} MiB at the end "
                  f"({growth:+.1f} MiB after warm-up); statuses {statuses}; server alive: "
                  f"{alive}")
    report = {
        "benchmark": "serve_fuzz",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"name": info["name"], "n_users": info["n_users"], "n_items": info["n_items"],
                  "dataset": info["dataset"]},
        "settings": {"cases": args.cases, "seed": args.seed, "dataset": args.dataset,
                     "modes": ["positive", "negative"],
                     "excluded_checks": ["positive_data_acceptance"],
                     "server": "movierec serve on 127.0.0.1 (defaults)"},
        "cases_run": total,
        "seconds": round(seconds, 1),
        "failures": n_failures,
        "failure_kinds": [{"operation": lbl, "check": title, "count": e["count"],
                           "example": e["example"]}
                          for (lbl, title), e in fuzzer.failures.items()],
        "cases_by_operation": dict(sorted(fuzzer.cases.items())),
        "statuses": {str(k): v for k, v in sorted(fuzzer.statuses.items())},
        "server_rss_mib": {k: (round(v, 1) if isinstance(v, float) else v)
                           for k, v in rss.items()},
        "server_rss_growth_after_warmup_mib": None if growth is None else round(growth, 1),
        "server_alive_at_end": alive,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {**versions(), **{p: metadata.version(p)
                                      for p in ("schemathesis", "hypothesis")}},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
