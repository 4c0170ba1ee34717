"""kill -9 at a random moment: training resumes to the same weights; a write keeps the old file.

Everything runs in real subprocesses on the CPU, on small synthetic data, in pytest's temporary
folders. The moment of each kill is drawn at random and printed when a test fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from movierec.io import atomic_write_bytes

pytest.importorskip("torch")

EPOCHS = 10
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _train_cmd(release: Path, out: Path, ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "movierec.cli", "train", "--dataset", str(release),
            "--model", "mf", "--out", str(out), "--checkpoint-dir", str(ckpt),
            "--param", f"epochs={EPOCHS}", "--param", "embedding_size=8",
            "--param", "batch_size=16", "--param", "dropout=0.1", "--device", "cpu",
            "--seed", "7", "--no-progress",
            # A fixed number of epochs (no early stopping on a carved-out validation part), so
            # the kill point always lies inside the run.
            "--valid-size", "0", *extra]


def _checkpoint_epoch(ckpt: Path) -> int:
    try:
        return int(json.loads((ckpt / "last.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0  # not written yet, or being replaced this instant


def _module_weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    arrays = load_file(str(model_dir / "state.safetensors"))
    return {k: v for k, v in arrays.items() if k.startswith("module.")}


@pytest.mark.slow  # three Python processes (about 8 s on an idle 2-core machine)
def test_kill_9_during_training_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    from movierec.data.synthetic import write_release

    release = write_release("ml100k", tmp_path / "data" / "release", n_users=40, n_items=30,
                            n_ratings=400, rng=0)
    rng = random.Random()
    kill_after = rng.randint(1, EPOCHS - 3)  # complete epochs seen in the checkpoint, then...
    fraction = rng.random()  # ...this fraction of one epoch's time
    why = f"kill after epoch {kill_after} + {fraction:.2f} epoch"
    ref = subprocess.Popen(_train_cmd(release, tmp_path / "ref", tmp_path / "ref.ckpt"),
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "run.ckpt"
    run = subprocess.Popen(_train_cmd(release, tmp_path / "run", ckpt), env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        seen: dict[int, float] = {}
        while _checkpoint_epoch(ckpt) < kill_after and run.poll() is None:
            seen.setdefault(_checkpoint_epoch(ckpt), time.monotonic())
            assert time.monotonic() < deadline, "training never reached the kill point"
            time.sleep(0.005)
        seen.setdefault(_checkpoint_epoch(ckpt), time.monotonic())
        stamps = sorted(t for e, t in seen.items() if e >= 1)
        epoch_s = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1) if len(stamps) > 1 else 0.05
        time.sleep(fraction * epoch_s)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == -signal.SIGKILL, f"{why}: the run ended before the kill"
    why += f" (the checkpoint then held epoch {_checkpoint_epoch(ckpt)})"
    assert _checkpoint_epoch(ckpt) >= 1, why

    resumed = subprocess.run(_train_cmd(release, tmp_path / "run", ckpt, "--resume"), env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, f"{why}: {resumed.stderr[-2000:]}"
    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err.decode()[-2000:]

    got, want = _module_weights(tmp_path / "run"), _module_weights(tmp_path / "ref")
    assert got.keys() == want.keys() and got, why
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{why}: {key}")
    history = json.loads((tmp_path / "run" / "model.json").read_text())["state"]["history_"]
    assert [h["epoch"] for h in history["value"]] == list(range(1, EPOCHS + 1)), why
    # A kill during a checkpoint write may leave a hidden temp file; nothing else is there.
    assert {p.name for p in ckpt.iterdir()
            if not (p.name.startswith(".last.") and p.name.endswith(".tmp"))} == {
        "last.safetensors", "last.json"}, why
    print(f"{why}: resumed weights equal the uninterrupted run's ({len(want)} tensors)")


# --- a writer killed mid-write -------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import hashlib, os, sys, time
    import movierec.io as mio

    target, mode = sys.argv[1], sys.argv[2]
    if mode == "stall":  # the data is written; block before the rename that commits it
        real = os.fsync
        def stall(fd):
            real(fd)
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).endswith(".tmp"):
                print("written", flush=True)
                time.sleep(600)
        mio.os.fsync = stall
    version = 0
    while True:
        version += 1
        body = bytes([version % 251]) * (24 << 20)
        head = f"v{version} {len(body)} {hashlib.sha256(body).hexdigest()}\\n".encode()
        mio.atomic_write_bytes(target, head + body)
        if mode == "stall":
            break
""")


def _parse_version(data: bytes) -> str:
    """The version a complete file holds; fails on a partial or mixed one."""
    head, _, body = data.partition(b"\n")
    version, size, digest = head.decode().split()
    assert len(body) == int(size), f"{version}: {len(body)} of {size} bytes"
    assert hashlib.sha256(body).hexdigest() == digest, f"{version}: content differs"
    return version


def _old_file(path: Path) -> bytes:
    body = b"old" * 1000
    data = f"v0 {len(body)} {hashlib.sha256(body).hexdigest()}\n".encode() + body
    atomic_write_bytes(path, data)
    return data


def _leftovers_are_hidden_temp_files(folder: Path, target: Path) -> None:
    for p in folder.iterdir():
        if p != target:
            assert p.name.startswith(f".{target.name}.") and p.name.endswith(".tmp"), p.name
    assert sorted(folder.glob("*.json")) == [target]  # a reader's glob never sees a temp file


def test_writer_killed_before_its_rename_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    old = _old_file(target)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), "stall"], env=ENV,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        temps = list(tmp_path.glob(".results.json.*.tmp"))
        assert len(temps) == 1 and temps[0].stat().st_size > 24 << 20  # the new data is there
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert target.read_bytes() == old
    _leftovers_are_hidden_temp_files(tmp_path, target)


@pytest.mark.parametrize("attempt", range(3))
def test_writer_killed_at_a_random_moment_leaves_a_complete_file(tmp_path: Path,
                                                                 attempt: int) -> None:
    target = tmp_path / "results.json"
    _old_file(target)
    delay = random.uniform(0.0, 1.5)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), "loop"], env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".results.json.*.tmp")):  # the first write has begun
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    version = _parse_version(target.read_bytes())  # the old one or a later one, never partial
    assert version.startswith("v"), f"killed {delay:.3f}s after the first write began"
    _leftovers_are_hidden_temp_files(tmp_path, target)
