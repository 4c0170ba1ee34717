"""`movierec report` and `movierec data plot`: one self-contained page with every section."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install matplotlib)")

from typer.testing import CliRunner  # noqa: E402

import movierec.cli._report  # noqa: E402,F401  (registers `report` and `data plot`)
from movierec.benchmark import run  # noqa: E402
from movierec.cli import app  # noqa: E402
from movierec.data import load  # noqa: E402
from movierec.data.synthetic import write_release  # noqa: E402
from movierec.report import SECTIONS, build_report  # noqa: E402
from movierec.split import make_split  # noqa: E402

runner = CliRunner()
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and Path(p).is_file()),
                None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("releases")
    write_release("ml100k", root / "synth", n_users=40, n_items=50, n_ratings=700, rng=0)
    return root


@pytest.fixture(scope="module")
def bench_dir(data_root, tmp_path_factory) -> Path:
    """A saved benchmark of pop, itemknn and a 2-epoch MF over two seeds, with validation."""
    pytest.importorskip("torch")
    ds = load(data_root / "synth")
    split = make_split(ds, "user-random", test_size=0.2, valid_size=0.1, rng=42)
    result = run(["pop", "itemknn", "mf"], split, seeds=(1, 2), ks=(5, 10), relevance=0,
                 params={"mf": {"epochs": 2, "batch_size": 128}}, progress=False)
    out = tmp_path_factory.mktemp("run")
    result.save(out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def report_folder(bench_dir, data_root, tmp_path_factory) -> Path:
    """The benchmark folder with its report built (small graph, low resolution)."""
    folder = _copy(bench_dir, tmp_path_factory.mktemp("report") / "run")
    assert build_report(folder, data_dir=data_root, graph_users=10, graph_items=8,
                        dpi=50) == folder / "report.html"
    return folder


def test_benchmark_keeps_the_training_history_of_neural_models(bench_dir):
    runs = json.loads((bench_dir / "results.json").read_text())["runs"]
    for r in runs:
        if r["model"] == "mf":
            assert [h["epoch"] for h in r["history"]] == [1, 2]
            assert all(h["train_loss"] > 0 and h["metric"] == "rmse" and h["valid_metric"] > 0
                       for h in r["history"])
        else:
            assert "history" not in r


def test_report_has_every_section_and_embeds_every_figure(report_folder):
    folder = report_folder
    page = (folder / "report.html").read_text(encoding="utf-8")
    for sid, title in SECTIONS.items():
        assert f"<section id='{sid}'><h2>{title}</h2>" in page
    assert "class=\"note\"" not in page, re.findall(r'<p class="note">(.*?)</p>', page)
    pngs = sorted(p.stem for p in (folder / "figures").glob("*.png"))
    expected = {"rating-distribution", "ratings-over-time", "top-genres", "long-tail",
                "degree-distributions", "sparsity", "bipartite-graph", "demographics",
                "release-years", "comparison-rating", "comparison-ranking",
                "comparison-beyond", "training-mf", "genre-distribution", "genre-overlap",
                "popularity-bias", "user-card",
                # per-user results: interval bars and the significance matrix of NDCG@10 and of
                # RMSE (itemknn and mf predict ratings)
                "intervals-ndcg-at-10", "significance-ndcg-at-10", "intervals-rmse",
                "significance-rmse"}
    assert set(pngs) == expected
    # self-contained: every image is the PNG beside it, inline; nothing is fetched
    images = dict(re.findall(r'<figure id="fig-([\w-]+)"><img alt="[^"]*" '
                             r'src="data:image/png;base64,([^"]+)"', page))
    assert set(images) == expected
    for name, b64 in images.items():
        assert base64.b64decode(b64) == (folder / "figures" / f"{name}.png").read_bytes()
    assert not re.search(r"(src|href)=['\"](https?:|//)", page)
    assert "default-src 'none'" in page
    # the protocol says how the training histories were obtained; the table has every model
    assert "was re-created for histories" in page
    for model in ("pop", "itemknn", "mf"):
        assert f"<td>{model}</td>" in page
    assert not list(folder.glob(".*.tmp")) and not list((folder / "figures").glob(".*.tmp"))


def test_report_without_the_dataset_still_writes_results(bench_dir, tmp_path):
    folder = _copy(bench_dir, tmp_path / "run")
    (folder / "figures").mkdir()
    (folder / "figures" / "training-old.png").write_bytes(b"stale")  # an earlier report's
    out = build_report(folder, data_dir=tmp_path / "nowhere", dpi=50)
    page = out.read_text(encoding="utf-8")
    assert "could not be loaded" in page
    for sid in SECTIONS:
        assert f"<section id='{sid}'>" in page
    assert {p.stem for p in (folder / "figures").glob("*.png")} == {
        "comparison-rating", "comparison-ranking", "comparison-beyond", "training-mf",
        "intervals-ndcg-at-10", "significance-ndcg-at-10", "intervals-rmse",
        "significance-rmse"}


def test_report_command(bench_dir, data_root, tmp_path):
    folder = _copy(bench_dir, tmp_path / "run")
    result = runner.invoke(app, ["report", str(folder), "--data-dir", str(data_root),
                                 "--model", "itemknn", "--user", "3", "--k", "5",
                                 "--graph-users", "6"])
    assert result.exit_code == 0, result.output
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "User 3 rated highest" in page and "Recommended by itemknn" in page
    assert "lists of length 5" in page
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "results.json" in result.output
    result = runner.invoke(app, ["report", str(folder), "--data-dir", str(data_root),
                                 "--model", "nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_data_plot_command_writes_pngs(data_root, tmp_path):
    out = tmp_path / "figs"
    result = runner.invoke(app, ["data", "plot", str(data_root / "synth"), "--out", str(out),
                                 "--figure", "long-tail", "--figure", "bipartite-graph",
                                 "--graph-users", "5", "--dpi", "50"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["bipartite-graph.png", "long-tail.png"]
    assert (out / "long-tail.png").read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["data", "plot", str(data_root / "synth"), "--out", str(out),
                                 "--figure", "pie-chart"])
    assert result.exit_code == 2 and "unknown figure" in result.output
    result = runner.invoke(app, ["data", "plot", "--help"])
    assert result.exit_code == 0 and "--out" in result.output


# --- headless Chromium -------------------------------------------------------------------------
class _DevTools:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        to_child_r, self._write = os.pipe()
        self._read, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child: commands on fd 3, replies on fd 4
            # move both ends above 4 first, so neither is overwritten by the other's dup2
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        # os.pipe fds are not inheritable (PEP 446): only the dup2'd 3 and 4 reach chromium
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"], preexec_fn=wire_fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        self._id += 1
        msg: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._next(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._next(timeout)
            if event.get("method") == method:
                return event

    def _next(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def close(self) -> None:
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode()
                     + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                    "chromium) - the report was not checked in a browser")
def test_report_renders_in_headless_chromium_without_errors(report_folder, tmp_path):
    folder = report_folder
    out = folder / "report.html"
    browser = _DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target,
                                                         "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": out.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        check = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": """({
            images: document.images.length,
            broken: Array.from(document.images).filter(i => !i.complete || !i.naturalWidth)
                                               .map(i => i.alt),
            sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
            title: document.title})"""}, session=session)["result"]["value"]
    finally:
        browser.close()
    errors = [e for e in browser.events
              if (e["method"] == "Runtime.consoleAPICalled"
                  and e["params"]["type"] in ("error", "assert"))
              or e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error")]
    fetched = [e["params"]["request"]["url"][:80] for e in browser.events
               if e["method"] == "Network.requestWillBeSent"
               and not e["params"]["request"]["url"].startswith(("data:", "file:"))]
    assert errors == [], errors
    assert fetched == []
    assert check["broken"] == [] and check["images"] == len(list((folder / "figures").iterdir()))
    assert check["sections"] == list(SECTIONS)
    assert check["title"] == "movierec report — synth"


# --- the quickstart notebook -------------------------------------------------------------------
NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def _release_for_notebook(tmp_path: Path) -> str:
    """Real ML-100K when it is beside the checkout (or in $MOVIEREC_DATA_DIR), else synthetic."""
    env = os.environ.get("MOVIEREC_DATA_DIR")
    for root in ([Path(env)] if env else []) + [NOTEBOOK.parents[2] / "shared" / "datasets"]:
        if (root / "ml-100k" / "u.data").is_file():
            return str(root / "ml-100k")
    return str(write_release("ml100k", tmp_path / "synth", n_users=300, n_items=120,
                             n_ratings=9000, rng=0))


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("torch")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "store the notebook without outputs"
    monkeypatch.setenv("MOVIEREC_QUICKSTART_SMALL", "1")
    monkeypatch.setenv("MOVIEREC_QUICKSTART_DATASET", _release_for_notebook(tmp_path))
    monkeypatch.setenv("MOVIEREC_QUICKSTART_OUT", str(tmp_path / "out"))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    images = sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for out in c.outputs)
    assert images >= 11  # every plots.* cell displayed its figure
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert all(f"<section id='{sid}'>" in page for sid in SECTIONS)
    assert "was given with the results" in page


def test_results_table_bolds_a_best_only_where_better_is_defined():
    from movierec.benchmark import BenchmarkResult
    from movierec.report import _results

    def metrics(ndcg: float, rmse: float, novelty: float, arp: float, cov: float) -> dict:
        return {"ndcg@10": ndcg, "rmse": rmse, "novelty@10": novelty, "arp@10": arp,
                "coverage@10": cov}

    runs = [{"model": m, "seed": 1, "fit_seconds": 1.0, "recommend_seconds": 0.1,
             "metrics": metrics(*values)} for m, values in (
                 ("strong", (0.30, 0.90, 2.0, 300.0, 0.20)),
                 ("weak", (0.01, 1.20, 9.0, 2.0, 0.95)),  # random-like: most novel, least popular
                 ("middle", (0.20, 0.95, 4.0, 100.0, 0.50)))]
    result = BenchmarkResult("synth", {"name": "random"}, {"k": [10]}, runs)
    html = _results(result, 10)
    best = re.findall(r"<td class='best'>([^<]+)</td>", html)
    assert best == ["0.9", "0.3"]  # rmse (lower) and ndcg@10 (higher), both by "strong"
    head = re.findall(r"<th>([^<]+)</th>", html)
    assert "rmse ↓" in head and "ndcg@10 ↑" in head
    assert {"novelty@10", "arp@10", "coverage@10"} <= set(head)  # no arrow: no better direction
