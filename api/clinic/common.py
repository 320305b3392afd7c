"""What every clinic handler shares: the clinic-scoped caller, the keyring, lead decryption."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from api.auth import Principal
from api.clinic.schemas import LEAD_ENCRYPTED_FIELDS
from api.crypto import CryptoError, DecryptionFailed, EncryptionNotConfigured, Keyring, keyring_for
from api.errors import Problem
from api.settings import Settings

log = logging.getLogger(__name__)


def require_clinic(principal: Principal) -> UUID:
    """The token's clinic; 403 when the token carries none (e.g. a CallMaster token)."""
    raw = principal.clinic_id
    try:
        return UUID(raw) if raw else _no_clinic()
    except ValueError:
        return _no_clinic()


def _no_clinic() -> UUID:
    raise Problem(403, "This token carries no valid clinic_id claim.", code="42501")


def require_admin(principal: Principal, action: str = "change staff") -> None:
    """403 unless the token is a clinic admin's: "Only a clinic admin may <action>." """
    require_clinic(principal)
    if principal.role != "admin":
        raise Problem(403, f"Only a clinic admin may {action}.", code="42501")


def keyring(settings: Settings) -> Keyring:
    """The field-encryption keys; 503 with what to set when none are configured."""
    try:
        return keyring_for(settings)
    except EncryptionNotConfigured as exc:
        raise Problem(503, str(exc), code="encryption_not_configured") from exc
    except CryptoError as exc:
        raise Problem(
            503, f"KEEL_ENCRYPTION_KEYS is invalid: {exc}", code="encryption_not_configured"
        ) from exc


def lead_field(name: str) -> str:
    """Associated data binding a ciphertext to its column."""
    return f"clinic.leads.{name}"


def lead_row(clinic_id: Any, lead_id: Any) -> str:
    """Associated data binding a ciphertext to its row, and the blind index's tenant."""
    return f"{clinic_id}/{lead_id}"


def encrypt_lead_fields(ring: Keyring, data: dict[str, Any], clinic_id: Any, lead_id: Any) -> dict[str, Any]:
    """Replace clear encrypted fields by ciphertext bound to this lead of this clinic (None stays None);
    add the phone's blind index (the clinic's own)."""
    out = dict(data)
    row = lead_row(clinic_id, lead_id)
    for name in LEAD_ENCRYPTED_FIELDS:
        value = out.get(name)
        if value is not None:
            out[name] = ring.encrypt(value.strip(), lead_field(name), row)
    if data.get("phone") is not None:
        out["phone_bidx"] = ring.phone_index(data["phone"], str(clinic_id))
    return out


def decrypt_lead(ring: Keyring, lead: dict[str, Any]) -> dict[str, Any]:
    """The lead with its fields in clear. A value that does not verify for this row (corrupt, or copied
    from another row, column or clinic) is answered as null and named in `unreadable_fields`, so one bad
    value neither hides the rest nor breaks a list; a value under a key no longer configured is a 503."""
    out = dict(lead)
    row = lead_row(lead.get("clinic_id"), lead.get("id"))
    unreadable = []
    try:
        for name in LEAD_ENCRYPTED_FIELDS:
            if out.get(name) is not None:
                try:
                    out[name] = ring.decrypt(out[name], lead_field(name), row)
                except DecryptionFailed:
                    out[name] = None
                    unreadable.append(name)
    except CryptoError as exc:
        raise Problem(503, f"A stored lead cannot be decrypted: {exc}", code="decryption_failed") from exc
    if unreadable:
        log.warning("lead %s: %s do not verify for this row; answered as null", lead.get("id"), unreadable)
        out["unreadable_fields"] = unreadable
    return out
