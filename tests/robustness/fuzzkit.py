"""Fuzz targets shared by the robustness tests and `benchmarks/fuzz_loaders.py`.

A target writes a small valid input once (a ratings file, a release folder, a zip, a model
folder, a checkpoint), and each case copies it, damages one file with seeded mutations and runs
the reader. Every case ends in one of three outcomes:

- "ok": the reader returned, and what it returned passes the target's checks (a Dataset with
  finite, in-scale ratings, unique pairs, int32 ids...);
- "error": the reader raised a `MovieRecError` (for the CLI: exit code 2 and one `error:` line);
  `located` says whether the message names a file and line ("u.data:12:");
- "crash": any other exception, or an "ok" result that breaks the checks.

Randomness comes only from the case's seed, so a crash is reproduced by its (target, seed).
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import stat
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import TIMESTAMP_LIMIT, Dataset
from movierec.errors import MovieRecError

#: Field values that break parsers: empty, non-finite, huge, fractional, non-ASCII, dates...
TOKENS = (
    b"", b"nan", b"NaN", b"inf", b"-inf", b"-1", b"0", b"1e400", b"99999999999",
    b"99999999999999999999999", b"-9223372036854775809", b"1.5", b"abc", b"\xff\xfe", b"\x00",
    b"1537799250000", b"4102444800", b" ", b'"', b'"1"', b"2020-01-01", b"9999-12-31",
    b"0x10", "\uff11".encode(), b"+1", b"1,5", b"5.5", b"-3", b"\r", b"\xe9t\xe9",
)
SEPARATORS = (b"\t", b",", b"::", b"|", b";", b" ")
_FIELD_SPLIT = re.compile(rb"(::|\t|,|\||;)")
LOCATED = re.compile(r"[^\s/:]+:\d+: ")


@dataclass
class Outcome:
    """What one case did: kind "ok" | "error" | "crash", and a description."""

    kind: str
    detail: str = ""
    located: bool = False


# --- mutations -----------------------------------------------------------------------------------
def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + rng.choice(TOKENS + SEPARATORS + (b"\n",)) + data[at:]


def _delete(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    a = rng.randrange(len(data))
    return data[:a] + data[a + rng.randint(1, 16):]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randint(0, len(data))]


def _duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    k = rng.randrange(len(lines))
    lines.insert(rng.randint(0, len(lines)), lines[k])
    return b"\n".join(lines)


def _replace_field(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    k = rng.randrange(len(lines))
    parts = _FIELD_SPLIT.split(lines[k])
    fields = list(range(0, len(parts), 2))
    parts[rng.choice(fields)] = rng.choice(TOKENS)
    lines[k] = b"".join(parts)
    return b"\n".join(lines)


def _change_separator(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    k = rng.randrange(len(lines))
    lines[k] = _FIELD_SPLIT.sub(rng.choice(SEPARATORS), lines[k])
    return b"\n".join(lines)


def _drop_or_add_field(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    k = rng.randrange(len(lines))
    parts = _FIELD_SPLIT.split(lines[k])
    if len(parts) >= 3 and rng.random() < 0.5:
        del parts[-2:]
    else:
        parts += [b"," if b"," in lines[k] else b"\t", rng.choice(TOKENS)]
    lines[k] = b"".join(parts)
    return b"\n".join(lines)


def _empty(data: bytes, rng: random.Random) -> bytes:
    return rng.choice((b"", b"\n", b"\n\n\r\n"))


def _header_only(data: bytes, rng: random.Random) -> bytes:
    return _lines(data)[0] + b"\n"


TEXT_MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    _flip, _insert, _delete, _truncate, _duplicate_line, _replace_field, _replace_field,
    _replace_field, _change_separator, _drop_or_add_field, _empty, _header_only,
)
BYTE_MUTATIONS = (_flip, _insert, _delete, _truncate, _flip)


def mutate(data: bytes, rng: random.Random,
           ops: tuple[Callable[[bytes, random.Random], bytes], ...] = TEXT_MUTATIONS) -> bytes:
    """Apply one to three mutations chosen by `rng` (the same seed, the same bytes)."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        data = rng.choice(ops)(data, rng)
    return data


_JSON_VALUES: tuple[Any, ...] = (None, True, 0, -1, 99, 1e308, "x", "", [], {}, [1], {"a": 1},
                                 {"type": "zzz"}, {"type": "array"}, {"type": "csr"})


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """Replace, delete or add one value somewhere in a JSON document (or mutate its bytes)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return mutate(data, rng, BYTE_MUTATIONS)
    if rng.random() < 0.2:
        return mutate(data, rng, BYTE_MUTATIONS)
    holders: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            holders.append(node)
            for child in (node.values() if isinstance(node, dict) else node):
                walk(child)

    walk(doc)
    if not holders:
        return json.dumps(rng.choice(_JSON_VALUES)).encode()
    node = rng.choice(holders)
    value = rng.choice(_JSON_VALUES)
    if isinstance(node, dict):
        key = rng.choice([*node, "extra"]) if node else "extra"
        if rng.random() < 0.25 and key in node:
            del node[key]
        else:
            node[key] = value
    elif node:
        node[rng.randrange(len(node))] = value
    else:
        node.append(value)
    return json.dumps(doc).encode()


# --- checks of successful results ----------------------------------------------------------------
def dataset_problem(ds: Any, scale: tuple[float, float] | None = None) -> str | None:
    """Why `ds` is not a sound Dataset, or None: the invariants every loader promises."""
    if not isinstance(ds, Dataset):
        return f"returned {type(ds).__name__}, not a Dataset"
    r = ds.ratings
    if list(r.columns) != ["user_id", "item_id", "rating", "timestamp"]:
        return f"columns {list(r.columns)}"
    dtypes = [str(t) for t in r.dtypes]
    if dtypes != ["int32", "int32", "float32", "int64"]:
        return f"dtypes {dtypes}"
    if len(r) == 0:
        return "an empty Dataset was returned"
    values = r["rating"].to_numpy()
    if not np.isfinite(values).all():
        return "non-finite rating"
    if scale is not None and ((values < scale[0]) | (values > scale[1])).any():
        return f"rating outside {scale}"
    if (r["timestamp"].to_numpy() >= TIMESTAMP_LIMIT).any():
        return "timestamp after 2100"
    if r.duplicated(["user_id", "item_id"]).any():
        return "duplicated (user, item) pair"
    for table, key in ((ds.items, "item_id"), (ds.users, "user_id")):
        if table is not None and key in table and table[key].duplicated().any():
            return f"duplicated {key} in a side table"
    return None


# --- targets -------------------------------------------------------------------------------------
@dataclass
class Target:
    """One reader under fuzzing.

    Args:
        name: label in tables and test ids.
        build: writes the valid input into an empty folder; returns the names of the files
            that cases may damage.
        run: reads the (damaged) folder; returns what the reader returned, or an Outcome.
        check: why a returned value is unsound, or None.
        mutator: how a file is damaged.
    """

    name: str
    build: Callable[[Path], list[str]]
    run: Callable[[Path], Any]
    check: Callable[[Any, Path], str | None] = lambda result, folder: None
    mutator: Callable[[bytes, random.Random], bytes] = mutate
    _templates: dict[Path, list[str]] = field(default_factory=dict, repr=False)

    def case(self, workdir: Path, seed: int) -> Outcome:
        """Run case `seed`: copy the template, damage one file, read, classify."""
        template = workdir / f"{self.name}.template"
        if template not in self._templates:
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir(parents=True)
            self._templates[template] = self.build(template)
        folder = workdir / f"{self.name}.case"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(template, folder)
        rng = random.Random(seed)
        victim = folder / rng.choice(self._templates[template])
        victim.write_bytes(self.mutator(victim.read_bytes(), rng))
        return classify(lambda: self.run(folder), lambda result: self.check(result, folder))


def classify(call: Callable[[], Any], check: Callable[[Any], str | None]) -> Outcome:
    """Outcome of `call()`: ok (checked), error (MovieRecError) or crash (anything else)."""
    try:
        result = call()
    except MovieRecError as exc:
        return Outcome("error", str(exc), located=bool(LOCATED.search(str(exc))))
    except Exception as exc:  # noqa: BLE001 - this is what a fuzzer looks for
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return Outcome("crash", f"{type(exc).__name__}: {exc} (at {Path(tb.filename).name}:"
                                f"{tb.lineno})")
    if isinstance(result, Outcome):
        return result
    problem = check(result)
    return Outcome("crash", problem) if problem else Outcome("ok")


def _ratings_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    from movierec.data.synthetic import make_ratings

    return make_ratings(8, 12, n, rng=seed, half_stars=True)


def _file_target(name: str, sep: str, header: bool) -> Target:
    from movierec.data.files import load_ratings_file

    def build(folder: Path) -> list[str]:
        frame = _ratings_frame()
        lines = [sep.join(("userId", "movieId", "rating", "timestamp"))] if header else []
        lines += [sep.join(str(v) for v in row) for row in frame.itertuples(index=False)]
        (folder / "ratings.txt").write_text("\n".join(lines) + "\n")
        return ["ratings.txt"]

    return Target(name, build, lambda folder: load_ratings_file(folder / "ratings.txt"),
                  lambda ds, folder: dataset_problem(ds))


def _parquet_target() -> Target:
    from movierec.data.files import load_ratings_file

    def build(folder: Path) -> list[str]:
        _ratings_frame().to_parquet(folder / "ratings.parquet")
        return ["ratings.parquet"]

    return Target("file-parquet", build,
                  lambda folder: load_ratings_file(folder / "ratings.parquet"),
                  lambda ds, folder: dataset_problem(ds), mutator=lambda d, r: mutate(
                      d, r, BYTE_MUTATIONS))


RELEASE_FILES = {"ml100k": ["u.data", "u.data", "u.item", "u.user"],
                 "ml1m": ["ratings.dat", "ratings.dat", "movies.dat", "users.dat"],
                 "ml10m": ["ratings.dat", "ratings.dat", "movies.dat", "tags.dat"],
                 "csv": ["ratings.csv", "ratings.csv", "movies.csv", "tags.csv", "links.csv"]}
RELEASE_SCALE = {"ml100k": (1.0, 5.0), "ml1m": (1.0, 5.0), "ml10m": (0.5, 5.0),
                 "csv": (0.5, 5.0)}


def _release_target(layout: str) -> Target:
    from movierec.data.movielens import read_folder
    from movierec.data.synthetic import write_release

    def build(folder: Path) -> list[str]:
        write_release(layout, folder, n_users=8, n_items=10, n_ratings=30,  # type: ignore[arg-type]
                      rng=0)
        return RELEASE_FILES[layout]

    scale = RELEASE_SCALE[layout]
    return Target(f"release-{layout}", build,
                  lambda folder: read_folder(folder, rating_scale=scale),
                  lambda ds, folder: dataset_problem(ds, scale))


def _archive_target() -> Target:
    from movierec.data.download import MARKER, extract
    from movierec.data.synthetic import write_release

    def build(folder: Path) -> list[str]:
        src = write_release("ml100k", folder / "src" / "ml-100k", n_users=5, n_items=6,
                            n_ratings=12, rng=0)
        with zipfile.ZipFile(folder / "archive.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(src.iterdir()):
                zf.write(f, f"ml-100k/{f.name}")
        shutil.rmtree(folder / "src")
        return ["archive.zip"]

    def run(folder: Path) -> Any:
        return extract(folder / "archive.zip", folder / "cache", "ml-100k", max_bytes=1 << 20)

    def check(result: Any, folder: Path) -> str | None:
        outside = sorted(p.name for p in folder.iterdir()) != ["archive.zip", "cache"]
        cache = sorted(p.name for p in (folder / "cache").iterdir())
        if outside or cache != ["ml-100k"] or not (result / MARKER).is_file():
            return f"extraction left {sorted(p.name for p in folder.iterdir())}, cache {cache}"
        return None

    return Target("archive", build, run, check, mutator=mutate_archive)


def mutate_archive(data: bytes, rng: random.Random) -> bytes:
    """Byte damage, or a structural attack: `..`, absolute path, symlink, encryption flag,
    unknown compression, a lying declared size."""
    if rng.random() < 0.5:
        return mutate(data, rng, BYTE_MUTATIONS)
    attack = rng.choice(("dotdot", "absolute", "symlink", "encrypted", "method", "size", "nul"))
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        name = {"dotdot": "ml-100k/../../evil", "absolute": "/tmp/movierec-evil",
                "nul": "ml-100k/evil\x00.txt"}.get(attack, "ml-100k/extra")
        info = zipfile.ZipInfo(name)
        if attack == "symlink":
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        dst.writestr(info, b"/etc/passwd" if attack == "symlink" else b"x" * 100)
    raw = bytearray(buf.getvalue())
    cd = raw.rfind(b"PK\x01\x02")
    if attack == "encrypted":
        raw[cd + 8] |= 1
    elif attack == "method":
        raw[cd + 10] = 99
    elif attack == "size":  # declare 2 GB uncompressed: over max_bytes
        raw[cd + 24:cd + 28] = (2**31).to_bytes(4, "little")
    return bytes(raw)


def _artifact_target() -> Target:
    from movierec.artifact import load_catalog, load_model
    from movierec.models import get

    def build(folder: Path) -> list[str]:
        frame = _ratings_frame()
        items = pd.DataFrame({"item_id": np.arange(1, 13), "title": [f"t{i}" for i in range(12)],
                              "year": 2000.0, "genres": [("Drama",)] * 12})
        ds = Dataset(frame, items=items)
        get("itemknn", n_neighbors=3).fit(ds).save(folder, catalog=items)
        return ["model.json", "model.json", "items.json", "state.safetensors"]

    def mutator(data: bytes, rng: random.Random) -> bytes:
        return mutate_json(data, rng) if data.lstrip()[:1] in (b"{", b"[") else mutate(
            data, rng, BYTE_MUTATIONS)

    def run(folder: Path) -> Any:
        model = load_model(folder)
        load_catalog(folder)
        return model

    return Target("artifact", build, run, mutator=mutator)


def _checkpoint_target() -> Target:
    from movierec.models.mf import MF

    data = Dataset(_ratings_frame(60, seed=1))
    params = {"embedding_size": 4, "batch_size": 16, "device": "cpu"}

    def build(folder: Path) -> list[str]:
        MF(epochs=1, **params).fit(data, rng=0, progress=False, checkpoint_dir=folder)
        return ["last.safetensors"]

    def run(folder: Path) -> Any:
        return MF(epochs=2, **params).fit(data, rng=0, progress=False, checkpoint_dir=folder,
                                          resume=True)

    def check(model: Any, folder: Path) -> str | None:
        return None if len(model.history_) == 2 else f"history {model.history_}"

    return Target("checkpoint", build, run, check,
                  mutator=lambda d, r: mutate(d, r, BYTE_MUTATIONS))


def cli_outcome(result: Any) -> Outcome:
    """Outcome of a CliRunner result: exit 0 ok; exit 2 with one `error:` line an error."""
    output = result.output
    errors = [ln for ln in output.splitlines() if ln.startswith("error:")]
    if result.exit_code == 0:
        return Outcome("ok")
    if result.exit_code == 2 and len(errors) == 1 and "Traceback" not in output:
        return Outcome("error", errors[0], located=bool(LOCATED.search(errors[0])))
    exc = result.exception
    return Outcome("crash", f"exit {result.exit_code}: {type(exc).__name__}: {exc}"
                            if exc and not isinstance(exc, SystemExit) else output[-300:])


def _cli_target() -> Target:
    from typer.testing import CliRunner

    from movierec.cli import app
    from movierec.data.synthetic import write_release

    runner = CliRunner()

    def build(folder: Path) -> list[str]:
        write_release("ml1m", folder, n_users=8, n_items=10, n_ratings=30, rng=0)
        return RELEASE_FILES["ml1m"]

    def run(folder: Path) -> Outcome:
        return cli_outcome(runner.invoke(app, ["data", "describe", str(folder)]))

    return Target("cli-describe", build, run)


def targets(*, torch: bool = True, cli: bool = True) -> dict[str, Target]:
    """Every target by name (the checkpoint target needs torch)."""
    out = [_file_target("file-csv", ",", header=True), _file_target("file-tsv", "\t", False),
           _file_target("file-dat", "::", header=False), _parquet_target(),
           *(_release_target(layout) for layout in RELEASE_FILES), _archive_target(),
           _artifact_target()]
    if torch:
        out.append(_checkpoint_target())
    if cli:
        out.append(_cli_target())
    return {t.name: t for t in out}
