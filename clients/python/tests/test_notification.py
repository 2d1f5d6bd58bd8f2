"""Parsing notification headers (docs/api.md §4), as the Rust library's notification tests."""

from __future__ import annotations

import pytest
from conftest import event_headers, sync_headers, with_, without

from watchwire_receiver import Notification, NotificationError, headers as h, is_known_state


def parse_error(headers) -> NotificationError:
    with pytest.raises(NotificationError) as caught:
        Notification.from_headers(headers)
    return caught.value


def test_parses_a_sync_message() -> None:
    n = Notification.from_headers(sync_headers())
    assert (n.channel_id, n.message_number, n.is_sync) == ("ch-1", 1, True)
    assert n.resource_id == "rid-1"
    assert n.resource_uri == "http://127.0.0.1:8080/calendars/primary/events"
    assert n.token == "tok"
    assert n.channel_expiration_ms == 1_893_456_000_000
    assert n.channel_expiration is not None and n.channel_expiration.year == 2030
    assert n.cursor == "c-0"
    assert (n.previous_number, n.changed, n.metadata) == (None, (), None)


def test_parses_every_extension_header() -> None:
    n = Notification.from_headers(event_headers())
    assert (n.message_number, n.state, n.is_sync) == (5, "update", False)
    assert n.changed == ("content", "properties")
    assert n.event_resource == "/calendars/primary/events/e1"
    assert (n.cursor, n.previous_number) == ("c-9", 3)
    assert n.metadata == {"request_id": "r-1"}


def test_keeps_admin_style_state_names() -> None:
    n = Notification.from_headers(with_(event_headers(), h.RESOURCE_STATE, "CREATE_USER"))
    assert n.state == "CREATE_USER"


def test_names_each_missing_required_header() -> None:
    for name in h.REQUIRED_HEADERS:
        e = parse_error(without(sync_headers(), name))
        assert (e.reason, e.header, str(e)) == ("missingHeader", name, f"header {name} is missing")


def test_optional_headers_may_be_absent() -> None:
    headers = event_headers()
    for name in [
        h.CHANNEL_TOKEN,
        h.CHANNEL_EXPIRATION,
        h.CHANGED,
        h.EVENT_RESOURCE,
        h.CURSOR,
        h.PREVIOUS_NUMBER,
        h.METADATA,
    ]:
        headers = without(headers, name)
    n = Notification.from_headers(headers)
    assert (n.token, n.channel_expiration_ms, n.previous_number, n.metadata) == (None,) * 4
    assert n.changed == ()


@pytest.mark.parametrize(
    "bad",
    ["", "0", "-1", "+2", "1.0", "0x10", "one", "18446744073709551616", "1 2", "1_0", "١٢", "²"],
)
def test_rejects_unparsable_message_numbers(bad: str) -> None:
    e = parse_error(with_(sync_headers(), h.MESSAGE_NUMBER, bad))
    assert (e.reason, e.header, e.details["value"]) == ("invalidMessageNumber", h.MESSAGE_NUMBER, bad)


def test_accepts_the_largest_message_number_and_leading_zeros() -> None:
    n = Notification.from_headers(with_(event_headers(), h.MESSAGE_NUMBER, "18446744073709551615"))
    assert n.message_number == 2**64 - 1
    # Rust's integer parsing takes leading zeros, however many (Python's int() would stop
    # at 4300 digits).
    n = Notification.from_headers(with_(event_headers(), h.MESSAGE_NUMBER, "0" * 5000 + "7"))
    assert n.message_number == 7


@pytest.mark.parametrize(
    "bad", ["", "Exists", "SYNC ING", "created", "deleted", "exists,sync", "_X", "1ABC", "A" * 65]
)
def test_rejects_unknown_states(bad: str) -> None:
    e = parse_error(with_(sync_headers(), h.RESOURCE_STATE, bad))
    assert (e.reason, e.header) == ("unknownState", h.RESOURCE_STATE)
    assert not is_known_state(bad)


def test_knows_every_state() -> None:
    for state in "sync exists not_exists add remove update trash untrash change CREATE_USER X A1_B2".split():
        assert is_known_state(state), state
    assert is_known_state("A" * 64)


@pytest.mark.parametrize(
    "header,value",
    [
        (h.CHANNEL_EXPIRATION, "1893456000000"),
        (h.CHANNEL_EXPIRATION, "2030-01-01T00:00:00Z"),
        (h.CHANNEL_EXPIRATION, "Wed, 01 Jan 2030 00:00:00 GMT"),  # 2030-01-01 was a Tuesday
        (h.CHANGED, "content,,parents"),
        (h.CHANGED, "a b"),
        (h.CHANGED, "a" * 65),
        (h.PREVIOUS_NUMBER, "five"),
        (h.PREVIOUS_NUMBER, "0"),
        (h.PREVIOUS_NUMBER, "5"),  # not below the message number 5
        (h.METADATA, "[1,2]"),
        (h.METADATA, "{not json"),
        (h.METADATA, '{"n": NaN}'),
        (h.METADATA, '{"n": Infinity}'),
        (h.METADATA, '{"n": 1e400}'),
        (h.METADATA, '{"n": ' + "9" * 310 + "}"),
        (h.METADATA, '{"s": "\\ud800"}'),
        (h.METADATA, '{"\\udc00": 1}'),
        (h.METADATA, '{"a": 1} x'),
    ],
)
def test_rejects_malformed_optional_headers(header: str, value: str) -> None:
    e = parse_error(with_(event_headers(), header, value))
    assert (e.reason, e.header) == ("malformedHeader", header), value


def test_metadata_is_any_json_object_serde_json_accepts() -> None:
    for text, expected in [
        ('{"a":{"b":[1,2.5,-0,true,null]}}', {"a": {"b": [1, 2.5, 0, True, None]}}),
        ('{"big":123456789012345678901234567890}', {"big": 123456789012345678901234567890}),
        ('{"k":1,"k":2}', {"k": 2}),  # the last of a repeated key, as serde_json keeps it
        ('{"emoji":"\\ud83d\\ude00"}', {"emoji": "\U0001f600"}),
        ('{"e":"caf\\u00e9"}', {"e": "café"}),
        ("{}", {}),
    ]:
        n = Notification.from_headers(with_(event_headers(), h.METADATA, text))
        assert n.metadata == expected, text


def test_metadata_nests_at_most_127_levels_as_serde_json_allows() -> None:
    # The gateway's bodies nest at most 128 levels with the event object, so metadata
    # from it never nests deeper than this.
    deepest = '{"a":' + "[" * 126 + "]" * 126 + "}"
    assert Notification.from_headers(with_(event_headers(), h.METADATA, deepest)).metadata
    too_deep = '{"a":' + "[" * 127 + "]" * 127 + "}"
    assert parse_error(with_(event_headers(), h.METADATA, too_deep)).header == h.METADATA
    # Brackets in strings do not count; far deeper is refused, never a crash.
    in_strings = '{"a":"' + "[" * 500 + '","b":"\\\\]"}'
    assert Notification.from_headers(with_(event_headers(), h.METADATA, in_strings)).metadata
    deeper = '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"
    assert parse_error(with_(event_headers(), h.METADATA, deeper)).header == h.METADATA


def test_a_lone_surrogate_is_refused_even_where_a_repeated_key_replaces_it() -> None:
    for text in ['{"a":"\\ud800","a":1}', '{"a":["x",["\\udc00"]],"a":1}', '{"a":{"\\ud83d":1},"a":1}']:
        assert parse_error(with_(event_headers(), h.METADATA, text)).header == h.METADATA, text


def test_a_previous_number_on_sync_is_malformed() -> None:
    e = parse_error(with_(sync_headers(), h.PREVIOUS_NUMBER, "1"))
    assert (e.reason, e.header) == ("malformedHeader", h.PREVIOUS_NUMBER)


def test_an_empty_changed_header_is_an_empty_list_and_items_are_trimmed() -> None:
    assert Notification.from_headers(with_(event_headers(), h.CHANGED, "")).changed == ()
    n = Notification.from_headers(with_(event_headers(), h.CHANGED, "a ,\tb"))
    assert n.changed == ("a", "b")


def test_a_repeated_header_is_malformed_not_first_wins() -> None:
    headers = sync_headers() + [("x-goog-channel-id", "ch-2")]
    e = parse_error(headers)
    assert (e.reason, e.header, str(e)) == (
        "malformedHeader",
        h.CHANNEL_ID,
        "header x-goog-channel-id appears more than once",
    )
    # Even with the same value twice, and for an optional header.
    e = parse_error(event_headers() + [("X-GOOG-CHANGED", "content,properties")])
    assert (e.reason, e.header) == ("malformedHeader", h.CHANGED)


def test_a_repeat_of_a_header_nobody_asks_for_is_ignored() -> None:
    headers = sync_headers() + [("Accept", "a"), ("accept", "b"), ("X-Other", b"\xff")]
    assert Notification.from_headers(headers).channel_id == "ch-1"


def test_a_non_text_value_is_malformed() -> None:
    headers = [
        (k.encode(), b"\xc3\x28" if k.lower() == h.RESOURCE_URI else v.encode())
        for k, v in sync_headers()
    ]
    e = parse_error(headers)
    assert (e.reason, e.header, str(e)) == (
        "malformedHeader",
        h.RESOURCE_URI,
        "header x-goog-resource-uri is not UTF-8 text",
    )
    e = parse_error(with_(sync_headers(), h.RESOURCE_URI, "a\udcff"))
    assert (e.reason, e.header) == ("malformedHeader", h.RESOURCE_URI)


def test_utf8_values_are_text_and_only_blanks_are_trimmed() -> None:
    headers = [(k.encode(), v.encode()) for k, v in with_(sync_headers(), h.RESOURCE_URI, " \thttp://gw/é\xa0 ")]
    assert Notification.from_headers(headers).resource_uri == "http://gw/é\xa0"


def test_header_names_are_case_insensitive_in_ascii_only() -> None:
    expected = Notification.from_headers(event_headers())
    variants = [
        str.upper,
        str.lower,
        lambda s: "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(s)),
    ]
    for variant in variants:
        renamed = [(variant(k), v) for k, v in event_headers()]
        assert Notification.from_headers(renamed) == expected
        assert Notification.from_headers([(k.encode(), v.encode()) for k, v in renamed]) == expected
        assert Notification.from_headers(dict(renamed)) == expected
    # The Kelvin sign lower-cases to "k" in Unicode, but a header name is ASCII.
    kelvin = with_(without(sync_headers(), h.CHANNEL_TOKEN), "X-Goog-Channel-To\u212aen", "tok")
    assert Notification.from_headers(kelvin).token is None


def test_reads_an_email_message_with_its_repeats() -> None:
    from email.message import Message

    message = Message()
    for k, v in sync_headers():
        message[k] = v
    assert Notification.from_headers(message).channel_id == "ch-1"
    message["X-Goog-Resource-State"] = "exists"  # adds a second one
    assert parse_error(message).header == h.RESOURCE_STATE


def test_to_dict_is_the_vectors_shape() -> None:
    assert Notification.from_headers(event_headers()).to_dict() == {
        "channelId": "ch-1",
        "messageNumber": 5,
        "state": "update",
        "resourceId": "rid-1",
        "resourceUri": "http://127.0.0.1:8080/calendars/primary/events",
        "channelExpirationMs": 1_893_456_000_000,
        "token": "tok",
        "changed": ["content", "properties"],
        "eventResource": "/calendars/primary/events/e1",
        "cursor": "c-9",
        "previousNumber": 3,
        "metadata": {"request_id": "r-1"},
    }


def test_the_token_is_not_in_the_repr() -> None:
    assert "tok" not in repr(Notification.from_headers(sync_headers())).replace("token", "")
