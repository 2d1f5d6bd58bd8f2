"""`Receiver`: what to answer, as `watchwire receive` decides it (docs/api.md §12.3), and what
happens when the application's handler fails."""

from __future__ import annotations

import json
import threading
from typing import List

import pytest
from conftest import NOW, SECRET, sync_headers, with_

from watchwire_receiver import Channel, Receipt, Receiver, Tracker, error_envelope, headers as h


def receiver(**options) -> Receiver:
    return Receiver(Channel("ch-1", token="tok"), clock=lambda: NOW, **options)


def numbered(n: int, channel: str = "ch-1"):
    headers = with_(sync_headers(), h.MESSAGE_NUMBER, str(n))
    headers = with_(headers, h.CHANNEL_ID, channel)
    if n > 1:
        headers = with_(headers, h.RESOURCE_STATE, "exists")
    return headers


def test_answers_204_to_valid_notifications_flagged_or_not() -> None:
    r = receiver()
    first = r.receive(numbered(1), b"")
    assert (first.status, first.ok, first.response_body, first.response_headers) == (204, True, b"", [])
    assert first.observation is not None and first.observation.is_new
    again = r.receive(numbered(1), b"")
    assert again.status == 204 and again.observation is not None and again.observation.is_duplicate
    assert r.receive(numbered(7), b"").observation.is_new  # type: ignore[union-attr]
    late = r.receive(numbered(4), b"")
    assert late.status == 204 and late.observation.is_out_of_order  # type: ignore[union-attr]


def test_answers_400_with_the_error_envelope() -> None:
    receipt = receiver().receive(with_(sync_headers(), h.CHANNEL_TOKEN, "wrong"), b"x")
    assert (receipt.status, receipt.ok, receipt.body) == (400, False, b"x")
    assert receipt.error is not None and receipt.error.reason == "tokenMismatch"
    assert receipt.response_headers == [("Content-Type", "application/json")]
    assert json.loads(receipt.response_body) == {
        "error": {
            "code": 400,
            "message": "channel token does not match",
            "errors": [
                {"domain": "global", "reason": "tokenMismatch", "message": "channel token does not match"}
            ],
        }
    }
    missing = receiver().receive([("X-Goog-Channel-ID", "ch-1")], b"")
    envelope = json.loads(missing.response_body)
    assert envelope["error"]["errors"][0]["reason"] == "missingHeader"
    assert "x-goog-message-number" in envelope["error"]["message"]


def test_an_invalid_notification_is_not_tracked() -> None:
    r = receiver()
    r.receive(with_(numbered(1), h.CHANNEL_TOKEN, "wrong"), b"")
    assert r.tracker.channel_count() == 0
    assert r.receive(numbered(1), b"").observation.is_new  # type: ignore[union-attr]


def test_answers_405_to_other_methods() -> None:
    for method in ["GET", "PUT", "HEAD", "post"]:
        receipt = receiver().receive(numbered(1), b"", method=method)
        assert receipt.status == 405, method
        assert ("Allow", "POST") in receipt.response_headers
        assert json.loads(receipt.response_body)["error"]["errors"][0]["reason"] == "methodNotAllowed"


def test_finds_the_channel_by_id_in_a_mapping_or_a_function() -> None:
    channels = {"a": Channel("a", token="tok"), "b": Channel("b", token="tok-b")}
    for lookup in (channels, channels.get):
        r = Receiver(lookup, clock=lambda: NOW)
        assert r.receive(numbered(1, "a"), b"").status == 204
        assert r.receive(with_(numbered(1, "b"), h.CHANNEL_TOKEN, "tok-b"), b"").status == 204
        # Each channel's own checks apply.
        assert r.receive(numbered(2, "b"), b"").error.reason == "tokenMismatch"  # type: ignore[union-attr]
        unknown = r.receive(numbered(1, "c"), b"")
        assert (unknown.status, unknown.error.reason) == (400, "channelIdMismatch")  # type: ignore[union-attr]
        assert "not known here" in unknown.error.message  # type: ignore[union-attr]
        # Parsing comes first, as in Channel.receive.
        assert r.receive(with_(numbered(1, "c"), h.MESSAGE_NUMBER, "0"), b"").error.reason == "invalidMessageNumber"  # type: ignore[union-attr]


def test_checks_signatures_with_the_injected_clock() -> None:
    from watchwire_receiver import SigningSecret

    body = b'{"k":1}'
    ts = NOW // 1000
    headers = numbered(2) + [
        ("webhook-id", "ch-1-2"),
        ("webhook-timestamp", str(ts)),
        ("webhook-signature", SigningSecret.parse(SECRET).sign("ch-1-2", ts, body)),
    ]
    channel = Channel("ch-1", signing_secret=SECRET)
    assert Receiver(channel, clock=lambda: NOW).receive(headers, body).status == 204
    late = Receiver(channel, clock=lambda: NOW + 301_000).receive(headers, body)
    assert late.error is not None and late.error.reason == "signatureTimestampTooOld"


def test_a_handler_sees_every_valid_notification_and_may_choose_the_status() -> None:
    r = receiver()
    seen: List[Receipt] = []

    def handler(receipt: Receipt):
        seen.append(receipt)
        return None

    assert r.handle(numbered(1), b"", handler).status == 204
    assert r.handle(numbered(1), b"", handler).status == 204
    assert r.handle(with_(numbered(2), h.CHANNEL_TOKEN, "x"), b"", handler).status == 400
    assert [s.observation.is_duplicate for s in seen] == [False, True]  # type: ignore[union-attr]
    gone = r.handle(numbered(3), b"", lambda receipt: 410)
    assert (gone.status, gone.response_body, gone.notification.message_number) == (410, b"", 3)  # type: ignore[union-attr]


def test_a_failed_handling_is_asked_for_again_and_not_taken_for_a_duplicate() -> None:
    r = receiver()
    r.handle(numbered(1), b"")

    def broken(receipt: Receipt):
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        r.handle(numbered(2), b"", broken)
    retry = r.handle(numbered(2), b"", lambda receipt: 503)
    assert retry.status == 503 and retry.observation.is_new  # type: ignore[union-attr]
    handled = r.handle(numbered(2), b"")
    assert handled.status == 204 and handled.observation.is_new  # type: ignore[union-attr]
    # Handled once: from now on a duplicate, and a failing handler cannot undo that.
    dup = r.handle(numbered(2), b"", lambda receipt: 500)
    assert dup.observation.is_duplicate  # type: ignore[union-attr]
    assert r.handle(numbered(2), b"").observation.is_duplicate  # type: ignore[union-attr]


def test_a_2xx_from_the_handler_keeps_the_notification_seen() -> None:
    r = receiver()
    assert r.handle(numbered(1), b"", lambda receipt: 200).status == 200
    assert r.receive(numbered(1), b"").observation.is_duplicate  # type: ignore[union-attr]


def test_tracks_concurrent_requests_consistently() -> None:
    r = receiver(tracker=Tracker(window=1000))
    receipts: List[Receipt] = []
    lock = threading.Lock()

    def deliver(numbers):
        for n in numbers:
            receipt = r.receive(numbered(n), b"")
            with lock:
                receipts.append(receipt)

    threads = [threading.Thread(target=deliver, args=(range(1, 201),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(receipt.status == 204 for receipt in receipts)
    not_duplicates = [x for x in receipts if not x.observation.is_duplicate]  # type: ignore[union-attr]
    # Each number was taken as unseen exactly once, whichever thread got there first.
    assert sorted(x.notification.message_number for x in not_duplicates) == list(range(1, 201))  # type: ignore[union-attr]


def test_the_error_envelope_is_compact_utf8_json() -> None:
    body = error_envelope(400, "channelIdMismatch", 'for channel "é"')
    assert body == '{"error":{"code":400,"message":"for channel \\"é\\"","errors":[{"domain":"global","reason":"channelIdMismatch","message":"for channel \\"é\\""}]}}'.encode()


def test_each_repeated_header_is_refused_with_the_rust_library_s_reason() -> None:
    from conftest import REPEATS, full_channel, signed_event, with_repeat

    headers, body = signed_event()
    assert full_channel().receive(headers, body, NOW).message_number == 5
    for name, rust_reason, _ in REPEATS:
        headers, body = with_repeat(name)
        receipt = Receiver(full_channel(), clock=lambda: NOW).receive(headers, body)
        assert receipt.error is not None, name
        assert (receipt.error.reason, receipt.error.header) == (rust_reason, name.lower())
