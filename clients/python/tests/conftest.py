"""Shared by the tests: the vectors in `fixtures/notifications` (read from the repository at
test time, never copied) and the header sets of the unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
REPOSITORY = PACKAGE.parents[1]
VECTORS = REPOSITORY / "fixtures" / "notifications"

#: A moment before the test channels expire (2023-11-14T22:13:20Z), in ms.
NOW = 1_700_000_000_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Pairs = List[Tuple[str, str]]


def load_vectors() -> List[Tuple[str, Dict[str, Any]]]:
    paths = sorted(VECTORS.glob("*.json"))
    assert len(paths) >= 40, f"expected the full set of vectors in {VECTORS}"
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in paths]


def sync_headers() -> Pairs:
    """A sync message on channel `ch-1` (token `tok`), as the gateway sends it."""
    return [
        ("X-Goog-Channel-ID", "ch-1"),
        ("X-Goog-Channel-Token", "tok"),
        ("X-Goog-Channel-Expiration", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ("X-Goog-Resource-ID", "rid-1"),
        ("X-Goog-Resource-URI", "http://127.0.0.1:8080/calendars/primary/events"),
        ("X-Goog-Resource-State", "sync"),
        ("X-Goog-Message-Number", "1"),
        ("X-Watchwire-Event-Resource", "/calendars/primary/events"),
        ("X-Watchwire-Cursor", "c-0"),
    ]


def without(headers: Pairs, name: str) -> Pairs:
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def with_(headers: Pairs, name: str, value: str) -> Pairs:
    return without(headers, name) + [(name, value)]


def event_headers() -> Pairs:
    """Message 5 (after 3) on channel `ch-1`, with every optional header."""
    headers = sync_headers()
    for name, value in [
        ("x-goog-resource-state", "update"),
        ("x-goog-message-number", "5"),
        ("x-watchwire-previous-number", "3"),
        ("x-watchwire-cursor", "c-9"),
        ("x-watchwire-event-resource", "/calendars/primary/events/e1"),
        ("x-goog-changed", "content,properties"),
        ("x-watchwire-metadata", '{"request_id":"r-1"}'),
    ]:
        headers = with_(headers, name, value)
    return headers


@pytest.fixture
def vectors() -> List[Tuple[str, Dict[str, Any]]]:
    return load_vectors()


def full_channel():
    """Channel `ch-1` knowing everything: token, resource id and signing secret."""
    from watchwire_receiver import Channel

    return Channel("ch-1", token="tok", resource_id="rid-1", signing_secret=SECRET)


def signed_event(now_ms: int = NOW) -> Tuple[Pairs, bytes]:
    """`event_headers()` signed under SECRET at `now_ms`, with its body."""
    from watchwire_receiver import SigningSecret

    body = b'{"id":"e1", "n": 1.50}'
    ts = now_ms // 1000
    signature = SigningSecret.parse(SECRET).sign("ch-1-5", ts, body)
    headers = event_headers() + [
        ("webhook-id", "ch-1-5"),
        ("webhook-timestamp", str(ts)),
        ("webhook-signature", signature),
    ]
    return headers, body


ACCEPTED = "accepted"

#: Each header of `signed_event()` sent twice with the same value: what the Rust library
#: (and every adapter that sees the header lines as sent) answers, and what becomes of
#: it behind WSGI, where the server joins the two values into `value,value`.
REPEATS: List[Tuple[str, str, str]] = [
    ("X-Goog-Channel-ID", "malformedHeader", "channelIdMismatch"),
    ("X-Goog-Channel-Token", "malformedHeader", "tokenMismatch"),
    ("X-Goog-Channel-Expiration", "malformedHeader", "malformedHeader"),
    ("X-Goog-Resource-ID", "malformedHeader", "resourceIdMismatch"),
    ("X-Goog-Resource-URI", "malformedHeader", ACCEPTED),
    ("X-Goog-Resource-State", "malformedHeader", "unknownState"),
    ("X-Goog-Message-Number", "malformedHeader", "invalidMessageNumber"),
    ("X-Goog-Changed", "malformedHeader", ACCEPTED),
    ("X-Watchwire-Event-Resource", "malformedHeader", ACCEPTED),
    ("X-Watchwire-Cursor", "malformedHeader", ACCEPTED),
    ("X-Watchwire-Previous-Number", "malformedHeader", "malformedHeader"),
    ("X-Watchwire-Metadata", "malformedHeader", "malformedHeader"),
    ("webhook-id", "malformedSignatureHeader", "signatureMismatch"),
    ("webhook-timestamp", "malformedSignatureHeader", "malformedSignatureHeader"),
    ("webhook-signature", "malformedSignatureHeader", "signatureMismatch"),
]


def with_repeat(name: str, now_ms: int = NOW) -> Tuple[Pairs, bytes]:
    """`signed_event()` with header `name` sent a second time, with the same value."""
    headers, body = signed_event(now_ms)
    value = next(v for k, v in headers if k.lower() == name.lower())
    return headers + [(name, value)], body


def post(url: str, headers: List[Tuple[str, Any]], body: bytes, method: str = "POST") -> Tuple[int, bytes]:
    """Sends one request with exactly these header lines (repeats kept); status and body."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest(method, parts.path or "/", skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value.encode("utf-8") if isinstance(value, str) else value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def reason_of(answer_body: bytes) -> str:
    return json.loads(answer_body)["error"]["errors"][0]["reason"]
