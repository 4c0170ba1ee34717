"""The service's durable state: users, ratings, impressions, API keys and model versions.

SQLite by default (WAL, fsync on commit), PostgreSQL by URL (psycopg 3); the schema is versioned
with Alembic migrations shipped in this package. No HTTP and no model code live here. Needs the
`store` extra: `pip install 'movierec[store]'`.
"""

from __future__ import annotations

from movierec.store._engine import DEFAULT_STORE, StoreError, StoreUnavailableError, resolve_url
from movierec.store._keys import SCOPES, ApiKey, KeyRefusedError
from movierec.store._store import Store
from movierec.store._versions import ModelVersion

__all__ = ["DEFAULT_STORE", "SCOPES", "ApiKey", "KeyRefusedError", "ModelVersion", "Store",
           "StoreError", "StoreUnavailableError", "resolve_url"]
