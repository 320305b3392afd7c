"""Field encryption (AES-256-GCM) with rotating key ids, and keyed blind indexes for exact search.

`KEEL_ENCRYPTION_KEYS` holds one or more keys, comma-separated, each `<key id>:<32 bytes in base64>`,
oldest first: the **last** key encrypts, every key decrypts. Add a key by appending it, then run
`keel keys rotate` to re-encrypt old rows; a key may be removed once nothing uses it. In embedded mode
with no variable set, one key (id `local`) is generated once in the data dir.

A ciphertext is `v2:<key id>:<base64url(nonce || ciphertext || tag)>`, with the column and its row
(`<clinic id>/<row id>`) bound in as associated data: a value copied into another column, row or clinic
does not decrypt. Each master key is split with HKDF into an encryption key and a blind-index key, and
the blind-index key is split again per clinic (HMAC of the clinic id), so one phone gives unrelated
indexes in two clinics; a blind index is `v2:<key id>:<base64url(HMAC-SHA256)>` of the normalised value,
and a search matches any live key's index.

Rows written before tenant binding hold `v1:` values (associated data: the column name only) and `v1`
blind indexes (`<key id>:…`, one key for every clinic). Such a value copied into another row or clinic
would still decrypt there, so the API refuses them (read as unreadable, never matched) unless
`KEEL_ACCEPT_V1_CIPHERTEXTS` is set for the upgrade window; `keel keys rotate` (which always reads them)
rewrites them in the v2 format, and `keel migrate` and `/api/ready` count the leads still holding any.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from api.settings import Settings

VERSION = "v2"
LEGACY_VERSION = "v1"
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE_BYTES = 12
KEY_BYTES = 32
LOCAL_KEY_ID = "local"
LOCAL_KEY_FILE = "encryption-key"


class CryptoError(Exception):
    """Base class: the message is safe to show to an operator."""


class EncryptionNotConfigured(CryptoError):
    """No key is available (production mode without KEEL_ENCRYPTION_KEYS)."""


class UnknownKey(CryptoError):
    """A value was written with a key that is no longer configured."""


class DecryptionFailed(CryptoError):
    """A value is corrupt, tampered with, or belongs to another field."""


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError(f"not valid base64: {exc}") from None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"keel/" + purpose).derive(
        master
    )


def normalize_phone(value: str) -> str:
    """Digits only, national part: '+91 98765-43210', '098765 43210' and '9876543210' agree.

    Numbers longer than ten digits keep their last ten (the country code and trunk prefix fall away):
    good enough for an exact-match search and a duplicate *hint*.
    """
    digits = re.sub(r"[^0-9]", "", value)  # ASCII digits, as the documented patterns count them
    return digits[-10:] if len(digits) > 10 else digits.lstrip("0") or digits


@dataclass(frozen=True)
class _Key:
    key_id: str
    aead: AESGCM = field(repr=False)
    index_key: bytes = field(repr=False)


class Keyring:
    """The configured keys: the newest encrypts, all decrypt and all blind-index searches. `accept_v1`:
    whether legacy v1 values (not bound to their clinic and row) decrypt and v1 blind indexes match."""

    def __init__(self, keys: Iterable[tuple[str, bytes]], *, accept_v1: bool = True) -> None:
        self.accept_v1 = accept_v1
        self._entries = [(key_id, bytes(master)) for key_id, master in keys]
        self._keys: dict[str, _Key] = {}
        for key_id, master in self._entries:
            if not KEY_ID_RE.match(key_id):
                raise CryptoError(f"key id {key_id!r} must be 1-32 of A-Z a-z 0-9 _ -")
            if len(master) != KEY_BYTES:
                raise CryptoError(f"key {key_id!r} must be {KEY_BYTES} bytes, got {len(master)}")
            if key_id in self._keys:
                raise CryptoError(f"key id {key_id!r} appears twice")
            self._keys[key_id] = _Key(
                key_id, AESGCM(_derive(master, b"aes-256-gcm")), _derive(master, b"blind-index")
            )
        if not self._keys:
            raise CryptoError("no encryption key given")
        self.current_id = next(reversed(self._keys))

    def __reduce__(self) -> tuple[type[Keyring], tuple[list[tuple[str, bytes]]], dict[str, bool]]:
        """Picklable, so import workers in other processes get the same keys (and the same v1 rule)."""
        return (Keyring, (self._entries,), {"accept_v1": self.accept_v1})

    def with_v1(self) -> Keyring:
        """The same keys, reading v1 values too (`keel keys rotate` rewrites them)."""
        return Keyring(self._entries, accept_v1=True)

    @classmethod
    def parse(cls, spec: str, *, accept_v1: bool = True) -> Keyring:
        """Keys from `id:base64,id:base64` (the KEEL_ENCRYPTION_KEYS format)."""
        entries = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep:
                raise CryptoError(f"key entry {key_id[:8]!r}… must look like <key id>:<base64 key>")
            try:
                entries.append((key_id.strip(), _b64decode(encoded)))
            except CryptoError as exc:
                raise CryptoError(f"key {key_id.strip()!r}: {exc}") from None
        return cls(entries, accept_v1=accept_v1)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def _key(self, key_id: str) -> _Key:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKey(
                f"a value is encrypted with key {key_id!r}, which is not in KEEL_ENCRYPTION_KEYS "
                f"(configured: {', '.join(self._keys)})"
            ) from None

    def encrypt(self, plaintext: str, field_name: str, row: str) -> str:
        """Seal plaintext for one column (`field_name`) of one row (`row`: "<tenant id>/<row id>")."""
        key = self._keys[self.current_id]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), _associated(field_name, row))
        return f"{VERSION}:{key.key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, field_name: str, row: str) -> str:
        """The plaintext of a value of this column and row (v2), or of this column (legacy v1)."""
        version, _, rest = token.partition(":")
        key_id, _, payload = rest.partition(":")
        if version not in (VERSION, LEGACY_VERSION) or not payload:
            raise DecryptionFailed(f"{field_name}: not a {VERSION} ciphertext")
        if version == LEGACY_VERSION and not self.accept_v1:
            raise DecryptionFailed(
                f"{field_name}: a v1 ciphertext (not bound to its clinic and row) is refused; "
                "run `keel keys rotate`"
            )
        key = self._key(key_id)
        associated = _associated(field_name, row) if version == VERSION else field_name.encode("utf-8")
        try:
            raw = _b64decode(payload)
            return key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated).decode("utf-8")
        except (InvalidTag, CryptoError, UnicodeDecodeError) as exc:
            raise DecryptionFailed(
                f"{field_name}: ciphertext does not verify under key {key_id!r} for this row"
            ) from exc

    @staticmethod
    def is_current_format(token: str) -> bool:
        return token.startswith(VERSION + ":")

    @staticmethod
    def key_id_of(token: str) -> str:
        return token.split(":", 2)[1] if token.count(":") >= 2 else ""

    def _index(self, key: _Key, normalized: str, tenant: str) -> str:
        tenant_key = hmac.new(key.index_key, b"tenant\x00" + tenant.encode("utf-8"), hashlib.sha256).digest()
        digest = hmac.new(tenant_key, normalized.encode("utf-8"), hashlib.sha256).digest()
        return f"{VERSION}:{key.key_id}:{_b64encode(digest)}"

    @staticmethod
    def _legacy_index(key: _Key, normalized: str) -> str:
        digest = hmac.new(key.index_key, normalized.encode("utf-8"), hashlib.sha256).digest()
        return f"{key.key_id}:{_b64encode(digest)}"

    def digest(self, value: str) -> str:
        """A keyed hash (current key) for fingerprints of requests that carry sensitive values."""
        key = self._keys[self.current_id]
        return hmac.new(key.index_key, b"digest\x00" + value.encode("utf-8"), hashlib.sha256).hexdigest()

    def phone_index(self, phone: str, tenant: str) -> str:
        """The blind index of a phone in one tenant (clinic id) under the current key (what is stored)."""
        return self._index(self._keys[self.current_id], normalize_phone(phone), tenant)

    def phone_matches(self, phone: str, tenant: str) -> list[str]:
        """The blind indexes of a phone in one tenant under every key, and (while v1 is accepted) the
        legacy untenanted ones of rows not yet rotated: what a search compares with."""
        normalized = normalize_phone(phone)
        keys = list(self._keys.values())
        legacy = [self._legacy_index(key, normalized) for key in keys] if self.accept_v1 else []
        return [self._index(key, normalized, tenant) for key in keys] + legacy


def _associated(field_name: str, row: str) -> bytes:
    return f"{field_name}\x00{row}".encode()


def generate_key_entry(key_id: str) -> str:
    """A new `id:base64` entry to append to KEEL_ENCRYPTION_KEYS."""
    if not KEY_ID_RE.match(key_id):
        raise CryptoError(f"key id {key_id!r} must be 1-32 of A-Z a-z 0-9 _ -")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


@lru_cache(maxsize=16)
def _keyring(spec: str | None, embedded: bool, data_dir: Path, accept_v1: bool) -> Keyring:
    if spec:
        return Keyring.parse(spec, accept_v1=accept_v1)
    if not embedded:
        raise EncryptionNotConfigured(
            "lead fields are encrypted but no key is configured: set KEEL_ENCRYPTION_KEYS "
            "(e.g. the output of `keel keys generate k1`)"
        )
    path = data_dir / LOCAL_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii"))
    return Keyring([(LOCAL_KEY_ID, _b64decode(path.read_text()))], accept_v1=accept_v1)


def keyring_for(settings: Settings) -> Keyring:
    """The keyring for these settings (parsed once). Raises EncryptionNotConfigured or CryptoError."""
    return _keyring(
        settings.encryption_keys, settings.embedded, settings.data_dir, settings.accept_v1_ciphertexts
    )
