"""Station credentials for security profiles 1 and 2 (HTTP Basic; OCPP 2.0.1 A00.FR.2xx).

Passwords are 16-40 characters (``SecurityCtrlr.BasicAuthPassword``), stored as salted
PBKDF2-SHA256 (``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``). Station passwords are
machine-generated, so the iteration count is modest by default (configurable) to keep a
reconnect storm of thousands of stations cheap; successful checks are remembered in memory as
a keyed BLAKE2 digest so a reconnect costs one fast hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string

MIN_LEN, MAX_LEN = 16, 40
_PEPPER = secrets.token_bytes(32)  # per process: cache keys are useless outside it


class CredentialError(ValueError):
    pass


def check_password_rules(password: str) -> None:
    if not MIN_LEN <= len(password) <= MAX_LEN:
        raise CredentialError(f"password must be {MIN_LEN}-{MAX_LEN} characters (got {len(password)})")


def generate_password(length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def hash_password(password: str, iterations: int = 1_000) -> str:
    check_password_rules(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt_hex, digest_hex = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt_hex), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Decode an ``Authorization: Basic ...`` header into (username, password)."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class VerifiedCache:
    """Remembers (station, password) pairs that verified, keyed with a process secret."""

    __slots__ = ("_ok",)

    def __init__(self) -> None:
        self._ok: dict[str, tuple[bytes, str]] = {}

    @staticmethod
    def _key(password: str) -> bytes:
        return hashlib.blake2b(password.encode(), key=_PEPPER, digest_size=16).digest()

    def hit(self, station_id: str, password: str, stored_hash: str) -> bool:
        entry = self._ok.get(station_id)
        return entry is not None and entry[1] == stored_hash and hmac.compare_digest(entry[0], self._key(password))

    def remember(self, station_id: str, password: str, stored_hash: str) -> None:
        self._ok[station_id] = (self._key(password), stored_hash)

    def forget(self, station_id: str) -> None:
        self._ok.pop(station_id, None)
