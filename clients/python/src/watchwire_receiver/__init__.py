"""The receiving side of watchwire's watch channels (docs/api.md §11), with the standard library
only: turn an incoming push request into a checked, typed `Notification`.

- `Channel`: what the subscriber knows about a channel; builds the watch body
  (`body()`), takes the watch response (`update()`), and validates requests
  (`receive(headers, body)`).
- `Notification.from_headers`: parsing alone, without a channel to check against.
- `verify_signature`: Standard Webhooks verification on its own.
- `Tracker`: duplicates, out-of-order numbers and gaps per channel.
- `Receiver`: all of it for an endpoint, with the status to answer; the adapters
  `watchwire_receiver.starlette` (FastAPI too), `.flask`, `.django` and `.http_server`
  build on it.
"""

from __future__ import annotations

from . import headers
from .channel import Channel, parse_expiration
from .errors import REASONS, ChannelError, NotificationError, SignatureError
from .notification import STATES, Notification, is_changed_token, is_known_state
from .receiver import Handler, Receipt, Receiver, error_envelope
from .signature import DEFAULT_SIGNATURE_TOLERANCE, SigningSecret, verify_signature
from .tracker import DEFAULT_MAX_CHANNELS, DEFAULT_WINDOW, Arrival, Gap, Observation, Tracker

__version__ = "0.1.0"

__all__ = [
    "Arrival",
    "Channel",
    "ChannelError",
    "DEFAULT_MAX_CHANNELS",
    "DEFAULT_SIGNATURE_TOLERANCE",
    "DEFAULT_WINDOW",
    "Gap",
    "Handler",
    "Notification",
    "NotificationError",
    "Observation",
    "REASONS",
    "Receipt",
    "Receiver",
    "STATES",
    "SignatureError",
    "SigningSecret",
    "Tracker",
    "error_envelope",
    "headers",
    "is_changed_token",
    "is_known_state",
    "parse_expiration",
    "verify_signature",
]
