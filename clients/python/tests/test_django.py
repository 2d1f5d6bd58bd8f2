"""The Django adapter: through Django's test client (with CSRF checks on), under ASGI where the
scope's header list keeps repeats, and behind a real WSGI server, where the server joins
a repeated header into one value (documented in `watchwire_receiver.django` and the
README)."""

from __future__ import annotations

import io
import threading
from typing import Any, Dict, Iterator, List

import django
import pytest
from conftest import ACCEPTED, NOW, REPEATS, full_channel, post, reason_of, signed_event, with_repeat
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="only-for-these-tests",
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        USE_TZ=True,
    )
    django.setup()

from django.core.handlers.asgi import ASGIRequest  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402

from watchwire_receiver import Receipt, Receiver  # noqa: E402
from watchwire_receiver.django import request_headers, view  # noqa: E402

# The view under test is made once, as an application makes it; each test gives it a
# fresh receiver through STATE.
STATE: Dict[str, Any] = {"seen": []}


class Lookup:
    def __call__(self, channel_id: str):
        return STATE["channel"]


RECEIVER = Receiver(Lookup(), clock=lambda: NOW)


def record(receipt: Receipt):
    if STATE.get("raise"):
        raise RuntimeError("database down")
    STATE["seen"].append(receipt)
    return STATE.get("status")


urlpatterns = [path("notifications", view(RECEIVER, record))]


@pytest.fixture(autouse=True)
def fresh() -> None:
    from watchwire_receiver import Tracker

    STATE.update(channel=full_channel(), seen=[], status=None)
    STATE["raise"] = False
    RECEIVER.tracker = Tracker()


def django_headers(headers) -> Dict[str, str]:
    return {k: v for k, v in headers}


def test_receives_through_the_test_client_without_a_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    headers, body = signed_event()
    for _ in range(2):
        answer = client.post(
            "/notifications", data=body, content_type="application/json", headers=django_headers(headers)
        )
        assert (answer.status_code, answer.content) == (204, b"")
        assert "Content-Type" not in answer
    assert [r.observation.arrival.value for r in STATE["seen"]] == ["new", "duplicate"]
    assert STATE["seen"][0].body == body
    wrong = {**django_headers(headers), "X-Goog-Channel-Token": "nope"}
    answer = client.post("/notifications", data=body, content_type="application/json", headers=wrong)
    assert (answer.status_code, answer.json()["error"]["errors"][0]["reason"]) == (400, "tokenMismatch")
    answer = client.get("/notifications")
    assert (answer.status_code, answer["Allow"]) == (405, "POST")


def test_a_handler_status_and_a_failing_handler() -> None:
    client = Client(raise_request_exception=False)
    headers, body = signed_event()
    STATE["status"] = 503
    post_it = lambda: client.post(  # noqa: E731
        "/notifications", data=body, content_type="application/json", headers=django_headers(headers)
    )
    assert post_it().status_code == 503
    STATE["raise"] = True  # the handler fails: Django answers 500
    assert post_it().status_code == 500
    STATE.update({"raise": False, "status": None})
    assert post_it().status_code == 204
    assert [r.observation.arrival.value for r in STATE["seen"]] == ["new", "new"]


def asgi_request(headers, body: bytes) -> ASGIRequest:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/notifications",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in headers],
        "server": ("testserver", 80),
    }
    return ASGIRequest(scope, io.BytesIO(body))


@pytest.mark.parametrize("name,rust_reason,wsgi_outcome", REPEATS)
def test_under_asgi_a_repeated_header_is_refused_as_in_the_rust_library(
    name: str, rust_reason: str, wsgi_outcome: str
) -> None:
    headers, body = with_repeat(name)
    request = asgi_request(headers, body)
    # What Django itself makes of it: one META entry, the values joined.
    value = next(v for k, v in headers if k == name)
    assert request.META["HTTP_" + name.upper().replace("-", "_")] == f"{value},{value}"
    assert len([k for k, _ in request_headers(request) if k.lower() == name.lower().encode()]) == 2
    answer = view(RECEIVER, record)(request)
    assert (answer.status_code, reason_of(answer.content)) == (400, rust_reason)


def test_under_asgi_a_valid_notification_is_accepted() -> None:
    headers, body = signed_event()
    answer = view(RECEIVER, record)(asgi_request(headers, body))
    assert answer.status_code == 204
    assert STATE["seen"][0].notification.changed == ("content", "properties")


@pytest.fixture(scope="module")
def wsgi_url() -> Iterator[str]:
    """Django behind wsgiref's server, a real WSGI server (one thread)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/notifications"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("name,rust_reason,wsgi_outcome", REPEATS)
def test_behind_wsgi_a_repeated_header_arrives_joined(
    wsgi_url: str, name: str, rust_reason: str, wsgi_outcome: str
) -> None:
    headers, body = with_repeat(name)
    status, answer = post(wsgi_url, headers, body)
    if wsgi_outcome == ACCEPTED:
        assert status == 204
        n = STATE["seen"][0].notification
        value = next(v for k, v in headers if k == name)
        joined = {
            "X-Goog-Resource-URI": n.resource_uri,
            "X-Goog-Changed": ",".join(n.changed),
            "X-Watchwire-Event-Resource": n.event_resource,
            "X-Watchwire-Cursor": n.cursor,
        }[name]
        assert joined == f"{value},{value}"
    else:
        assert (status, reason_of(answer)) == (400, wsgi_outcome)


def test_behind_wsgi_a_single_notification_passes(wsgi_url: str) -> None:
    headers, body = signed_event()
    assert post(wsgi_url, headers, body) == (204, b"")
    status, answer = post(wsgi_url, headers, body, method="PUT")
    assert (status, reason_of(answer)) == (405, "methodNotAllowed")
    seen: List[Receipt] = STATE["seen"]
    assert len(seen) == 1 and seen[0].body == body
