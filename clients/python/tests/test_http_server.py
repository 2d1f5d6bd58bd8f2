"""The `http.server` adapter, over real HTTP: every vector, repeated header lines, the statuses."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List

import pytest
from conftest import NOW, REPEATS, load_vectors, post, reason_of, signed_event, with_repeat

from test_vectors import channel_of
from watchwire_receiver import Channel, Receipt, Receiver
from watchwire_receiver.http_server import serve


class App:
    def __init__(self) -> None:
        self.channel: Channel = Channel("ch-1")
        self.now = NOW
        self.receipts: List[Receipt] = []
        self.fail = False
        self.receiver = Receiver(lambda channel_id: self.channel, clock=lambda: self.now)

    def handle(self, receipt: Receipt) -> None:
        if self.fail:
            raise RuntimeError("the handler failed")
        self.receipts.append(receipt)


@pytest.fixture
def app() -> Iterator[Any]:
    state = App()
    server = serve(state.receiver, state.handle, ("127.0.0.1", 0), path="/notifications", log=False)
    # A short poll keeps shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    state.url = f"http://{host}:{port}/notifications"  # type: ignore[attr-defined]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_every_vector_over_http(app: Any) -> None:
    failures: List[str] = []
    for name, vector in load_vectors():
        app.channel, app.now = channel_of(vector), vector["nowMs"]
        app.receipts.clear()
        status, answer = post(app.url, vector["headers"], vector["body"].encode("utf-8"))
        expect: Dict[str, Any] = vector["expect"]
        if "notification" in expect:
            got = app.receipts[0].notification.to_dict() if app.receipts else None
            if (status, answer, got) != (204, b"", expect["notification"]):
                failures.append(f"{name}: {status} {answer!r} {got}")
            elif app.receipts[0].body != vector["body"].encode("utf-8"):
                failures.append(f"{name}: the handler got another body")
        elif status != 400 or reason_of(answer) != expect["error"]["reason"] or app.receipts:
            failures.append(f"{name}: {status} {answer!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name,rust_reason,wsgi_outcome", REPEATS)
def test_a_repeated_header_line_is_refused_as_in_the_rust_library(
    app: Any, name: str, rust_reason: str, wsgi_outcome: str
) -> None:
    from conftest import full_channel

    app.channel = full_channel()
    headers, body = signed_event()
    assert post(app.url, headers, body)[0] == 204
    headers, body = with_repeat(name)
    status, answer = post(app.url, headers, body)
    assert (status, reason_of(answer)) == (400, rust_reason)
    assert name.lower() in answer.decode()


def test_answers_other_methods_and_paths(app: Any) -> None:
    headers, body = signed_event()
    status, answer = post(app.url, headers, body, method="GET")
    assert (status, reason_of(answer)) == (405, "methodNotAllowed")
    assert post(app.url, [], b"", method="HEAD")[0] == 405
    status, answer = post(app.url.replace("/notifications", "/other"), headers, body)
    assert (status, reason_of(answer)) == (404, "notFound")
    assert app.receipts == []


def test_a_failing_handler_answers_500_and_the_retry_is_new(app: Any) -> None:
    from conftest import full_channel

    app.channel = full_channel()
    headers, body = signed_event()
    app.fail = True
    status, answer = post(app.url, headers, body)
    assert (status, reason_of(answer)) == (500, "internalError")
    app.fail = False
    assert post(app.url, headers, body)[0] == 204
    assert post(app.url, headers, body)[0] == 204
    assert [r.observation.arrival.value for r in app.receipts] == ["new", "duplicate"]


def test_utf8_and_latin1_header_bytes_arrive_as_sent(app: Any) -> None:
    app.channel = Channel("ch-1")
    headers, body = signed_event()
    utf8 = [(k, v) for k, v in headers if k.lower() != "x-goog-resource-uri"]
    assert post(app.url, utf8 + [("X-Goog-Resource-URI", "http://gw/é".encode())], body)[0] == 204
    assert app.receipts[-1].notification.resource_uri == "http://gw/é"
    status, answer = post(app.url, utf8 + [("X-Goog-Resource-URI", b"http://gw/\xe9")], body)
    assert (status, reason_of(answer)) == (400, "malformedHeader")
    assert b"is not UTF-8 text" in answer
