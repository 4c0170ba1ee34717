"""Model versions in the store: register, activate, reject, list; at most one is active."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from movierec.store._engine import StoreError
from movierec.store._schema import model_versions


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version."""

    version: str
    path: str
    created_at: float
    metrics: dict[str, Any]
    status: str  # registered, active, retired or rejected
    activated_at: float | None
    note: str


class ModelVersionsMixin:
    """The model-version methods of `Store` (which provides `_read` and `_write`)."""

    def _write(self) -> AbstractContextManager[Connection]:  # pragma: no cover - Store's
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:  # pragma: no cover - Store's
        raise NotImplementedError

    # --- model versions ------------------------------------------------------------------------
    def register_model_version(self, version: str, path: str, *,
                               metrics: Mapping[str, Any] | None = None, note: str = "") -> None:
        """Record a model version (status "registered").

        Raises:
            ValueError: the version exists already, or metrics are not finite JSON.
        """
        if not isinstance(version, str) or not 0 < len(version) <= 64:
            raise ValueError(f"version must have 1 to 64 characters, found {version!r}")
        try:
            metrics = json.loads(json.dumps(dict(metrics or {}), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metrics of model version {version!r} are not finite JSON: "
                             f"{exc}") from None
        try:
            with self._write() as conn:
                conn.execute(model_versions.insert().values(
                    version=version, path=str(path), created_at=time.time(), metrics=metrics,
                    status="registered", activated_at=None, note=note))
        except sa.exc.IntegrityError:
            raise ValueError(f"model version {version!r} is registered already") from None

    def activate_model_version(self, version: str, *, note: str | None = None) -> None:
        """Make `version` the active one; the previously active one becomes "retired"."""
        self._set_status(version, "active", note)

    def reject_model_version(self, version: str, *, note: str) -> None:
        """Mark `version` as rejected (e.g. a retrain that scored worse), saying why."""
        self._set_status(version, "rejected", note)

    def _set_status(self, version: str, status: str, note: str | None) -> None:
        with self._write() as conn:
            # Lock every row, so two concurrent activations on PostgreSQL run one after the other.
            conn.execute(sa.select(model_versions.c.version).with_for_update()).all()
            found = conn.execute(sa.select(model_versions.c.version).where(
                model_versions.c.version == version)).first()
            if found is None:
                raise StoreError(f"model version {version!r} is not registered")
            values: dict[str, Any] = {"status": status}
            if note is not None:
                values["note"] = note
            if status == "active":
                conn.execute(model_versions.update().where(
                    model_versions.c.status == "active", model_versions.c.version != version)
                    .values(status="retired"))
                values["activated_at"] = time.time()
            conn.execute(model_versions.update().where(model_versions.c.version == version)
                         .values(**values))

    def model_versions(self) -> list[ModelVersion]:
        """Every registered model version, oldest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(model_versions).order_by(model_versions.c.created_at,
                                                                   model_versions.c.version))
            return [ModelVersion(*row) for row in rows]

    def current_model_version(self) -> ModelVersion | None:
        """The active model version, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(model_versions).where(
                model_versions.c.status == "active").order_by(
                model_versions.c.activated_at.desc()).limit(1)).first()
        return ModelVersion(*row) if row else None
