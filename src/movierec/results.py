"""Results of one evaluation: summary, per-user values, counts, protocol, timings, JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.errors import ArtifactError
from movierec.io import atomic_write_text
from movierec.metrics import METRICS

RESULTS_FORMAT = 1


def json_ready(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(v) for v in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def _frame_to_dict(frame: pd.DataFrame | None) -> dict[str, list[Any]] | None:
    if frame is None:
        return None
    return {col: json_ready(frame[col].to_numpy()) for col in frame.columns}


def _frame_from_dict(data: dict[str, list[Any]] | None,
                     int_columns: tuple[str, ...]) -> pd.DataFrame | None:
    if data is None:
        return None
    out = pd.DataFrame(index=pd.RangeIndex(len(next(iter(data.values()), []))))
    for col, values in data.items():
        if col in int_columns:
            out[col] = np.asarray(values, dtype=np.int64)
        else:
            out[col] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return out


@dataclass(eq=False)
class Results:
    """What `movierec.evaluate.evaluate` measured for one model on one split.

    Attributes:
        summary: metric key -> mean value, keys like "rmse", "ndcg@10", "coverage@10",
            "sampled_hit@10". A metric the model cannot be measured on is absent, never 0.
        per_user: one row per evaluated user: user_id and the per-user ranking metrics
            ("precision@10", ..., "diversity@10" where defined).
        counts: users evaluated, users excluded for lack of a relevant test item, test users
            unknown to the model, test rows with unknown items, rating rows predicted, ...
        protocol: how it was measured, e.g. {"protocol": "full", "relevance": 4.0,
            "k": [5, 10, 20], "candidates": "all-unseen"}.
        timings: seconds spent ranking ("ranking") and predicting ratings ("rating").
        lists: the recommended lists [user_id, item_id, score, rank] when asked for, else None.
        meta: free JSON-ready context (model name and params, split description, fingerprint,
            package version).
    """

    summary: dict[str, float]
    per_user: pd.DataFrame
    counts: dict[str, int]
    protocol: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    lists: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(self.summary.items())[:6])
        return f"Results({self.protocol.get('protocol', '?')}: {shown}, ...)"

    def __getitem__(self, key: str) -> float:
        return self.summary[key]

    # --- tables --------------------------------------------------------------------------------
    def table(self, k: int | None = None) -> pd.DataFrame:
        """Summary as a frame [metric, k, value, better]; only list length `k` when given."""
        rows = []
        for key, value in self.summary.items():
            name, _, at = key.partition("@")
            kk = int(at) if at else None
            if k is not None and kk is not None and kk != k:
                continue
            rows.append({"metric": name, "k": kk, "value": value,
                         "better": METRICS.get(name, "")})
        return pd.DataFrame(rows, columns=["metric", "k", "value", "better"])

    # --- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None); inverse of `from_dict`."""
        return {
            "format": RESULTS_FORMAT,
            "summary": json_ready(self.summary),
            "counts": json_ready(self.counts),
            "protocol": json_ready(self.protocol),
            "timings": json_ready(self.timings),
            "meta": json_ready(self.meta),
            "per_user": _frame_to_dict(self.per_user),
            "lists": _frame_to_dict(self.lists),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Rebuild Results from `to_dict` output.

        Raises:
            ArtifactError: the dict is of another format or lacks a field.
        """
        if data.get("format") != RESULTS_FORMAT:
            raise ArtifactError(f"results format {data.get('format')!r} is not {RESULTS_FORMAT}")
        try:
            summary = {k: float("nan") if v is None else float(v)
                       for k, v in data["summary"].items()}
            per_user = _frame_from_dict(data["per_user"], ("user_id",))
            lists = _frame_from_dict(data.get("lists"), ("user_id", "item_id", "rank"))
            return cls(summary=summary,
                       per_user=per_user if per_user is not None else pd.DataFrame(),
                       counts={k: int(v) for k, v in data["counts"].items()},
                       protocol=dict(data["protocol"]), timings=dict(data.get("timings", {})),
                       lists=lists, meta=dict(data.get("meta", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed results: {exc!r}") from exc

    def save_json(self, path: str | Path) -> Path:
        """Write the results as JSON atomically (a crash never leaves half a file)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> Results:
        """Read results written by `save_json`.

        Raises:
            ArtifactError: the file is missing, not JSON, or not a results file.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: cannot read results: {exc}") from exc
        if not isinstance(data, dict):
            raise ArtifactError(f"{path}: expected a JSON object, found {type(data).__name__}")
        return cls.from_dict(data)


__all__ = ["Results"]
