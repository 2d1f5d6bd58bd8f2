"""A whole receiving endpoint without a framework: checks a request against its channel, tracks
it, and says what to answer, as `watchwire receive` does (docs/api.md §11, §12.3).

- A valid notification is answered `204`, also when the tracker flags it as a duplicate,
  out of order or after a gap (the gateway must not send it again).
- An invalid one is answered `400` with the error envelope naming the reason (the gateway
  then fails that notification for good and moves on; its delivery log shows why).
- Any method but `POST` is answered `405`.

The framework adapters (`watchwire_receiver.starlette`, `.flask`, `.django`,
`.http_server`) turn their request into `(method, headers, body)` and a `Receipt` into
their response.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

from . import headers as h
from ._clock import Clock, Now, now_ms, to_ms
from .channel import Channel
from .errors import NotificationError
from .headers import Headers, Picked
from .notification import Notification, from_picked
from .signature import body_bytes
from .tracker import Observation, Tracker

#: Where a `Receiver` finds the channel a notification names: one `Channel`, a mapping
#: from channel id to `Channel`, or a function of the channel id returning the `Channel`
#: or `None` for an unknown id.
Channels = Union[Channel, Mapping[str, Channel], Callable[[str], Optional[Channel]]]


def error_envelope(status: int, reason: str, message: str) -> bytes:
    """The gateway's (and Google's) error body:
    `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}`."""
    envelope = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_success(status: int) -> bool:
    return 200 <= status <= 299


@dataclass
class Receipt:
    """What became of one request.

    `notification` and `observation` are set for a valid notification, `error` for an
    invalid one; `status`, `response_headers` and `response_body` are the answer to give.
    `body` is the request body, as received."""

    status: int
    body: bytes = b""
    notification: Optional[Notification] = None
    observation: Optional[Observation] = None
    error: Optional[NotificationError] = None
    response_headers: List[Tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""

    @property
    def ok(self) -> bool:
        """Whether the request is a valid notification (flagged or not)."""
        return self.notification is not None

    def with_status(self, status: int) -> Receipt:
        """This receipt answering `status` instead, with an empty body."""
        return Receipt(
            status=status,
            body=self.body,
            notification=self.notification,
            observation=self.observation,
            error=self.error,
        )


#: A function called with each valid notification's `Receipt` (duplicates included:
#: check `receipt.observation.is_duplicate`). It returns `None` to answer `204`, or the
#: status to answer instead (`410` unsubscribes, a `5xx` asks for the notification
#: again). Raising answers `500` (through the framework) and the notification counts as
#: not seen, so that its retry is not taken for a duplicate.
Handler = Callable[[Receipt], Optional[int]]


def _lookup(channels: Channels) -> Callable[[str], Optional[Channel]]:
    if isinstance(channels, Channel):
        only = channels
        return lambda channel_id: only if channel_id == only.id else None
    if isinstance(channels, Mapping):
        table = channels
        return table.get
    if callable(channels):
        return channels
    raise TypeError("channels must be a Channel, a mapping of id to Channel, or a function")


class Receiver:
    """Checks requests against their channel and tracks them; thread-safe.

    `channels`: a `Channel`, a mapping of channel id to `Channel`, or a function from a
    channel id to its `Channel` (or `None`). A notification for a channel not found is
    rejected as `channelIdMismatch`. With a single `Channel`, that is exactly what
    `Channel.receive` answers.

    `tracker`: the `Tracker` to use (a new one by default). `clock`: a function returning
    the current time in ms since the epoch (for tests)."""

    def __init__(
        self,
        channels: Channels,
        *,
        tracker: Optional[Tracker] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        self._single = channels if isinstance(channels, Channel) else None
        self._lookup = _lookup(channels)
        self.tracker = tracker if tracker is not None else Tracker()
        self.clock: Clock = clock if clock is not None else now_ms
        self._lock = threading.Lock()

    def check(self, headers: Headers, body: Any, now: Now = None) -> Notification:
        """The notification these headers and body make, checked against its channel
        (without tracking it). Raises `NotificationError`."""
        raw = body_bytes(body)
        at = self.clock() if now is None else to_ms(now)
        if self._single is not None:
            return self._single.receive(headers, raw, at)
        picked = Picked(h.NOTIFICATION_HEADERS, headers)
        notification = from_picked(picked)
        channel = self._lookup(notification.channel_id)
        if channel is None:
            raise NotificationError.channel_id_mismatch(None, notification.channel_id)
        channel._verify(picked, notification, raw, at)
        return notification

    def receive(
        self, headers: Headers, body: Any, *, method: str = "POST", now: Now = None
    ) -> Receipt:
        """Checks and tracks one request; the `Receipt` says what to answer."""
        raw = body_bytes(body)
        if method != "POST":
            message = "notifications are delivered with POST"
            return Receipt(
                status=405,
                body=raw,
                response_headers=[("Content-Type", "application/json"), ("Allow", "POST")],
                response_body=error_envelope(405, "methodNotAllowed", message),
            )
        try:
            notification = self.check(headers, raw, now)
        except NotificationError as e:
            return Receipt(
                status=400,
                body=raw,
                error=e,
                response_headers=[("Content-Type", "application/json")],
                response_body=error_envelope(400, e.reason, e.message),
            )
        with self._lock:
            observation = self.tracker.observe(notification)
        return Receipt(status=204, body=raw, notification=notification, observation=observation)

    def release(self, receipt: Receipt) -> None:
        """Undoes the tracking of a receipt's notification (not of a duplicate, which was
        handled before): its next delivery counts as new again."""
        n, observation = receipt.notification, receipt.observation
        if n is None or observation is None or observation.is_duplicate:
            return
        with self._lock:
            self.tracker.retract(n.channel_id, n.message_number)

    def settle(self, receipt: Receipt, status: Optional[int]) -> Receipt:
        """The receipt to answer once a handler returned `status` (`None`: as it was)."""
        if status is None or status == receipt.status:
            return receipt
        if not is_success(status):
            self.release(receipt)
        return receipt.with_status(status)

    def handle(
        self,
        headers: Headers,
        body: Any,
        handler: Optional[Handler] = None,
        *,
        method: str = "POST",
        now: Now = None,
    ) -> Receipt:
        """`receive`, then `handler` on a valid notification; the receipt to answer."""
        receipt = self.receive(headers, body, method=method, now=now)
        if not receipt.ok or handler is None:
            return receipt
        try:
            status = handler(receipt)
        except BaseException:
            self.release(receipt)
            raise
        return self.settle(receipt, status)
