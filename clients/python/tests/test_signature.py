"""Standard Webhooks verification (docs/api.md §10.3), as the Rust library's signature tests."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import List, Tuple

import pytest

from watchwire_receiver import SignatureError, SigningSecret, verify_signature

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "ch-1-2"
TS = 1_700_000_000
BODY = b'{"k":1}'


def secret() -> SigningSecret:
    return SigningSecret.parse(SECRET)


def sig() -> str:
    return secret().sign(MSG_ID, TS, BODY)


def headers(signature: str) -> List[Tuple[str, str]]:
    return [("webhook-id", MSG_ID), ("webhook-timestamp", str(TS)), ("webhook-signature", signature)]


def verify(hs, now_secs: int = TS, body: bytes = BODY, tolerance=300) -> str:
    return verify_signature(secret(), hs, body, now_secs * 1000, tolerance)


def error(hs, now_secs: int = TS, body: bytes = BODY, tolerance=300) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verify(hs, now_secs, body, tolerance)
    return caught.value


def test_matches_the_published_standard_webhooks_vector() -> None:
    s = SigningSecret.parse(SECRET)
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert s.sign(msg_id, ts, body) == expected
    assert s.verify(msg_id, ts, body, expected)
    assert s.verify(msg_id, ts, body, f"v1,bm90IGl0 {expected}")
    assert not s.verify(msg_id, ts + 1, body, expected)
    assert not s.verify(msg_id, ts, b"{}", expected)


def test_accepts_a_valid_signature_and_returns_the_webhook_id() -> None:
    assert verify(headers(sig())) == MSG_ID
    # The secret as text, and the time as an aware datetime, do as well.
    at = datetime.fromtimestamp(TS, tz=timezone.utc)
    assert verify_signature(SECRET, headers(sig()), BODY, at) == MSG_ID


def test_accepts_any_of_several_signatures_during_a_key_rotation() -> None:
    other = SigningSecret.parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").sign(MSG_ID, TS, BODY)
    assert verify(headers(f"{other} {sig()}")) == MSG_ID
    assert verify(headers(f"{sig()} {other}")) == MSG_ID
    assert verify(headers(f"v0,abc {sig()}")) == MSG_ID
    assert error(headers(other)).reason == "signatureMismatch"


def test_rejects_a_changed_body_id_or_unknown_scheme() -> None:
    assert error(headers(sig()), body=b"{}").reason == "signatureMismatch"
    other_id = [("webhook-id", "msg_other")] + headers(sig())[1:]
    assert error(other_id).reason == "signatureMismatch"
    assert error(headers(sig().replace("v1,", "v2,"))).reason == "signatureMismatch"
    assert error(headers("v1,not base64!")).reason == "signatureMismatch"
    e = error(headers("v1,"))
    assert (e.reason, e.header) == ("signatureMismatch", "webhook-signature")


def test_only_the_canonical_base64_spelling_of_a_signature_counts() -> None:
    good = sig()
    digest = base64.b64decode(good[3:])
    # The last character of a 32-byte value carries two unused bits: flipping them
    # spells the same bytes in a way the Rust library refuses, so this refuses it too.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = good[-2]
    stray = alphabet[alphabet.index(last) ^ 1]
    noncanonical = good[:-2] + stray + "="
    assert base64.b64decode(noncanonical[3:]) == digest
    assert error(headers(noncanonical)).reason == "signatureMismatch"
    assert error(headers(good.rstrip("="))).reason == "signatureMismatch"  # padding required
    assert error(headers(good[:10] + "\n" + good[10:])).reason == "signatureMismatch"


def test_entries_are_separated_by_single_spaces_only() -> None:
    assert verify(headers(f"v1,x  {sig()}")) == MSG_ID
    assert error(headers(f"v1,x\t{sig()}")).reason == "signatureMismatch"


def test_enforces_the_timestamp_tolerance_both_ways() -> None:
    assert verify(headers(sig()), TS + 300) == MSG_ID
    assert verify(headers(sig()), TS - 300) == MSG_ID
    e = error(headers(sig()), TS + 301)
    assert (e.reason, e.header) == ("signatureTimestampTooOld", "webhook-timestamp")
    assert e.details == {"timestamp": TS, "now": TS + 301, "tolerance_secs": 300}
    assert str(e) == f"webhook-timestamp {TS} is more than 300 s before now ({TS + 301})"
    e = error(headers(sig()), TS - 301)
    assert (e.reason, e.details["now"]) == ("signatureTimestampInFuture", TS - 301)
    assert verify(headers(sig()), TS + 3600, tolerance=3600) == MSG_ID
    assert verify(headers(sig()), TS + 3600, tolerance=timedelta(hours=1)) == MSG_ID
    # Whole seconds: a fraction of a second of tolerance is dropped, as in Rust.
    assert error(headers(sig()), TS + 1, tolerance=0.9).reason == "signatureTimestampTooOld"


def test_the_clock_counts_whole_seconds_down() -> None:
    # 1 ms before TS + 301 s is still 300 s after TS.
    ok = verify_signature(secret(), headers(sig()), BODY, (TS + 301) * 1000 - 1)
    assert ok == MSG_ID


def test_names_missing_and_malformed_headers() -> None:
    for i, name in enumerate(["webhook-id", "webhook-timestamp", "webhook-signature"]):
        hs = headers(sig())
        del hs[i]
        e = error(hs)
        assert (e.reason, e.header) == ("missingSignatureHeader", name)
    for bad in ["", "-1614265330", "1614265330.0", "soon", "99999999999999999999", "1_700_000_000", "１７"]:
        hs = headers(sig())
        hs[1] = ("webhook-timestamp", bad)
        e = error(hs)
        assert (e.reason, e.header) == ("malformedSignatureHeader", "webhook-timestamp"), bad
    e = error(headers(sig()) + [("Webhook-Id", MSG_ID)])
    assert (e.reason, e.header) == ("malformedSignatureHeader", "webhook-id")


def test_a_timestamp_with_leading_zeros_is_signed_as_its_number() -> None:
    hs = headers(sig())
    hs[1] = ("webhook-timestamp", "000" + str(TS))
    assert verify(hs) == MSG_ID


def test_header_names_are_case_insensitive() -> None:
    upper = [(k.upper(), v) for k, v in headers(sig())]
    assert verify(upper) == MSG_ID


def test_extreme_clocks_do_not_overflow() -> None:
    far_future = 2**62
    assert verify_signature(secret(), headers(sig()), BODY, far_future, 2**64) == MSG_ID
    e = error(headers(sig()), -(2**62))
    assert e.reason == "signatureTimestampInFuture"


def test_rejects_malformed_secrets_and_never_shows_one() -> None:
    for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_AAAA", "whsec_", "whsec_" + "A" * 88]:
        with pytest.raises(ValueError):
            SigningSecret.parse(bad)
    assert SigningSecret.parse("whsec_" + "A" * 32) == SigningSecret.parse("whsec_" + "A" * 32)
    assert repr(secret()) == "SigningSecret(<redacted>)"


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError):
        verify(headers(sig()), tolerance=-1)
