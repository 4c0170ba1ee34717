"""API keys (hashed, scoped, revocable) and model versions."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import sqlalchemy as sa

from movierec.store import KeyRefusedError, StoreError


def stored_key_rows(store) -> str:
    with store._engine.connect() as conn:
        return repr(conn.execute(sa.text("SELECT * FROM api_keys")).all())


def test_only_a_sha256_of_the_secret_is_stored(store):
    token = store.create_key("write", label="ci")
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == "mrk" and len(key_id) == 12 and len(secret) >= 43
    rows = stored_key_rows(store)
    assert secret not in rows and token not in rows
    assert hashlib.sha256(secret.encode()).hexdigest() in rows
    if store.url.startswith("sqlite"):
        path = Path(sa.make_url(store.url).database)
        files = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert secret.encode() not in files and key_id.encode() in files


def test_list_keys_shows_no_secret(store):
    token = store.create_key("read", label="dashboard")
    (key,) = store.list_keys()
    assert (key.key_id, key.scope, key.label, key.revoked) == (token.split("_")[1], "read",
                                                                "dashboard", False)
    assert token.split("_", 2)[2] not in repr(key)


@pytest.mark.parametrize(("scope", "allowed"), [
    ("read", {"read"}), ("write", {"read", "write"}), ("admin", {"read", "write", "admin"})])
def test_each_scope_includes_the_weaker_ones(store, scope, allowed):
    token = store.create_key(scope)
    for required in ("read", "write", "admin"):
        if required in allowed:
            assert store.verify_key(token, required).scope == scope
        else:
            with pytest.raises(KeyRefusedError, match=f"has scope {scope}; this needs {required}") \
                    as info:
                store.verify_key(token, required)
            assert info.value.reason == "scope"


def test_a_revoked_key_is_refused_and_others_keep_working(store):
    old, other = store.create_key("admin"), store.create_key("admin")
    key_id = old.split("_")[1]
    revoked = store.revoke_key(key_id)
    assert revoked.revoked and revoked.key_id == key_id
    assert store.revoke_key(key_id).revoked_at == revoked.revoked_at  # first time kept
    with pytest.raises(KeyRefusedError, match="was revoked") as info:
        store.verify_key(old, "read")
    assert info.value.reason == "revoked"
    assert store.verify_key(other, "admin").scope == "admin"
    assert store.has_keys()
    store.revoke_key(other.split("_")[1])
    assert not store.has_keys()


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
    lambda t: "mrk_000000000000_" + t.split("_", 2)[2],  # unknown id
])
def test_a_wrong_secret_or_unknown_id_is_refused(store, mangle):
    token = store.create_key("admin")
    with pytest.raises(KeyRefusedError, match="not recognised") as info:
        store.verify_key(mangle(token), "read")
    assert info.value.reason == "unknown"


@pytest.mark.parametrize("token", ["", "Bearer x", "mrk_abc_def", "xyz_123456789012_s"])
def test_malformed_tokens_are_refused_before_any_lookup(store, token):
    with pytest.raises(KeyRefusedError, match="malformed") as info:
        store.verify_key(token, "read")
    assert info.value.reason == "malformed"


def test_unknown_scopes_and_key_ids_are_named(store):
    with pytest.raises(ValueError, match="scope 'root': expected one of read, write, admin"):
        store.create_key("root")
    with pytest.raises(StoreError, match="API key 'nope' not found"):
        store.revoke_key("nope")
    assert store.list_keys() == []


def test_one_model_version_is_active_and_the_previous_one_retires(store):
    assert store.current_model_version() is None
    store.register_model_version("v0001", "/models/v0001", metrics={"ndcg@10": 0.31})
    store.register_model_version("v0002", "/models/v0002", metrics={"ndcg@10": 0.33})
    store.activate_model_version("v0001")
    store.activate_model_version("v0002", note="retrained on 10 new ratings")
    current = store.current_model_version()
    assert (current.version, current.path, current.metrics) == ("v0002", "/models/v0002",
                                                                 {"ndcg@10": 0.33})
    assert current.note == "retrained on 10 new ratings"
    assert [(v.version, v.status) for v in store.model_versions()] == [
        ("v0001", "retired"), ("v0002", "active")]
    store.activate_model_version("v0001")  # rollback
    assert [v.status for v in store.model_versions()] == ["active", "retired"]


def test_a_rejected_version_records_why_and_leaves_the_active_one(store):
    store.register_model_version("v0001", "/m/v0001")
    store.activate_model_version("v0001")
    store.register_model_version("v0002", "/m/v0002", metrics={"ndcg@10": 0.1})
    store.reject_model_version("v0002", note="NDCG@10 0.10 < 0.31 - 0.01")
    assert store.current_model_version().version == "v0001"
    assert store.model_versions()[1].status == "rejected"
    assert store.model_versions()[1].note == "NDCG@10 0.10 < 0.31 - 0.01"


def test_model_version_errors_are_named(store):
    store.register_model_version("v0001", "/m")
    with pytest.raises(ValueError, match="'v0001' is registered already"):
        store.register_model_version("v0001", "/m")
    with pytest.raises(ValueError, match="metrics of model version 'v2' are not finite JSON"):
        store.register_model_version("v2", "/m", metrics={"rmse": math.nan})
    with pytest.raises(StoreError, match="'v9' is not registered"):
        store.activate_model_version("v9")
    assert [v.version for v in store.model_versions()] == ["v0001"]
