"""The Starlette adapter, through Starlette's and FastAPI's test clients (the whole ASGI path
in process): every vector, repeated header lines as the Rust library refuses them, sync
and async handlers."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from conftest import NOW, REPEATS, full_channel, load_vectors, reason_of, signed_event, with_repeat
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from test_vectors import channel_of
from watchwire_receiver import Channel, Receipt, Receiver
from watchwire_receiver.starlette import endpoint, receive, response


def as_bytes(headers) -> List[Any]:
    return [(k.encode("latin-1"), v.encode("utf-8") if isinstance(v, str) else v) for k, v in headers]


def starlette_app(receiver: Receiver, handler=None) -> TestClient:
    app = Starlette(routes=[Route("/notifications", endpoint(receiver, handler), methods=["POST", "GET"])])
    return TestClient(app)


def test_every_vector_through_starlette() -> None:
    failures: List[str] = []
    for name, vector in load_vectors():
        seen: List[Receipt] = []
        receiver = Receiver(channel_of(vector), clock=lambda: vector["nowMs"])
        client = starlette_app(receiver, seen.append)
        answer = client.post(
            "/notifications", headers=as_bytes(vector["headers"]), content=vector["body"].encode()
        )
        expect: Dict[str, Any] = vector["expect"]
        if "notification" in expect:
            got = seen[0].notification.to_dict() if seen else None
            if (answer.status_code, answer.content, got) != (204, b"", expect["notification"]):
                failures.append(f"{name}: {answer.status_code} {answer.content!r} {got}")
        elif answer.status_code != 400 or reason_of(answer.content) != expect["error"]["reason"]:
            failures.append(f"{name}: {answer.status_code} {answer.content!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name,rust_reason,wsgi_outcome", REPEATS)
def test_a_repeated_header_line_is_refused_as_in_the_rust_library(
    name: str, rust_reason: str, wsgi_outcome: str
) -> None:
    client = starlette_app(Receiver(full_channel(), clock=lambda: NOW))
    headers, body = signed_event()
    assert client.post("/notifications", headers=as_bytes(headers), content=body).status_code == 204
    headers, body = with_repeat(name)
    answer = client.post("/notifications", headers=as_bytes(headers), content=body)
    assert (answer.status_code, reason_of(answer.content)) == (400, rust_reason)


def test_async_handlers_choose_the_status_and_failures_are_asked_for_again() -> None:
    calls: List[str] = []

    async def handler(receipt: Receipt) -> Optional[int]:
        calls.append(receipt.observation.arrival.value)  # type: ignore[union-attr]
        if len(calls) == 1:
            raise RuntimeError("database down")
        return 202 if len(calls) == 2 else None

    client = TestClient(
        Starlette(routes=[Route("/n", endpoint(Receiver(full_channel(), clock=lambda: NOW), handler), methods=["POST"])]),
        raise_server_exceptions=False,
    )
    headers, body = signed_event()
    assert client.post("/n", headers=as_bytes(headers), content=body).status_code == 500
    assert client.post("/n", headers=as_bytes(headers), content=body).status_code == 202
    assert client.post("/n", headers=as_bytes(headers), content=body).status_code == 204
    # The failed attempt did not count as seen; the 202 did.
    assert calls == ["new", "new", "duplicate"]


def test_other_methods_are_405() -> None:
    client = starlette_app(Receiver(full_channel(), clock=lambda: NOW))
    answer = client.get("/notifications")
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
    assert reason_of(answer.content) == "methodNotAllowed"


def test_a_fastapi_route_with_receive_and_response() -> None:
    receiver = Receiver(Channel("ch-1", token="tok"), clock=lambda: NOW)
    handled: List[Any] = []
    app = FastAPI()

    @app.post("/notifications")
    async def notifications(request: Request):
        receipt = await receive(receiver, request)
        if receipt.ok and not receipt.observation.is_duplicate:  # type: ignore[union-attr]
            handled.append((receipt.notification.message_number, receipt.body))  # type: ignore[union-attr]
        return response(receipt)

    client = TestClient(app)
    headers, body = signed_event()
    for _ in range(2):
        answer = client.post("/notifications", headers=as_bytes(headers), content=body)
        assert (answer.status_code, answer.content) == (204, b"")
    assert handled == [(5, body)], "the duplicate was acknowledged, not handled; the body is the raw bytes"
    wrong = [(k, "nope" if k == "X-Goog-Channel-Token" else v) for k, v in headers]
    answer = client.post("/notifications", headers=as_bytes(wrong), content=body)
    assert (answer.status_code, answer.json()["error"]["errors"][0]["reason"]) == (400, "tokenMismatch")


def test_the_endpoint_as_a_fastapi_route() -> None:
    seen: List[Receipt] = []
    app = FastAPI()
    app.add_api_route("/notifications", endpoint(Receiver(full_channel(), clock=lambda: NOW), seen.append), methods=["POST"])
    client = TestClient(app)
    headers, body = signed_event()
    answer = client.post("/notifications", headers=as_bytes(headers), content=body)
    assert (answer.status_code, answer.content) == (204, b"")
    assert seen[0].body == body and seen[0].notification.message_number == 5
    headers, body = with_repeat("X-Goog-Resource-State")
    answer = client.post("/notifications", headers=as_bytes(headers), content=body)
    assert (answer.status_code, reason_of(answer.content)) == (400, "malformedHeader")
