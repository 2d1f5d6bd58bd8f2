"""The receiver's errors. Every failure has a stable camelCase `reason` (the same codes as the
Rust library's `NotificationError::reason()` and the vectors in `fixtures/notifications`)
and the lower-case `header` it is about, or `None`."""

from __future__ import annotations

from typing import Any, Optional

from . import headers as h
from ._text import quote

#: Every reason a notification can be rejected for, in the order of docs/api.md §11.
REASONS = (
    "missingHeader",
    "malformedHeader",
    "invalidMessageNumber",
    "unknownState",
    "channelIdMismatch",
    "tokenMismatch",
    "resourceIdMismatch",
    "channelExpired",
    "webhookIdMismatch",
    "missingSignatureHeader",
    "malformedSignatureHeader",
    "signatureTimestampTooOld",
    "signatureTimestampInFuture",
    "signatureMismatch",
)


class NotificationError(Exception):
    """Why a request is not a valid notification for a channel.

    `reason` is the stable code, `header` the header the failure is about (`None` for
    `channelExpired`), `details` what the Rust variant carries (`expected`, `received`,
    `value`, `expiration_ms`, `timestamp`, `now`, `tolerance_secs`), and `str(error)` a
    sentence for logs. Tokens and secrets never appear in any of them."""

    def __init__(self, reason: str, header: Optional[str], message: str, **details: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.header = header
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, header={self.header!r}, message={self.message!r})"

    @classmethod
    def missing_header(cls, header: str) -> NotificationError:
        return cls("missingHeader", header, f"header {header} is missing")

    @classmethod
    def malformed_header(cls, header: str, reason: str) -> NotificationError:
        return cls("malformedHeader", header, f"header {header} {reason}")

    @classmethod
    def invalid_message_number(cls, value: str) -> NotificationError:
        return cls(
            "invalidMessageNumber",
            h.MESSAGE_NUMBER,
            f"message number {quote(value)} is not a positive decimal integer",
            value=value,
        )

    @classmethod
    def unknown_state(cls, value: str) -> NotificationError:
        return cls(
            "unknownState",
            h.RESOURCE_STATE,
            f"resource state {quote(value)} is not a known state",
            value=value,
        )

    @classmethod
    def channel_id_mismatch(cls, expected: Optional[str], received: str) -> NotificationError:
        if expected is None:
            message = f"notification is for channel {quote(received)}, which is not known here"
        else:
            message = f"notification is for channel {quote(received)}, not {quote(expected)}"
        return cls("channelIdMismatch", h.CHANNEL_ID, message, expected=expected, received=received)

    @classmethod
    def token_mismatch(cls) -> NotificationError:
        return cls("tokenMismatch", h.CHANNEL_TOKEN, "channel token does not match")

    @classmethod
    def resource_id_mismatch(cls, expected: str, received: str) -> NotificationError:
        return cls(
            "resourceIdMismatch",
            h.RESOURCE_ID,
            f"notification is for resource id {quote(received)}, not {quote(expected)}",
            expected=expected,
            received=received,
        )

    @classmethod
    def channel_expired(cls, expiration_ms: int) -> NotificationError:
        from ._httpdate import format_utc

        return cls(
            "channelExpired",
            None,
            f"channel expired at {format_utc(expiration_ms)}",
            expiration_ms=expiration_ms,
        )

    @classmethod
    def webhook_id_mismatch(cls, expected: str, received: str) -> NotificationError:
        return cls(
            "webhookIdMismatch",
            h.WEBHOOK_ID,
            f"webhook-id {quote(received)} does not name this notification ({quote(expected)})",
            expected=expected,
            received=received,
        )


class SignatureError(NotificationError):
    """Why Standard Webhooks signature headers do not authenticate a body (docs/api.md §10).
    A `NotificationError` too, so one `except NotificationError` catches every failure."""

    @classmethod
    def missing(cls, header: str) -> SignatureError:
        return cls("missingSignatureHeader", header, f"signature header {header} is missing")

    @classmethod
    def malformed(cls, header: str, reason: str) -> SignatureError:
        return cls("malformedSignatureHeader", header, f"signature header {header} {reason}")

    @classmethod
    def too_old(cls, timestamp: int, now: int, tolerance_secs: int) -> SignatureError:
        return cls(
            "signatureTimestampTooOld",
            h.WEBHOOK_TIMESTAMP,
            f"webhook-timestamp {timestamp} is more than {tolerance_secs} s before now ({now})",
            timestamp=timestamp,
            now=now,
            tolerance_secs=tolerance_secs,
        )

    @classmethod
    def in_future(cls, timestamp: int, now: int, tolerance_secs: int) -> SignatureError:
        return cls(
            "signatureTimestampInFuture",
            h.WEBHOOK_TIMESTAMP,
            f"webhook-timestamp {timestamp} is more than {tolerance_secs} s after now ({now})",
            timestamp=timestamp,
            now=now,
            tolerance_secs=tolerance_secs,
        )

    @classmethod
    def mismatch(cls) -> SignatureError:
        return cls(
            "signatureMismatch",
            h.WEBHOOK_SIGNATURE,
            "no signature in webhook-signature matches the body",
        )


class ChannelError(ValueError):
    """A `Channel` could not be configured or updated from a watch response. `field` names
    the watch response's field at fault, when there is one."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field
