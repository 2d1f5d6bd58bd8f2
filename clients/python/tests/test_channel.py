"""`Channel`: the checks of docs/api.md §11 in their order, the watch body and the watch
response, as the Rust library's channel tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import NOW, SECRET, event_headers, sync_headers, with_, without

from watchwire_receiver import (
    Channel,
    ChannelError,
    NotificationError,
    SignatureError,
    SigningSecret,
    headers as h,
    parse_expiration,
)


def channel() -> Channel:
    return Channel("ch-1", token="tok")


def signed(headers, webhook_id: str, body: bytes, ts: int = NOW // 1000):
    signature = SigningSecret.parse(SECRET).sign(webhook_id, ts, body)
    headers = with_(headers, "webhook-id", webhook_id)
    headers = with_(headers, "webhook-timestamp", str(ts))
    return with_(headers, "webhook-signature", signature)


def refused(ch: Channel, headers, body: bytes = b"", now: int = NOW) -> NotificationError:
    with pytest.raises(NotificationError) as caught:
        ch.receive(headers, body, now)
    return caught.value


def test_accepts_a_matching_notification() -> None:
    n = channel().receive(sync_headers(), b"", NOW)
    assert (n.channel_id, n.message_number) == ("ch-1", 1)


def test_rejects_another_channels_notification() -> None:
    e = refused(Channel("ch-2"), sync_headers())
    assert (e.reason, e.header, e.details) == (
        "channelIdMismatch",
        h.CHANNEL_ID,
        {"expected": "ch-2", "received": "ch-1"},
    )
    assert str(e) == 'notification is for channel "ch-1", not "ch-2"'


def test_checks_the_token_only_when_the_channel_has_one() -> None:
    for other in ["tok2", "to", "TOK", ""]:
        e = refused(channel(), with_(sync_headers(), h.CHANNEL_TOKEN, other))
        assert (e.reason, e.header) == ("tokenMismatch", h.CHANNEL_TOKEN)
        assert "tok" not in str(e).replace("token", "")
    e = refused(channel(), without(sync_headers(), h.CHANNEL_TOKEN))
    assert (e.reason, e.header) == ("missingHeader", h.CHANNEL_TOKEN)
    assert Channel("ch-1").receive(with_(sync_headers(), h.CHANNEL_TOKEN, "any"), b"", NOW)


def test_compares_tokens_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import watchwire_receiver.channel as module

    compared = []

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(module.hmac, "compare_digest", compare_digest)
    refused(channel(), with_(sync_headers(), h.CHANNEL_TOKEN, "nope"))
    assert compared == [(b"nope", b"tok")]


def test_checks_the_resource_id_only_once_known() -> None:
    assert channel().receive(sync_headers(), b"", NOW)
    assert Channel("ch-1", token="tok", resource_id="rid-1").receive(sync_headers(), b"", NOW)
    e = refused(Channel("ch-1", token="tok", resource_id="rid-2"), sync_headers())
    assert (e.reason, e.details) == ("resourceIdMismatch", {"expected": "rid-2", "received": "rid-1"})


def test_rejects_notifications_after_the_expiration() -> None:
    # sync_headers() expires at 1893456000 s; NOW is before it.
    expiration = 1_893_456_000_000
    assert channel().receive(sync_headers(), b"", expiration)
    e = refused(channel(), sync_headers(), now=expiration + 1)
    assert (e.reason, e.header, e.details) == ("channelExpired", None, {"expiration_ms": expiration})
    assert str(e) == "channel expired at 2030-01-01 00:00:00 UTC"
    # The subscriber's own record counts too, even when the header is absent.
    earlier = NOW - 1000
    e = refused(
        Channel("ch-1", token="tok", expiration=earlier),
        without(sync_headers(), h.CHANNEL_EXPIRATION),
    )
    assert (e.reason, e.details["expiration_ms"]) == ("channelExpired", earlier)
    # The earlier of the two counts.
    later_record = Channel("ch-1", expiration=expiration + 10_000)
    assert refused(later_record, sync_headers(), now=expiration + 1).details["expiration_ms"] == expiration


def test_checks_in_the_documented_order() -> None:
    # Everything is wrong at once: the first check in §11's order names it.
    strict = Channel("other", token="t2", resource_id="r2", expiration=NOW - 1, signing_secret=SECRET)
    headers = event_headers()
    assert refused(strict, with_(headers, h.MESSAGE_NUMBER, "x")).reason == "invalidMessageNumber"
    assert refused(strict, headers).reason == "channelIdMismatch"
    strict.id = "ch-1"
    assert refused(strict, headers).reason == "tokenMismatch"
    strict.token = "tok"
    assert refused(strict, headers).reason == "resourceIdMismatch"
    strict.resource_id = "rid-1"
    assert refused(strict, headers).reason == "channelExpired"
    strict.expiration_ms = None
    assert refused(strict, headers).reason == "missingSignatureHeader"
    body = b'{"k":1}'
    good = signed(headers, "ch-1-4", body)
    assert refused(strict, good, body).reason == "webhookIdMismatch"
    assert strict.receive(signed(headers, "ch-1-5", body), body, NOW).message_number == 5


def test_requires_a_valid_signature_bound_to_the_notification() -> None:
    signing = Channel("ch-1", token="tok", signing_secret=SECRET)
    body = b'{"k":1}'
    good = signed(event_headers(), "ch-1-5", body)
    assert signing.receive(good, body, NOW).message_number == 5
    assert signing.receive(good, body.decode(), NOW).message_number == 5  # a str body is its UTF-8
    e = refused(signing, good, b"{}")
    assert isinstance(e, SignatureError) and e.reason == "signatureMismatch"
    e = refused(signing, event_headers(), body)
    assert (e.reason, e.header) == ("missingSignatureHeader", h.WEBHOOK_ID)
    # A correctly signed body replayed under another message number.
    e = refused(signing, with_(good, h.MESSAGE_NUMBER, "6"), body)
    assert (e.reason, e.header, e.details) == (
        "webhookIdMismatch",
        h.WEBHOOK_ID,
        {"expected": "ch-1-6", "received": "ch-1-5"},
    )
    e = refused(signing, good, body, now=NOW + 301_000)
    assert e.reason == "signatureTimestampTooOld"
    signing.signature_tolerance = timedelta(minutes=10)
    assert signing.receive(good, body, NOW + 301_000)
    # Without a secret, signature headers are not checked.
    bogus = with_(event_headers(), h.WEBHOOK_SIGNATURE, "v1,bogus")
    assert channel().receive(bogus, body, NOW)


def test_a_repeated_signature_header_is_a_malformed_signature_header() -> None:
    signing = Channel("ch-1", signing_secret=SECRET)
    body = b"{}"
    good = signed(event_headers(), "ch-1-5", body)
    e = refused(signing, good + [("Webhook-Signature", "v1,AAAA")], body)
    assert (e.reason, e.header) == ("malformedSignatureHeader", h.WEBHOOK_SIGNATURE)


def test_takes_the_time_as_a_datetime_or_now() -> None:
    at = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert channel().receive(sync_headers(), b"", at).message_number == 1
    assert channel().receive(sync_headers(), b"").message_number == 1  # before 2030
    with pytest.raises(ValueError):
        channel().receive(sync_headers(), b"", datetime(2023, 11, 14))
    with pytest.raises(TypeError):
        channel().receive(sync_headers(), b"", 1.7e9)  # type: ignore[arg-type]


def test_rejects_malformed_secrets_and_keeps_the_old_one() -> None:
    ch = Channel("c", signing_secret=SECRET)
    with pytest.raises(ChannelError) as caught:
        ch.set_signing_secret("not-a-secret")
    assert "whsec_" in str(caught.value)
    assert ch.signing_secret == SigningSecret.parse(SECRET)
    ch.set_signing_secret(None)
    assert ch.signing_secret is None
    with pytest.raises(ChannelError):
        Channel("c", signing_secret="whsec_AAAA")


def test_builds_a_watch_body() -> None:
    ch = Channel.webhook(
        "ch-1",
        "https://example.com/hook",
        token="tok",
        expiration=datetime.fromtimestamp(1_893_456_000, tz=timezone.utc),
        signing_secret=SECRET,
        params={"ttl": "3600"},
    )
    assert ch.body() == {
        "id": "ch-1",
        "type": "web_hook",
        "address": "https://example.com/hook",
        "token": "tok",
        "expiration": "1893456000000",
        "params": {"ttl": "3600", "signingSecret": SECRET},
    }
    assert Channel("c").body() == {"id": "c", "type": "web_hook"}


@pytest.mark.parametrize("expiration", ["1893456000000", 1893456000000, 1893456000000.0, " 1893456000000 ", "1.893456e12"])
def test_updates_from_a_watch_response_with_expiration_as_string_or_number(expiration) -> None:
    ch = Channel.webhook("ch-1", "https://example.com/hook", token="tok")
    ch.update(
        {
            "kind": "api#channel",
            "id": "ch-1",
            "resourceId": "rid-1",
            "resourceUri": "http://gw/calendars/primary/events",
            "expiration": expiration,
            "token": None,
        }
    )
    assert (ch.resource_id, ch.resource_uri) == ("rid-1", "http://gw/calendars/primary/events")
    assert ch.expiration_ms == 1_893_456_000_000
    assert ch.expiration == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert ch.token == "tok", "null leaves the token as it was"
    assert ch.address == "https://example.com/hook"


def test_updates_from_the_response_text() -> None:
    ch = Channel("ch-1")
    ch.update(b'{"resourceId": "rid-9", "expiration": "5"}')
    assert (ch.resource_id, ch.expiration_ms) == ("rid-9", 5)


def test_a_bad_watch_response_changes_nothing() -> None:
    ch = Channel("ch-1")
    for bad in [[], "[]", "not json", 7]:
        with pytest.raises(ChannelError) as caught:
            ch.update(bad)  # type: ignore[arg-type]
        assert caught.value.field is None
    for response, field in [
        ({"resourceId": "rid", "expiration": "soon"}, "expiration"),
        ({"resourceId": "rid", "expiration": True}, "expiration"),
        ({"resourceId": "rid", "expiration": "9223372036854775808"}, "expiration"),
        ({"resourceId": "rid", "expiration": str(2**62)}, "expiration"),  # beyond chrono's years
        ({"resourceId": 7}, "resourceId"),
        ({"resourceId": "rid", "token": 5}, "token"),
    ]:
        with pytest.raises(ChannelError) as caught:
            ch.update(response)
        assert caught.value.field == field, response
    assert (ch.resource_id, ch.token, ch.expiration_ms) == (None, None, None)


@pytest.mark.parametrize(
    "value,ms",
    [
        ("1893456000000", 1893456000000),
        ("+5", 5),
        ("-5", -5),
        ("0005", 5),
        ("1e3", 1000),
        ("5.9", 5),
        ("-5.9", -5),
        (".5", 0),
        ("9223372036854775807", 2**63 - 1),
        (-(2**63), -(2**63)),
        (1893456000000.9, 1893456000000),
        (-(2**63) - 1, -(2**63)),  # as serde_json reads it: a double, which rounds to -2^63
    ],
)
def test_parses_expirations_as_the_gateway_does(value, ms) -> None:
    assert parse_expiration(value) == ms


@pytest.mark.parametrize(
    "value",
    ["", "soon", "1_000", "١٢", "inf", "NaN", "1e400", "0x10", "9223372036854775808", "1 2", 2**63, 2**64, 1e300, None, True, [1], {"ms": 1}],
)
def test_refuses_other_expirations(value) -> None:
    with pytest.raises(ValueError):
        parse_expiration(value)


def test_the_repr_hides_secrets() -> None:
    shown = repr(Channel("ch-1", token="tok-secret", signing_secret=SECRET))
    assert "tok-secret" not in shown and "whsec_" not in shown and "MfKQ" not in shown
    assert "ch-1" in shown


def test_knows_when_it_has_expired() -> None:
    ch = Channel("c", expiration=NOW)
    assert not ch.is_expired_at(NOW) and ch.is_expired_at(NOW + 1)
    assert not Channel("c").is_expired_at(NOW)
