"""API key tokens: generation, hashing and scopes. Only the hash of a secret is ever stored.

A token reads `mrk_<key_id>_<secret>`: the key id is public (it is listed and revoked by it), the
secret is 32 random bytes. 256 random bits make a plain SHA-256 as safe as a slow password hash
(nothing to brute-force), and let a request be checked in microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCOPES = ("read", "write", "admin")  # each grants everything the ones before it grant
PREFIX = "mrk"


class KeyRefusedError(PermissionError):
    """A key was refused. `reason`: "malformed", "unknown", "revoked" or "scope".

    "scope" means the key is valid but too weak (HTTP 403); the others mean no valid key (401).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ApiKey:
    """One API key as listed: never the secret."""

    key_id: str
    scope: str
    label: str
    created_at: float
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        """True once the key was revoked."""
        return self.revoked_at is not None


def check_scope(scope: str) -> str:
    """`scope` if it is one of read, write, admin; else ValueError naming it."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
    return scope


def grants(scope: str, required: str) -> bool:
    """True when a key of `scope` may do what needs `required` (admin ⊇ write ⊇ read)."""
    return SCOPES.index(check_scope(scope)) >= SCOPES.index(check_scope(required))


def new_token() -> tuple[str, str, str]:
    """A fresh (key_id, secret, token); the token is what the user keeps."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{PREFIX}_{key_id}_{secret}"


def split_token(token: str) -> tuple[str, str]:
    """(key_id, secret) of a token; KeyRefusedError("malformed") for anything else."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12 or not parts[2]:
        raise KeyRefusedError("malformed", f"API key is malformed: expected {PREFIX}_<id>_<secret>")
    return parts[1], parts[2]


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(stored: str, secret: str) -> bool:
    """Constant-time comparison of a stored hash with a presented secret's hash."""
    return hmac.compare_digest(stored.encode(), hash_secret(secret).encode())
