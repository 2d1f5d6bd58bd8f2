"""Header names of a notification (docs/api.md §4, §10), in lower case, and how headers are
picked out of whatever a framework hands over."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ._text import BLANKS, ascii_lower

CHANNEL_ID = "x-goog-channel-id"
CHANNEL_TOKEN = "x-goog-channel-token"
CHANNEL_EXPIRATION = "x-goog-channel-expiration"
RESOURCE_ID = "x-goog-resource-id"
RESOURCE_URI = "x-goog-resource-uri"
RESOURCE_STATE = "x-goog-resource-state"
MESSAGE_NUMBER = "x-goog-message-number"
CHANGED = "x-goog-changed"

#: The canonical path the event was published on.
EVENT_RESOURCE = "x-watchwire-event-resource"
#: The event's cursor (for sync: the log position the channel's coverage starts after).
CURSOR = "x-watchwire-cursor"
#: Message number of the previous notification on the channel; absent on sync.
PREVIOUS_NUMBER = "x-watchwire-previous-number"
#: The event's metadata as compact JSON.
METADATA = "x-watchwire-metadata"

#: Standard Webhooks signature headers.
WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"

#: Every header a notification may carry, in the order of docs/api.md §4.
NOTIFICATION_HEADERS: Tuple[str, ...] = (
    CHANNEL_ID,
    CHANNEL_TOKEN,
    CHANNEL_EXPIRATION,
    RESOURCE_ID,
    RESOURCE_URI,
    RESOURCE_STATE,
    MESSAGE_NUMBER,
    CHANGED,
    EVENT_RESOURCE,
    CURSOR,
    PREVIOUS_NUMBER,
    METADATA,
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    WEBHOOK_SIGNATURE,
)

#: The headers present on every notification, sync included.
REQUIRED_HEADERS: Tuple[str, ...] = (
    CHANNEL_ID,
    MESSAGE_NUMBER,
    RESOURCE_ID,
    RESOURCE_STATE,
    RESOURCE_URI,
)

SIGNATURE_HEADERS: Tuple[str, ...] = (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)

REPEATED = "appears more than once"
NOT_TEXT = "is not UTF-8 text"

Text = Union[str, bytes, bytearray, memoryview]
#: What every call that reads headers accepts: `(name, value)` pairs (a list, an ASGI
#: scope's `headers`, `request.headers.raw`), or an object with `items()` that yields
#: every pair (a `dict`, `email.message.Message`, werkzeug's `Headers`). Names and
#: values may be `str` or `bytes`; a `str` value is taken as text, `bytes` as the raw
#: header bytes (which must be UTF-8).
Headers = Union[Iterable[Tuple[Text, Text]], Any]

_ABSENT = object()
_REPEATED = object()


def header_pairs(headers: Headers) -> Iterator[Tuple[Text, Text]]:
    """The `(name, value)` pairs of any supported header source, repeats included."""
    items = getattr(headers, "items", None)
    if callable(items):
        return iter(items())
    return iter(headers)


def _name(name: Text) -> str:
    if isinstance(name, str):
        return name
    return bytes(name).decode("latin-1")


class Picked:
    """The values of the headers named in `names` (lower case), found in one pass. A name
    seen twice (in any letter case) is remembered as repeated: neither value is trusted."""

    __slots__ = ("_slots",)

    def __init__(self, names: Iterable[str], headers: Headers) -> None:
        slots: Dict[str, Any] = {name: _ABSENT for name in names}
        for name, value in header_pairs(headers):
            key = ascii_lower(_name(name))
            if key in slots:
                slots[key] = value if slots[key] is _ABSENT else _REPEATED
        self._slots = slots

    def text(self, name: str) -> Tuple[Optional[str], Optional[str]]:
        """`(value, None)` with surrounding blanks removed, `(None, None)` when absent, or
        `(None, reason)` when repeated or not text. Problems with headers nobody asks for
        are never reported."""
        value = self._slots[name]
        if value is _ABSENT:
            return None, None
        if value is _REPEATED:
            return None, REPEATED
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: not text
                return None, NOT_TEXT
            text = value
        else:
            try:
                text = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None, NOT_TEXT
        return text.strip(BLANKS), None


def from_wsgi_environ(environ: Any) -> List[Tuple[str, bytes]]:
    """The request headers of a WSGI environ (or Django's `request.META`), as pairs of a
    lower-case name and the original bytes of the value.

    WSGI keeps one `HTTP_*` entry per header name: a server that receives a header
    twice joins the values with a comma (wsgiref, werkzeug's server and gunicorn use
    `,`; werkzeug's test client `, `) into one entry, so a repeat can no longer be seen
    here. Values are `str` holding the raw bytes as latin-1 (PEP 3333), which this
    turns back into bytes."""
    pairs: List[Tuple[str, bytes]] = []
    for key, value in environ.items():
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key
        else:
            continue
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
        pairs.append((name.replace("_", "-").lower(), raw))
    return pairs
