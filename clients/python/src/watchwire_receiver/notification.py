"""The typed notification and the parsing of its headers (docs/api.md §4)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from . import headers as h
from ._clock import to_datetime
from ._httpdate import parse_ms
from ._json import parse_object
from ._text import BLANKS, U64_MAX, parse_decimal
from .errors import NotificationError
from .headers import Headers, Picked

#: The states with a name of their own; any Admin-style event name is allowed too.
STATES: Tuple[str, ...] = (
    "sync",
    "exists",
    "not_exists",
    "add",
    "remove",
    "update",
    "trash",
    "untrash",
    "change",
)

SYNC = "sync"

_EVENT_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_CHANGED_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_known_state(state: str) -> bool:
    """Whether `state` is one docs/api.md §4 allows: a named state, or an Admin-style event
    name such as `CREATE_USER` (`[A-Z][A-Z0-9_]{0,63}`)."""
    return state in STATES or _EVENT_NAME.fullmatch(state) is not None


def is_changed_token(token: str) -> bool:
    """A `changed` token: `[A-Za-z0-9_-]{1,64}`."""
    return _CHANGED_TOKEN.fullmatch(token) is not None


def parse_number(text: str) -> Optional[int]:
    """A message number: ASCII digits only (no sign), from 1 to 2^64-1."""
    number = parse_decimal(text, U64_MAX)
    return number if number is not None and number >= 1 else None


def _parse_changed(text: str) -> Optional[List[str]]:
    if text == "":
        return []
    items = [item.strip(BLANKS) for item in text.split(",")]
    return items if all(is_changed_token(item) for item in items) else None


@dataclass(frozen=True)
class Notification:
    """One notification, as its headers describe it."""

    #: `X-Goog-Channel-ID`.
    channel_id: str
    #: `X-Goog-Message-Number`: 1 for sync, strictly larger afterwards, kept on retries.
    message_number: int
    #: `X-Goog-Resource-State`, as on the wire (`sync`, `exists`, `CREATE_USER`, ...).
    state: str
    #: `X-Goog-Resource-ID`: opaque, the same for every channel on one resource.
    resource_id: str
    #: `X-Goog-Resource-URI`.
    resource_uri: str
    #: `X-Goog-Channel-Expiration` in ms since the epoch; `None` for channels that never expire.
    channel_expiration_ms: Optional[int] = None
    #: `X-Goog-Channel-Token`, when the channel has one.
    token: Optional[str] = field(default=None, repr=False)
    #: `X-Goog-Changed`, split at commas; empty when absent.
    changed: Tuple[str, ...] = ()
    #: `X-Watchwire-Event-Resource`: the path the event was published on.
    event_resource: Optional[str] = None
    #: `X-Watchwire-Cursor`: the event's position in the gateway's log (for sync, where
    #: the channel's coverage starts).
    cursor: Optional[str] = None
    #: `X-Watchwire-Previous-Number`: the message number sent before this one on the
    #: channel; absent on sync and from senders other than watchwire.
    previous_number: Optional[int] = None
    #: `X-Watchwire-Metadata`: the publisher's metadata object.
    metadata: Optional[Dict[str, Any]] = field(default=None, hash=False)

    @property
    def is_sync(self) -> bool:
        """Whether this is the sync message that opens a channel."""
        return self.state == SYNC

    @property
    def channel_expiration(self) -> Optional[datetime]:
        """`channel_expiration_ms` as an aware UTC `datetime` (`None` when absent, or
        beyond the years `datetime` holds)."""
        if self.channel_expiration_ms is None:
            return None
        return to_datetime(self.channel_expiration_ms)

    def to_dict(self) -> Dict[str, Any]:
        """The notification as the vectors in `fixtures/notifications` write it (camelCase)."""
        return {
            "channelId": self.channel_id,
            "messageNumber": self.message_number,
            "state": self.state,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "channelExpirationMs": self.channel_expiration_ms,
            "token": self.token,
            "changed": list(self.changed),
            "eventResource": self.event_resource,
            "cursor": self.cursor,
            "previousNumber": self.previous_number,
            "metadata": self.metadata,
        }

    @classmethod
    def from_headers(cls, headers: Headers) -> Notification:
        """Parses notification headers (names in any letter case) without checking them
        against a channel: every required header present, number and state well formed,
        the optional ones in their formats. `Channel.receive` is the call that also
        authenticates. Raises `NotificationError`."""
        return from_picked(Picked(h.NOTIFICATION_HEADERS, headers))


def from_picked(picked: Picked) -> Notification:
    def optional(name: str) -> Optional[str]:
        value, problem = picked.text(name)
        if problem is not None:
            raise NotificationError.malformed_header(name, problem)
        return value

    def required(name: str) -> str:
        value = optional(name)
        if value is None:
            raise NotificationError.missing_header(name)
        return value

    channel_id = required(h.CHANNEL_ID)
    number_text = required(h.MESSAGE_NUMBER)
    message_number = parse_number(number_text)
    if message_number is None:
        raise NotificationError.invalid_message_number(number_text)
    state = required(h.RESOURCE_STATE)
    if not is_known_state(state):
        raise NotificationError.unknown_state(state)
    resource_id = required(h.RESOURCE_ID)
    resource_uri = required(h.RESOURCE_URI)

    token = optional(h.CHANNEL_TOKEN)
    expiration_ms = None
    expiration_text = optional(h.CHANNEL_EXPIRATION)
    if expiration_text is not None:
        expiration_ms = parse_ms(expiration_text)
        if expiration_ms is None:
            raise NotificationError.malformed_header(h.CHANNEL_EXPIRATION, "is not an IMF-fixdate")
    changed: List[str] = []
    changed_text = optional(h.CHANGED)
    if changed_text is not None:
        parsed = _parse_changed(changed_text)
        if parsed is None:
            raise NotificationError.malformed_header(
                h.CHANGED, "is not a comma-separated list of [A-Za-z0-9_-]{1,64}"
            )
        changed = parsed
    event_resource = optional(h.EVENT_RESOURCE)
    cursor = optional(h.CURSOR)
    previous_number = None
    previous_text = optional(h.PREVIOUS_NUMBER)
    if previous_text is not None:
        previous_number = parse_number(previous_text)
        if previous_number is None or previous_number >= message_number:
            raise NotificationError.malformed_header(
                h.PREVIOUS_NUMBER,
                "is not a positive decimal integer below the message number",
            )
    metadata = None
    metadata_text = optional(h.METADATA)
    if metadata_text is not None:
        metadata = parse_object(metadata_text)
        if metadata is None:
            raise NotificationError.malformed_header(h.METADATA, "is not a JSON object")

    return Notification(
        channel_id=channel_id,
        message_number=message_number,
        state=state,
        resource_id=resource_id,
        resource_uri=resource_uri,
        channel_expiration_ms=expiration_ms,
        token=token,
        changed=tuple(changed),
        event_resource=event_resource,
        cursor=cursor,
        previous_number=previous_number,
        metadata=metadata,
    )
