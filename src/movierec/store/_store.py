"""`Store`: the service's state (users, ratings, impressions, API keys, model versions)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from movierec.store import _engine, _keys, _rows
from movierec.store._engine import StoreError, StoreUnavailableError
from movierec.store._keys import ApiKey, KeyRefusedError
from movierec.store._schema import api_keys, impressions, ratings, users
from movierec.store._versions import ModelVersionsMixin

_RATING_COLUMNS = [ratings.c[name] for name in _rows.RATING_COLUMNS]
_KEY_COLUMNS = [api_keys.c.key_id, api_keys.c.scope, api_keys.c.label, api_keys.c.created_at,
                api_keys.c.revoked_at]
_DUMMY_HASH = _keys.hash_secret("")  # compared against for unknown key ids: same work either way


class Store(ModelVersionsMixin):
    """The service's durable state in SQLite (default) or PostgreSQL, behind one small API.

    Every write is one transaction, committed (and on SQLite fsynced: WAL, synchronous=FULL)
    before the method returns; a failed validation writes nothing. Several `Store` objects,
    threads or processes may share one database.

    Args:
        url: `sqlite:///FILE`, `postgresql://USER@HOST/DB`, a file path, or None for
            MOVIEREC_STORE, else `movierec-state.db` in the working folder.
        timeout: seconds to wait for SQLite's write lock or a PostgreSQL connection before
            StoreUnavailableError (default 10).
        rating_scale: (lowest, highest) rating accepted, inclusive; None accepts any finite value.
        max_batch: the most ratings one `put_ratings` call may write (default 1000).
        migrate: bring the schema to this package's newest revision on open (default True).

    Raises:
        StoreError: bad URL, or a database at a schema revision this package does not know.
        StoreUnavailableError: the database cannot be reached (also from any method later).
    """

    def __init__(self, url: str | None = None, *, rating_scale: tuple[float, float] | None = None,
                 max_batch: int = 1000, migrate: bool = True, timeout: float = 10.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, found {max_batch}")
        if rating_scale is not None and not rating_scale[0] < rating_scale[1]:
            raise ValueError(f"rating_scale must be (lowest, highest), found {rating_scale}")
        self.url = _engine.resolve_url(url)
        self.rating_scale = rating_scale
        self.max_batch = max_batch
        self._engine = _engine.create_engine(self.url, timeout=timeout)
        self._postgres = self._engine.dialect.name == "postgresql"
        try:
            if migrate:
                self.migrate()
        except sa.exc.OperationalError as exc:
            self._engine.dispose()
            raise StoreUnavailableError(f"store {self.display_url}: cannot connect: "
                                        f"{str(exc.orig).strip().splitlines()[0]}") from exc
        except BaseException:
            self._engine.dispose()
            raise

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and messages."""
        return _engine._redact(self.url)

    def migrate(self) -> str:
        """Bring the schema to the newest revision (a no-op when there); returns the revision."""
        return _engine.migrate(self._engine)

    @property
    def revision(self) -> str | None:
        """The schema revision recorded in the database."""
        return _engine.current_revision(self._engine)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (on SQLite it takes the write lock at BEGIN)."""
        try:
            with self._engine.connect().execution_options(write=True) as conn, conn.begin():
                yield conn
        except (sa.exc.OperationalError, sa.exc.TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reads (no explicit transaction)."""
        try:
            with self._engine.connect() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return StoreUnavailableError(f"store {self.display_url} is unavailable: {reason}")

    def _insert(self, table: sa.Table) -> Any:
        if self._postgres:
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    # --- users ---------------------------------------------------------------------------------
    def add_users(self, user_ids: Iterable[int], *, source: str = "dataset") -> int:
        """Record users (the dataset's, typically); ones already known are left alone.

        Returns:
            How many were new.
        """
        ids = sorted({_rows.check_id(u, "user_id") for u in user_ids})
        if not ids:
            return 0
        now = time.time()
        stmt = self._insert(users).on_conflict_do_nothing(index_elements=[users.c.user_id])
        with self._write() as conn:
            before = conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one()
            conn.execute(stmt, [{"user_id": u, "source": _rows.check_source(source),
                                 "created_at": now} for u in ids])
            after = conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one()
        return after - before

    def create_user(self, *, above: int = 0) -> int:
        """Create a user and return its id: larger than `above` and than every id in the store.

        Args:
            above: the largest id the dataset uses, so new ids never collide with it.
        """
        for _ in range(10):  # PostgreSQL: a concurrent create may take the same id; try again
            try:
                with self._write() as conn:
                    top = max(conn.execute(sa.select(sa.func.max(users.c.user_id))).scalar() or 0,
                              conn.execute(sa.select(sa.func.max(ratings.c.user_id))).scalar()
                              or 0, int(above))
                    user_id = _rows.check_id(top + 1, "user_id")
                    conn.execute(users.insert().values(user_id=user_id, source="api",
                                                       created_at=time.time()))
                return user_id
            except sa.exc.IntegrityError:
                continue
        raise StoreError("could not allocate a new user id (too many concurrent creates)")

    def user_exists(self, user_id: int) -> bool:
        """True when the store knows the user (registered, created, or with stored ratings)."""
        user_id = _rows.check_id(user_id, "user_id")
        with self._read() as conn:
            return bool(conn.execute(sa.select(users.c.user_id).where(
                users.c.user_id == user_id)).first() or conn.execute(
                sa.select(ratings.c.user_id).where(ratings.c.user_id == user_id).limit(1)).first())

    # --- ratings -------------------------------------------------------------------------------
    def put_rating(self, user_id: int, item_id: int, rating: float, *,
                   timestamp: int | None = None, source: str = "api",
                   list_id: str | None = None) -> None:
        """Store a rating; an earlier one of the same user and movie is replaced (idempotent).

        `list_id` names the impressions list (`log_impressions`) the rating was given from.

        Raises:
            ValueError: an id, the rating (non-finite, outside `rating_scale`), the timestamp or
                the source is invalid; the message names the field.
        """
        row: dict[str, Any] = {"user_id": user_id, "item_id": item_id, "rating": rating,
                               "list_id": list_id}
        if timestamp is not None:
            row["timestamp"] = timestamp
        self.put_ratings([row], source=source)

    def put_ratings(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                    source: str = "api") -> int:
        """Store a batch of ratings in one transaction: all of them or, on any error, none.

        Args:
            rows: mappings (or a DataFrame) with user_id, item_id, rating and optionally
                timestamp (unix seconds; default now), source and list_id (the impressions
                list the rating was given from). A later row for the same user and movie wins.
            source: label for rows that carry none (default "api").

        Returns:
            How many (user, movie) ratings were written.

        Raises:
            ValueError: more than `max_batch` rows, or a bad row (named by index and field).
        """
        clean = _rows.rating_rows(rows, scale=self.rating_scale, max_rows=self.max_batch,
                                  source=_rows.check_source(source), now=time.time())
        if not clean:
            return 0
        stmt = self._insert(ratings)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ratings.c.user_id, ratings.c.item_id],
            set_={c: stmt.excluded[c] for c in ("rating", "timestamp", "source", "updated_at",
                                                "list_id")})
        with self._write() as conn:
            conn.execute(stmt, clean)
        return len(clean)

    def delete_rating(self, user_id: int, item_id: int) -> bool:
        """Delete a stored rating; returns whether there was one."""
        user_id = _rows.check_id(user_id, "user_id")
        item_id = _rows.check_id(item_id, "item_id")
        with self._write() as conn:
            result = conn.execute(ratings.delete().where(ratings.c.user_id == user_id,
                                                         ratings.c.item_id == item_id))
        return result.rowcount > 0

    def _ratings(self, *where: Any) -> pd.DataFrame:
        query = sa.select(*_RATING_COLUMNS).where(*where).order_by(
            ratings.c.updated_at, ratings.c.user_id, ratings.c.item_id)
        with self._read() as conn:
            return _rows.to_frame(conn.execute(query))

    def ratings_of(self, user_id: int) -> pd.DataFrame:
        """A user's stored ratings, oldest write first.

        Columns user_id, item_id, rating, timestamp, source, updated_at (the datasets' dtypes for
        the first four).
        """
        return self._ratings(ratings.c.user_id == _rows.check_id(user_id, "user_id"))

    def all_ratings(self) -> pd.DataFrame:
        """Every stored rating (the latest per user and movie), oldest write first."""
        return self._ratings()

    def feedback_since(self, since: float) -> pd.DataFrame:
        """Ratings written after `since` (unix seconds, server clock), oldest write first."""
        return self._ratings(ratings.c.updated_at > float(since))

    def count_ratings(self) -> int:
        """How many ratings are stored."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(ratings)).scalar_one()

    # --- impressions ---------------------------------------------------------------------------
    def log_impressions(self, list_id: str | None, user_id: int, items: Sequence[int],
                        model_version: str) -> str:
        """Record a list shown to a user (position 1 = top); returns its list id.

        Args:
            list_id: an id the caller chose (at most 64 characters), or None for a fresh UUID.
            user_id: the user shown the list.
            items: the movies in list order, first at position 1.
            model_version: the served model's version (1 to 64 characters).
        """
        list_id = uuid.uuid4().hex if list_id is None else str(list_id)
        if not 0 < len(list_id) <= 64:
            raise ValueError(f"list_id must have 1 to 64 characters, found {list_id!r}")
        if not isinstance(model_version, str) or not 0 < len(model_version) <= 64:
            raise ValueError(f"model_version must have 1 to 64 characters, found {model_version!r}")
        user_id = _rows.check_id(user_id, "user_id")
        now = time.time()
        rows = [{"list_id": list_id, "position": pos, "user_id": user_id,
                 "item_id": _rows.check_id(item, f"items[{pos - 1}]"),
                 "model_version": model_version, "shown_at": now}
                for pos, item in enumerate(items, start=1)]
        if rows:
            try:
                with self._write() as conn:
                    conn.execute(impressions.insert(), rows)
            except sa.exc.IntegrityError:
                raise ValueError(f"list_id {list_id!r} was logged already") from None
        return list_id

    def impressions_since(self, since: float = 0.0) -> pd.DataFrame:
        """Impressions shown after `since` (unix seconds).

        Columns list_id, position, user_id, item_id, model_version, shown_at.
        """
        query = sa.select(impressions).where(impressions.c.shown_at > float(since)).order_by(
            impressions.c.shown_at, impressions.c.list_id, impressions.c.position)
        with self._read() as conn:
            return pd.DataFrame(list(conn.execute(query)), columns=list(impressions.c.keys()))

    # --- API keys ------------------------------------------------------------------------------
    def create_key(self, scope: str, *, label: str = "") -> str:
        """Create an API key and return its token; the token is shown only this once.

        Args:
            scope: "read", "write" or "admin" (each includes the ones before it).
            label: a note for `list_keys` (at most 200 characters).
        """
        _keys.check_scope(scope)
        if len(label) > 200:
            raise ValueError(f"label must have at most 200 characters, found {len(label)}")
        key_id, secret, token = _keys.new_token()
        with self._write() as conn:
            conn.execute(api_keys.insert().values(
                key_id=key_id, secret_sha256=_keys.hash_secret(secret), scope=scope,
                label=label, created_at=time.time(), revoked_at=None))
        return token

    def list_keys(self) -> list[ApiKey]:
        """Every API key, oldest first, without secrets."""
        with self._read() as conn:
            rows = conn.execute(sa.select(*_KEY_COLUMNS).order_by(api_keys.c.created_at))
            return [ApiKey(*row) for row in rows]

    def has_keys(self) -> bool:
        """True when at least one unrevoked key exists."""
        with self._read() as conn:
            return conn.execute(sa.select(api_keys.c.key_id).where(
                api_keys.c.revoked_at.is_(None)).limit(1)).first() is not None

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key by id (revoking twice keeps the first time); returns it.

        Raises:
            StoreError: no key has this id.
        """
        with self._write() as conn:
            conn.execute(api_keys.update().where(api_keys.c.key_id == key_id,
                                                 api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=time.time()))
            row = conn.execute(sa.select(*_KEY_COLUMNS).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            raise StoreError(f"API key {key_id!r} not found (see `movierec keys list`)")
        return ApiKey(*row)

    def verify_key(self, token: str, required_scope: str) -> ApiKey:
        """The key behind `token` if it is valid, unrevoked and grants `required_scope`.

        Raises:
            KeyRefusedError: with `reason` "malformed", "unknown", "revoked" or "scope".
        """
        _keys.check_scope(required_scope)
        key_id, secret = _keys.split_token(token)
        with self._read() as conn:
            row = conn.execute(sa.select(api_keys.c.secret_sha256, *_KEY_COLUMNS).where(
                api_keys.c.key_id == key_id)).first()
        matches = _keys.same_hash(row[0] if row else _DUMMY_HASH, secret)
        if row is None or not matches:
            raise KeyRefusedError("unknown", "API key not recognised")
        key = ApiKey(*row[1:])
        if key.revoked:
            raise KeyRefusedError("revoked", f"API key {key.key_id} was revoked")
        if not _keys.grants(key.scope, required_scope):
            raise KeyRefusedError("scope", f"API key {key.key_id} has scope {key.scope}; "
                                  f"this needs {required_scope}")
        return key
