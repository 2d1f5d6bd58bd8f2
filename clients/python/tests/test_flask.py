"""The Flask adapter: through Flask's test client, and behind a real WSGI server, where a
repeated header reaches the application joined into one value (documented in
`watchwire_receiver.flask` and the README)."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List, Optional
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from conftest import ACCEPTED, NOW, REPEATS, full_channel, post, reason_of, signed_event, with_repeat
from flask import Flask

from watchwire_receiver import Receipt, Receiver
from watchwire_receiver.flask import handle, response, view


def flask_app(receiver: Receiver, handler=None) -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/notifications", view_func=view(receiver, handler), methods=["POST", "GET"])
    return app


def test_receives_through_the_test_client() -> None:
    seen: List[Receipt] = []
    client = flask_app(Receiver(full_channel(), clock=lambda: NOW), seen.append).test_client()
    headers, body = signed_event()
    for _ in range(2):
        answer = client.post("/notifications", headers=headers, data=body)
        assert (answer.status_code, answer.data) == (204, b"")
    assert [r.observation.arrival.value for r in seen] == ["new", "duplicate"]
    assert seen[0].body == body and seen[0].notification.metadata == {"request_id": "r-1"}
    wrong = [(k, "nope" if k == "X-Goog-Channel-Token" else v) for k, v in headers]
    answer = client.post("/notifications", headers=wrong, data=body)
    assert (answer.status_code, answer.json["error"]["errors"][0]["reason"]) == (400, "tokenMismatch")
    answer = client.get("/notifications")
    assert (answer.status_code, answer.headers["Allow"]) == (405, "POST")


def test_a_form_body_is_verified_and_handed_over_as_the_raw_bytes() -> None:
    from conftest import SECRET

    from watchwire_receiver import SigningSecret

    seen: List[Receipt] = []
    client = flask_app(Receiver(full_channel(), clock=lambda: NOW), seen.append).test_client()
    headers, _ = signed_event()
    form_body = b"b=2&a=1&a=%20"
    signature = SigningSecret.parse(SECRET).sign("ch-1-5", NOW // 1000, form_body)
    headers = [(k, signature if k == "webhook-signature" else v) for k, v in headers]
    headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    answer = client.post("/notifications", headers=headers, data=form_body)
    assert answer.status_code == 204 and seen[0].body == form_body


def test_a_handler_status_and_a_failing_handler() -> None:
    statuses: List[Optional[int]] = [410]

    def handler(receipt: Receipt) -> Optional[int]:
        if not statuses:
            raise RuntimeError("database down")
        return statuses.pop()

    app = flask_app(Receiver(full_channel(), clock=lambda: NOW), handler)
    client = app.test_client()
    headers, body = signed_event()
    assert client.post("/notifications", headers=headers, data=body).status_code == 410
    app.testing = False  # answer 500 rather than raise into the test
    assert client.post("/notifications", headers=headers, data=body).status_code == 500
    statuses.append(None)
    assert client.post("/notifications", headers=headers, data=body).status_code == 204


def test_handle_and_response_in_a_view_of_ones_own() -> None:
    receiver = Receiver(full_channel(), clock=lambda: NOW)
    app = Flask(__name__)

    @app.post("/n")
    def notifications():
        receipt = handle(receiver)
        return response(receipt)

    headers, body = signed_event()
    assert app.test_client().post("/n", headers=headers, data=body).status_code == 204


@pytest.fixture(scope="module")
def wsgi_server() -> Iterator[Any]:
    """The app behind wsgiref's server, a real WSGI server (one thread)."""

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    state = {"receiver": Receiver(full_channel(), clock=lambda: NOW), "seen": []}
    app = Flask(__name__)

    @app.post("/notifications")
    def notifications():
        return view(state["receiver"], state["seen"].append)()

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/notifications"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("name,rust_reason,wsgi_outcome", REPEATS)
def test_behind_wsgi_a_repeated_header_arrives_joined(
    wsgi_server: Any, name: str, rust_reason: str, wsgi_outcome: str
) -> None:
    wsgi_server["receiver"] = Receiver(full_channel(), clock=lambda: NOW)
    wsgi_server["seen"].clear()
    headers, body = with_repeat(name)
    status, answer = post(wsgi_server["url"], headers, body)
    if wsgi_outcome == ACCEPTED:
        assert status == 204
        notification = wsgi_server["seen"][0].notification
        value = next(v for k, v in headers if k == name)
        joined = {
            "X-Goog-Resource-URI": notification.resource_uri,
            "X-Goog-Changed": ",".join(notification.changed),
            "X-Watchwire-Event-Resource": notification.event_resource,
            "X-Watchwire-Cursor": notification.cursor,
        }[name]
        assert joined == f"{value},{value}"
    else:
        assert (status, reason_of(answer)) == (400, wsgi_outcome)
