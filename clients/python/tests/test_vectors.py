"""Every vector in `fixtures/notifications` (format in its README.md) gives its expected result,
exactly as the Rust library's `tests/it/receiver_fixtures.rs` requires of it: the same
outcome, reason, header and parsed fields."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import load_vectors

from watchwire_receiver import (
    REASONS,
    Channel,
    Notification,
    NotificationError,
    Receiver,
    SigningSecret,
    headers as h,
)

VECTORS = load_vectors()


def channel_of(vector: Dict[str, Any]) -> Channel:
    c = vector["channel"]
    assert set(c) <= {"id", "token", "resourceId", "expiration", "signingSecret"}, c
    channel = Channel(c["id"], token=c.get("token"), resource_id=c.get("resourceId"))
    channel.update({"expiration": c.get("expiration")})
    channel.set_signing_secret(c.get("signingSecret"))
    return channel


def problem(vector: Dict[str, Any], run: Any) -> Optional[str]:
    """What went wrong with one vector, or `None` when it gave what it expects."""
    expect = vector["expect"]
    assert len(expect) == 1, expect
    try:
        notification = run()
    except NotificationError as e:
        got: Tuple[str, Any] = ("error", {"reason": e.reason, "header": e.header})
        if e.reason == "signatureMismatch" and "error" not in expect:
            return f"signatureMismatch; the body signs as {resign(vector)}"
    else:
        assert isinstance(notification, Notification)
        got = ("notification", notification.to_dict())
    if "notification" in expect and got == ("notification", expect["notification"]):
        return None
    if "error" in expect and got == ("error", expect["error"]):
        return None
    return f"expected {expect}, got {got}"


def resign(vector: Dict[str, Any]) -> str:
    """The signature the vector's body should carry (to fix an edited vector)."""
    pairs = {k.lower(): v for k, v in vector["headers"]}
    secret = SigningSecret.parse(vector["channel"]["signingSecret"])
    return secret.sign(
        pairs["webhook-id"], int(pairs["webhook-timestamp"].strip()), vector["body"]
    )


def as_bytes(pairs: List[List[str]]) -> List[Tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("utf-8")) for k, v in pairs]


@pytest.mark.parametrize("name,vector", VECTORS, ids=[name for name, _ in VECTORS])
def test_vector_gives_its_expected_result(name: str, vector: Dict[str, Any]) -> None:
    channel = channel_of(vector)
    now = vector["nowMs"]
    body = vector["body"]
    pairs = [tuple(p) for p in vector["headers"]]
    runs = {
        "str pairs": lambda: channel.receive(pairs, body.encode("utf-8"), now),
        "bytes pairs (as ASGI gives them)": lambda: channel.receive(
            as_bytes(vector["headers"]), body.encode("utf-8"), now
        ),
        "Receiver": lambda: Receiver(channel, clock=lambda: now).check(pairs, body),
        "Receiver with a lookup": lambda: Receiver({channel.id: channel}).check(pairs, body, now),
    }
    failures = [f"{how}: {p}" for how, run in runs.items() if (p := problem(vector, run))]
    assert not failures, f"{name} ({vector['description']}):\n" + "\n".join(failures)


def test_vectors_cover_every_error_and_every_state() -> None:
    reasons = {v["expect"]["error"]["reason"] for _, v in VECTORS if "error" in v["expect"]}
    assert reasons == set(REASONS)
    states = {
        v["expect"]["notification"]["state"] for _, v in VECTORS if "notification" in v["expect"]
    }
    for state in "sync exists not_exists add remove update trash untrash change CREATE_USER".split():
        assert state in states, f"no valid vector has state {state}"


def test_gateway_vectors_carry_every_required_header_and_only_notification_headers() -> None:
    gateway = [(n, v) for n, v in VECTORS if v["emittedByGateway"]]
    assert len(gateway) >= 10
    for name, vector in gateway:
        assert "notification" in vector["expect"], f"{name}: a gateway vector must be valid"
        names = [k.lower() for k, _ in vector["headers"]]
        assert len(set(names)) == len(names), f"{name}: a header appears twice"
        assert set(names) <= set(h.NOTIFICATION_HEADERS), name
        assert set(h.REQUIRED_HEADERS) <= set(names), name


def test_the_receiver_answers_each_vector_as_watchwire_receive_would() -> None:
    for name, vector in VECTORS:
        channel = channel_of(vector)
        receipt = Receiver(channel, clock=lambda: vector["nowMs"]).receive(
            vector["headers"], vector["body"]
        )
        if "notification" in vector["expect"]:
            assert (receipt.status, receipt.response_body) == (204, b""), name
            assert receipt.observation is not None and receipt.observation.is_new, name
        else:
            assert receipt.status == 400, name
            assert receipt.error is not None
            assert f'"reason":"{vector["expect"]["error"]["reason"]}"'.encode() in receipt.response_body
