"""Pseudonymous links between DICOM series of one patient: a keyed hash of the patient ID, never the ID."""

from __future__ import annotations

import hashlib
import hmac
import re

# IDs that anonymisers and test scanners write for "no patient": linking on them would make one
# subject of many people, so they never link.
PLACEHOLDER_IDS = frozenset(
    {
        "",
        "ANON",
        "ANONYMOUS",
        "ANONYMIZED",
        "ANONYMISED",
        "DELETED",
        "DUMMY",
        "ID",
        "NA",
        "N/A",
        "NONE",
        "NULL",
        "PATIENT",
        "PATIENTID",
        "PATIENT_ID",
        "REMOVED",
        "TEST",
        "UNKNOWN",
    }
)
_ONE_REPEATED_CHARACTER = re.compile(r"(.)\1*")  # "0", "0000", "XXXX", "-", "****"


def is_placeholder_patient_id(patient_id: str) -> bool:
    normalised = patient_id.strip().upper()
    return (
        normalised in PLACEHOLDER_IDS
        or normalised.startswith("ANONYM")
        or _ONE_REPEATED_CHARACTER.fullmatch(normalised) is not None
    )


def patient_key(patient_id: str, issuer: str = "", *, secret: bytes) -> str | None:
    """HMAC-SHA256 (hex) of the issuer and patient ID under ``secret``; None for a placeholder ID.

    Keyed, not a plain hash: patient IDs are short and guessable, so without the key nobody can
    test a candidate ID against the stored value. The issuer (IssuerOfPatientID) keeps two
    hospitals' equal numbers apart."""
    if is_placeholder_patient_id(patient_id):
        return None
    message = f"{issuer.strip()}\x1f{patient_id.strip()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
