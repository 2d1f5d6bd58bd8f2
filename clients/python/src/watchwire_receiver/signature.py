"""Standard Webhooks signatures (docs/api.md §10.3): `webhook-signature: v1,<base64 HMAC-SHA256
of "{webhook-id}.{webhook-timestamp}.{body}">`, several space-separated during a key
rotation, keyed by a `whsec_<base64>` secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import timedelta
from typing import Optional, Union

from . import headers as h
from ._clock import Now, to_ms
from ._text import I64_MAX, parse_decimal
from .errors import SignatureError
from .headers import Headers, Picked

#: How far `webhook-timestamp` may be from the receiver's clock, either way, in seconds.
DEFAULT_SIGNATURE_TOLERANCE = 300

SECRET_PREFIX = "whsec_"

Body = Union[bytes, bytearray, memoryview, str]
Tolerance = Union[int, float, timedelta]


def _canonical_base64(text: str) -> Optional[bytes]:
    """Standard base64 with padding, nothing else: no blanks, no missing padding, no stray
    bits in the last character (so one value has exactly one spelling, as in the Rust
    library)."""
    try:
        raw = text.encode("ascii")
        decoded = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    return decoded if base64.b64encode(decoded) == raw else None


def body_bytes(body: Body) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def tolerance_secs(tolerance: Tolerance) -> int:
    """Whole seconds of a tolerance (the fraction is dropped, as Rust's `as_secs` does)."""
    seconds = tolerance.total_seconds() if isinstance(tolerance, timedelta) else tolerance
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError("a signature tolerance is a number of seconds, at least 0")
    return int(seconds)


class SigningSecret:
    """A decoded signing key. Its `repr` never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not 24 <= len(key) <= 64:
            raise ValueError(
                f"a signing secret must hold 24 to 64 bytes; this one holds {len(key)}"
            )
        self._key = bytes(key)

    @classmethod
    def parse(cls, text: str) -> SigningSecret:
        """Parses `whsec_<base64 of 24 to 64 bytes>`; `ValueError` otherwise."""
        if not isinstance(text, str) or not text.startswith(SECRET_PREFIX):
            raise ValueError('a signing secret must start with "whsec_"')
        key = _canonical_base64(text[len(SECRET_PREFIX) :])
        if key is None:
            raise ValueError('a signing secret must be "whsec_" followed by base64')
        return cls(key)

    def __repr__(self) -> str:
        return "SigningSecret(<redacted>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningSecret) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._key).digest())

    def _mac(self, msg_id: str, timestamp: int, body: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mac.update(msg_id.encode("utf-8"))
        mac.update(b".")
        mac.update(str(timestamp).encode("ascii"))
        mac.update(b".")
        mac.update(body)
        return mac.digest()

    def sign(self, msg_id: str, timestamp: int, body: Body) -> str:
        """The `v1,<base64>` signature of one message."""
        mac = self._mac(msg_id, timestamp, body_bytes(body))
        return "v1," + base64.b64encode(mac).decode("ascii")

    def verify(self, msg_id: str, timestamp: int, body: Body, header: str) -> bool:
        """Whether any `v1,` entry of a space-separated `webhook-signature` value matches,
        each compared in constant time (all of them, whatever the first ones gave)."""
        expected = self._mac(msg_id, timestamp, body_bytes(body))
        found = False
        for entry in header.split(" "):
            if not entry.startswith("v1,"):
                continue
            candidate = _canonical_base64(entry[3:])
            if candidate is not None:
                found |= hmac.compare_digest(candidate, expected)
        return found


def _required(picked: Picked, name: str) -> str:
    value, problem = picked.text(name)
    if problem is not None:
        raise SignatureError.malformed(name, problem)
    if value is None:
        raise SignatureError.missing(name)
    return value


def verify_picked(
    secret: SigningSecret, picked: Picked, body: bytes, now_ms: int, tolerance: int
) -> str:
    msg_id = _required(picked, h.WEBHOOK_ID)
    timestamp_text = _required(picked, h.WEBHOOK_TIMESTAMP)
    signatures = _required(picked, h.WEBHOOK_SIGNATURE)
    timestamp = parse_decimal(timestamp_text, I64_MAX)
    if timestamp is None:
        raise SignatureError.malformed(
            h.WEBHOOK_TIMESTAMP, "is not a number of seconds since the Unix epoch"
        )
    now_secs = now_ms // 1000
    age = now_secs - timestamp
    if age > tolerance:
        raise SignatureError.too_old(timestamp, now_secs, tolerance)
    if -age > tolerance:
        raise SignatureError.in_future(timestamp, now_secs, tolerance)
    if not secret.verify(msg_id, timestamp, body, signatures):
        raise SignatureError.mismatch()
    return msg_id


def verify_signature(
    secret: Union[SigningSecret, str],
    headers: Headers,
    body: Body,
    now: Now = None,
    tolerance: Tolerance = DEFAULT_SIGNATURE_TOLERANCE,
) -> str:
    """Checks that `webhook-signature` holds a `v1,` HMAC-SHA256 of
    `webhook-id.webhook-timestamp.body` under `secret` (any one of several space-separated
    entries, as during a key rotation), and that `webhook-timestamp` is within
    `tolerance` seconds of `now` (an aware `datetime` or milliseconds since the epoch;
    the current time when `None`). Header names are matched in any letter case.

    Returns the verified `webhook-id`; raises `SignatureError` otherwise. Works for any
    Standard Webhooks sender, not only watchwire."""
    key = SigningSecret.parse(secret) if isinstance(secret, str) else secret
    picked = Picked(h.SIGNATURE_HEADERS, headers)
    return verify_picked(key, picked, body_bytes(body), to_ms(now), tolerance_secs(tolerance))
