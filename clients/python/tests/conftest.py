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
