"""End to end: a real `watchwire serve` delivers signed notifications to an app built on this
package (the `http.server` adapter on 127.0.0.1:0); a replay then arrives flagged as
duplicates, still answered 2xx. The gateway binary comes from `WATCHWIRE_BIN`: without
it this test is skipped, except under CI (`CI` set), where that is a failure."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from watchwire_receiver import Channel, Receipt, Receiver
from watchwire_receiver.http_server import serve

#: Long enough for a loaded CI machine; a passing run takes about a second.
TIMEOUT = 30.0
SECRET = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="


def gateway_binary() -> str:
    binary = os.environ.get("WATCHWIRE_BIN")
    if not binary:
        message = "WATCHWIRE_BIN is not set: the path of a watchwire binary to test against"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the end-to-end test must run; {message}")
        pytest.skip(message)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"WATCHWIRE_BIN={binary} is not an executable")
    return binary


class Gateway:
    """A `watchwire serve --dev` child process on a free port, killed at the end."""

    def __init__(self, binary: str, data_dir: str) -> None:
        # The gateway reads WATCHWIRE_* settings from the environment: none may leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWIRE_")}
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [binary, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
             "--log", "warn", "--retry-schedule", "20ms,40ms"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        found = threading.Event()
        self.url = ""

        def read_stdout() -> None:
            assert self.process.stdout is not None
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("watchwire listening on ") and not found.is_set():
                    self.url = line[len("watchwire listening on "):].rstrip("/")
                    found.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        if not found.wait(TIMEOUT):
            self.stop()
            raise AssertionError(f"the gateway did not say where it listens:\n{self.log()}")

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> Tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as answer:
                status, text = answer.status, answer.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        return status, json.loads(text) if text else None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


class App:
    """The receiving application: one known channel, every receipt recorded."""

    def __init__(self, channel: Channel) -> None:
        self.receipts: List[Receipt] = []
        self.answers: List[Tuple[str, int]] = []
        self.changed = threading.Condition()
        self.receiver = Receiver({channel.id: channel})
        self.server = serve(self.receiver, self.handle, ("127.0.0.1", 0), path="/notifications", log=False)
        # Every answer, the rejections too, for the assertions.
        original = self.receiver.receive

        def receive(*args: Any, **kwargs: Any) -> Receipt:
            receipt = original(*args, **kwargs)
            with self.changed:
                reason = receipt.error.reason if receipt.error else "ok"
                self.answers.append((reason, receipt.status))
                self.changed.notify_all()
            return receipt

        self.receiver.receive = receive  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}/notifications"

    def handle(self, receipt: Receipt) -> None:
        with self.changed:
            self.receipts.append(receipt)
            self.changed.notify_all()

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        with self.changed:
            if not self.changed.wait_for(condition, TIMEOUT):
                raise AssertionError(f"{what} within {TIMEOUT} s; got {self.answers}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def running() -> Iterator[Tuple[Gateway, App, Channel]]:
    binary = gateway_binary()
    data_dir = tempfile.mkdtemp(prefix="watchwire-py-e2e-")
    channel = Channel("py-e2e-1", token="py-token", signing_secret=SECRET)
    app = App(channel)
    channel.address = app.url
    gateway = None
    try:
        gateway = Gateway(binary, data_dir)
        yield gateway, app, channel
    except BaseException:
        if gateway is not None:
            print(f"gateway log:\n{gateway.log()}")
        raise
    finally:
        if gateway is not None:
            gateway.stop()
        app.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_until(what: str, condition: Callable[[], bool], show: Optional[Callable[[], Any]] = None) -> None:
    """Polls `condition` (a question to the gateway) until it holds, at most TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} within {TIMEOUT} s" + (f"; now: {show()}" if show else ""))
        time.sleep(0.02)


# The events' `data` exactly as published: the notifications' bodies must be these bytes.
DATA_1 = b'{"summary": "Standup",  "start": 1.50}'
DATA_2 = b'[1,2, {"k":"caf\\u00e9"}]'
EVENTS = (
    b'[{"resource": "/calendars/primary/events/ev1", "state": "exists", "data": ' + DATA_1 + b"},"
    b' {"resource": "/calendars/primary/events/ev2", "state": "not_exists", "data": ' + DATA_2 + b","
    b'  "changed": ["content", "properties"], "metadata": {"request_id": "r-1"}},'
    b' {"resource": "/calendars/primary/events", "state": "CREATE_USER"}]'
)


def test_a_real_gateway_delivers_signed_notifications_and_a_replay_is_flagged(running) -> None:
    gateway, app, channel = running

    # Watch: the sync may arrive before the answer, so the channel is ready for it.
    status, watch = gateway.request(
        "POST", "/calendar/v3/calendars/primary/events/watch", json.dumps(channel.body()).encode()
    )
    assert status == 200, watch
    channel.update(watch)
    assert channel.resource_id and channel.expiration_ms, watch
    app.wait_for("the sync", lambda: len(app.receipts) >= 1)
    sync = app.receipts[0].notification
    assert sync is not None and sync.is_sync and sync.message_number == 1
    assert (sync.resource_id, sync.resource_uri) == (watch["resourceId"], watch["resourceUri"])
    # The header holds whole seconds (an IMF-fixdate); the watch response milliseconds.
    assert sync.channel_expiration_ms == channel.expiration_ms // 1000 * 1000
    assert app.receipts[0].body == b""

    status, published = gateway.request("POST", "/v1/events", EVENTS)
    assert (status, published["events"]) == (200, 3), published
    app.wait_for("three events", lambda: len(app.receipts) >= 4)
    first = app.receipts[:4]
    numbers = [r.notification.message_number for r in first]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1, numbers
    assert all(r.status == 204 and r.observation.is_new and r.observation.gap is None for r in first)
    events = [r.notification for r in first[1:]]
    assert [n.previous_number for n in events] == numbers[:3], "each names the one before it"
    assert [n.state for n in events] == ["exists", "not_exists", "CREATE_USER"]
    assert [n.event_resource for n in events] == [
        "/calendars/primary/events/ev1",
        "/calendars/primary/events/ev2",
        "/calendars/primary/events",
    ]
    assert [r.body for r in first[1:]] == [DATA_1, DATA_2, b""], "bodies byte for byte as published"
    assert events[1].changed == ("content", "properties")
    assert events[1].metadata == {"request_id": "r-1"}
    assert events[2].cursor == published["cursor"]
    assert all(n.token == "py-token" and n.resource_id == watch["resourceId"] for n in events)

    def delivery_log() -> List[Dict[str, Any]]:
        status, log = gateway.request("GET", f"/v1/channels/{channel.id}/notifications")
        assert status == 200, log
        return log["items"]

    def last_attempts() -> List[Optional[str]]:
        """When each entry's last attempt was made, once all four are delivered with a 204."""
        items = delivery_log()
        if len(items) != 4 or any(i["status"] != "delivered" or i["lastStatus"] != 204 for i in items):
            return []
        return [i["recentAttempts"][-1]["at"] for i in items]

    wait_until("the gateway records the four as delivered", lambda: bool(last_attempts()), delivery_log)
    before = last_attempts()

    # A replay from where the channel's coverage began sends the three events again.
    status, replay = gateway.request(
        "POST", f"/v1/channels/{channel.id}/replay", json.dumps({"since": sync.cursor}).encode()
    )
    assert (status, replay["replaying"]) == (202, True), replay
    app.wait_for("the replayed events", lambda: len(app.receipts) >= 7)
    replayed = app.receipts[4:7]
    assert [r.notification.message_number for r in replayed] == numbers[1:], "the original numbers"
    assert all(r.observation.is_duplicate and r.status == 204 for r in replayed)
    assert [r.body for r in replayed] == [DATA_1, DATA_2, b""]
    assert app.answers == [("ok", 204)] * 7

    # The gateway took each re-send's 204 as delivered: the events' entries show the
    # replay's attempt, the sync's its only one.
    def replay_recorded() -> bool:
        after = last_attempts()
        return bool(after) and after[0] == before[0] and all(
            a is not None and b is not None and a > b for a, b in zip(after[1:], before[1:])
        )

    wait_until("the replay's attempts in the delivery log", replay_recorded, delivery_log)


def test_a_rejected_notification_reaches_the_gateway_s_delivery_log(running) -> None:
    gateway, app, _ = running
    # A channel the app does not know: its sync is refused with 400 channelIdMismatch,
    # which fails that notification for good.
    status, _ = gateway.request(
        "POST",
        "/calendars/primary/events/watch",
        json.dumps({"id": "py-e2e-unknown", "type": "web_hook", "address": app.url}).encode(),
    )
    assert status == 200
    app.wait_for("the refusal", lambda: ("channelIdMismatch", 400) in app.answers)

    def failed() -> bool:
        _, log = gateway.request("GET", "/v1/channels/py-e2e-unknown/notifications")
        return bool(log["items"]) and log["items"][0]["status"] == "failed"

    wait_until("the sync failed for good", failed)
    _, log = gateway.request("GET", "/v1/channels/py-e2e-unknown/notifications")
    entry = log["items"][0]
    assert (entry["lastStatus"], entry["lastError"]["reason"]) == (400, "httpStatus")
    assert "channelIdMismatch" in entry["recentAttempts"][0]["response"]
    assert app.receipts == []


def readme_receiver() -> str:
    """The first Python block of README.md: the complete receiver it shows first."""
    from conftest import PACKAGE

    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n") + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_receiver_runs_against_a_real_gateway(running) -> None:
    from conftest import PACKAGE

    gateway, _, _ = running
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWIRE_")}
    env.update(
        WATCHWIRE_URL=gateway.url,
        WATCHWIRE_SIGNING_SECRET=SECRET,
        PORT="0",
        PYTHONPATH=str(PACKAGE / "src"),
        PYTHONUNBUFFERED="1",
    )
    script = subprocess.Popen(
        [sys.executable, "-c", readme_receiver()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    lines: "queue.Queue[str]" = queue.Queue()

    def read() -> None:
        assert script.stdout is not None
        for raw in script.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    printed: List[str] = []

    def expect(text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(line.startswith(text) for line in printed):
            remaining = deadline - time.monotonic()
            try:
                printed.append(lines.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                raise AssertionError(f"the README receiver did not print {text!r}; it printed {printed}")

    try:
        expect("#1 sync /calendars/primary/events b''")
        event = b'{"resource": "/calendars/primary/events/ev1", "state": "exists", "data": {"summary": "Standup"}}'
        assert gateway.request("POST", "/v1/events", event)[0] == 200
        expect("#2 exists /calendars/primary/events/ev1 b'{\"summary\": \"Standup\"}'")
    finally:
        script.kill()
        script.wait(TIMEOUT)
