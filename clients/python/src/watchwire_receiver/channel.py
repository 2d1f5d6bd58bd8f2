"""The subscriber's record of a channel, and the one call that turns a request into a trusted
notification."""

from __future__ import annotations

import hmac
import json
import math
import re
from datetime import datetime
from typing import Any, Dict, Mapping, Optional, Union

from . import headers as h
from ._clock import Now, to_datetime, to_ms
from ._httpdate import MAX_MS, MIN_MS
from ._text import I64_MAX, U64_MAX, quote, trim
from .errors import ChannelError, NotificationError
from .headers import Headers, Picked
from .notification import Notification, from_picked
from .signature import (
    DEFAULT_SIGNATURE_TOLERANCE,
    Body,
    SigningSecret,
    Tolerance,
    body_bytes,
    tolerance_secs,
    verify_picked,
)

_I64_MIN = -(1 << 63)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT_CHARS = frozenset("0123456789+-.eE")


def _float_ms(value: float) -> Optional[int]:
    # 2^63 itself does not fit; hence the strict bound.
    if math.isfinite(value) and -(2.0**63) <= value < 2.0**63:
        return int(value)
    return None


def parse_expiration(value: Any) -> int:
    """Milliseconds since the epoch from a watch response's `expiration`: a JSON string or
    number (Google's format is a string; Python's client sends `1893456000000.0`).
    `ValueError` when it is neither or does not fit a signed 64-bit integer."""
    too_big = "expiration does not fit a signed 64-bit number of milliseconds"
    if isinstance(value, str):
        text = trim(value)
        if _INTEGER.fullmatch(text):
            digits = text.lstrip("+-").lstrip("0") or "0"
            if len(digits) <= 19:
                number = int(digits) * (-1 if text.startswith("-") else 1)
                if _I64_MIN <= number <= I64_MAX:
                    return number
        if text and all(c in _FLOAT_CHARS for c in text):
            try:
                number_f = float(text)
            except ValueError:
                number_f = math.nan
            if math.isfinite(number_f):
                ms = _float_ms(number_f)
                if ms is None:
                    raise ValueError(too_big)
                return ms
        raise ValueError(
            f"expiration {quote(value)} is not a number of milliseconds since the Unix epoch"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if _I64_MIN <= value <= I64_MAX:
            return value
        if 0 <= value <= U64_MAX:
            raise ValueError(too_big)
        try:
            as_float = float(value)
        except OverflowError:
            raise ValueError(too_big) from None
        ms = _float_ms(as_float)
        if ms is None:
            raise ValueError(too_big)
        return ms
    if isinstance(value, float):
        ms = _float_ms(value)
        if ms is None:
            raise ValueError(too_big)
        return ms
    raise ValueError(
        "expiration must be a number of milliseconds since the Unix epoch, as a string or a number"
    )


def _expiration_ms(expiration: Union[None, int, datetime]) -> Optional[int]:
    if expiration is None:
        return None
    ms = to_ms(expiration)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"{ms} ms is out of range")
    return ms


class Channel:
    """A watch channel as its subscriber keeps it: what to send in the watch request, and
    what every notification on it must match.

    Fields left `None` are not checked: a channel without a token accepts any token, and
    the resource id is only compared once known (the sync message may arrive before the
    watch response that carries it). `expiration_ms` is in milliseconds since the epoch
    (the `expiration` argument may also be an aware `datetime`), `params` are extra
    string `params` of the watch body (such as `ttl`), and `signature_tolerance` is in
    seconds (or a `timedelta`)."""

    def __init__(
        self,
        id: str,
        *,
        token: Optional[str] = None,
        address: Optional[str] = None,
        resource_id: Optional[str] = None,
        resource_uri: Optional[str] = None,
        expiration: Union[None, int, datetime] = None,
        params: Optional[Mapping[str, str]] = None,
        signing_secret: Optional[str] = None,
        signature_tolerance: Tolerance = DEFAULT_SIGNATURE_TOLERANCE,
    ) -> None:
        self.id = id
        self.token = token
        #: Where notifications are sent; needed only to build a watch body.
        self.address = address
        self.resource_id = resource_id
        self.resource_uri = resource_uri
        self.expiration_ms = _expiration_ms(expiration)
        self.params: Dict[str, str] = dict(params or {})
        self.signature_tolerance = signature_tolerance
        self._secret_text: Optional[str] = None
        self._secret: Optional[SigningSecret] = None
        self.set_signing_secret(signing_secret)

    @classmethod
    def webhook(cls, id: str, address: str, **options: Any) -> Channel:
        """A web-hook channel to be created at `address` (like `channel.py`'s
        `new_webhook_channel`); `options` as for `Channel(...)`."""
        return cls(id, address=address, **options)

    def __repr__(self) -> str:
        return (
            f"Channel(id={self.id!r}, token={'<redacted>' if self.token is not None else None}, "
            f"address={self.address!r}, resource_id={self.resource_id!r}, "
            f"resource_uri={self.resource_uri!r}, expiration_ms={self.expiration_ms!r}, "
            f"params={self.params!r}, signature_tolerance={self.signature_tolerance!r}, "
            f"signing_secret={'<redacted>' if self._secret is not None else None})"
        )

    @property
    def signature_tolerance(self) -> Tolerance:
        return self._tolerance

    @signature_tolerance.setter
    def signature_tolerance(self, value: Tolerance) -> None:
        tolerance_secs(value)  # refuses what is not a tolerance, now rather than per request
        self._tolerance = value

    @property
    def expiration(self) -> Optional[datetime]:
        """`expiration_ms` as an aware UTC `datetime`, or `None`."""
        return None if self.expiration_ms is None else to_datetime(self.expiration_ms)

    @property
    def signing_secret(self) -> Optional[SigningSecret]:
        return self._secret

    def set_signing_secret(self, secret: Optional[str]) -> None:
        """Sets (or with `None` clears) the `whsec_...` secret notifications must be signed
        with (docs/api.md §10.3). With one, every notification must carry a valid
        signature. Raises `ChannelError` for a malformed secret, changing nothing."""
        if secret is None:
            self._secret_text, self._secret = None, None
            return
        try:
            key = SigningSecret.parse(secret)
        except ValueError as e:
            raise ChannelError(f"invalid signing secret: {e}") from None
        self._secret_text, self._secret = secret, key

    def is_expired_at(self, now: Now = None) -> bool:
        """Whether the channel's known expiration has passed at `now`."""
        return self.expiration_ms is not None and to_ms(now) > self.expiration_ms

    def body(self) -> Dict[str, Any]:
        """The JSON body of a watch request for this channel (like `channel.py`'s `body()`):
        `id`, `type`, and whichever of `address`, `token`, `expiration` (ms as a string),
        `resourceId`, `resourceUri`, `params` (with `signingSecret`) are set."""
        body: Dict[str, Any] = {"id": self.id, "type": "web_hook"}
        optional = (
            ("address", self.address),
            ("token", self.token),
            ("expiration", None if self.expiration_ms is None else str(self.expiration_ms)),
            ("resourceId", self.resource_id),
            ("resourceUri", self.resource_uri),
        )
        for name, value in optional:
            if value is not None:
                body[name] = value
        params = {key: self.params[key] for key in sorted(self.params)}
        if self._secret_text is not None:
            params["signingSecret"] = self._secret_text
        if params:
            body["params"] = params
        return body

    def update(self, response: Union[Mapping[str, Any], str, bytes]) -> None:
        """Takes what the gateway assigned from a watch response (a parsed JSON object, or
        its text): `id`, `token`, `address`, `resourceId`, `resourceUri` and `expiration`
        (ms since the epoch as a string or a number). Absent and `null` fields leave the
        channel as it was. Raises `ChannelError`; on error nothing changes."""
        if isinstance(response, (str, bytes, bytearray)):
            try:
                response = json.loads(response)
            except ValueError:
                raise ChannelError("watch response is not a JSON object") from None
        if not isinstance(response, Mapping):
            raise ChannelError("watch response is not a JSON object")
        fields = response

        def text(name: str) -> Optional[str]:
            value = fields.get(name)
            if value is None:
                return None
            if not isinstance(value, str):
                raise ChannelError(f"watch response field {quote(name)}: must be a string", name)
            return value

        id = text("id")
        token = text("token")
        address = text("address")
        resource_id = text("resourceId")
        resource_uri = text("resourceUri")
        expiration = None
        if fields.get("expiration") is not None:
            try:
                expiration = parse_expiration(fields["expiration"])
                if not MIN_MS <= expiration <= MAX_MS:
                    raise ValueError(f"{expiration} ms is out of range")
            except ValueError as e:
                raise ChannelError(f'watch response field "expiration": {e}', "expiration") from None

        if id is not None:
            self.id = id
        if token is not None:
            self.token = token
        if address is not None:
            self.address = address
        if resource_id is not None:
            self.resource_id = resource_id
        if resource_uri is not None:
            self.resource_uri = resource_uri
        if expiration is not None:
            self.expiration_ms = expiration

    def receive(self, headers: Headers, body: Body, now: Now = None) -> Notification:
        """Validates a request (headers in any letter case and repeats kept, and the raw
        body bytes) as a notification on this channel at `now` (an aware `datetime` or ms
        since the epoch; the current time when `None`), in this order: the headers parse
        (`Notification.from_headers`); the channel id is this one; the token matches when
        the channel has one (constant time); the resource id matches when known; neither
        the notification's nor the channel's expiration has passed; and, when the channel
        has a signing secret, the signature verifies within the tolerance and its
        `webhook-id` is `<channel id>-<message number>`.

        Returns the `Notification`; raises `NotificationError` (or its subclass
        `SignatureError`) with the reason."""
        picked = Picked(h.NOTIFICATION_HEADERS, headers)
        notification = from_picked(picked)
        self._verify(picked, notification, body, to_ms(now))
        return notification

    def _verify(self, picked: Picked, notification: Notification, body: Body, now_ms: int) -> None:
        self._check(notification, now_ms)
        if self._secret is not None:
            webhook_id = verify_picked(
                self._secret, picked, body_bytes(body), now_ms, tolerance_secs(self._tolerance)
            )
            expected = f"{notification.channel_id}-{notification.message_number}"
            if webhook_id != expected:
                raise NotificationError.webhook_id_mismatch(expected, webhook_id)

    def _check(self, notification: Notification, now_ms: int) -> None:
        if notification.channel_id != self.id:
            raise NotificationError.channel_id_mismatch(self.id, notification.channel_id)
        if self.token is not None:
            if notification.token is None:
                raise NotificationError.missing_header(h.CHANNEL_TOKEN)
            received = notification.token.encode("utf-8", "surrogatepass")
            if not hmac.compare_digest(received, self.token.encode("utf-8", "surrogatepass")):
                raise NotificationError.token_mismatch()
        if self.resource_id is not None and notification.resource_id != self.resource_id:
            raise NotificationError.resource_id_mismatch(self.resource_id, notification.resource_id)
        expirations = [
            e for e in (notification.channel_expiration_ms, self.expiration_ms) if e is not None
        ]
        if expirations and now_ms > min(expirations):
            raise NotificationError.channel_expired(min(expirations))
