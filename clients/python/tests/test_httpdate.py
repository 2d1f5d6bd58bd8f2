"""IMF-fixdate parsing for `X-Goog-Channel-Expiration`: the same dates as the Rust library
(chrono's `%a, %d %b %Y %H:%M:%S GMT`), over the whole calendar."""

from __future__ import annotations

import email.utils

import pytest

from watchwire_receiver._httpdate import (
    MAX_MS,
    MIN_MS,
    civil_from_days,
    days_from_civil,
    format_utc,
    parse_ms,
)


def test_parses_googles_example() -> None:
    assert parse_ms("Tue, 19 Nov 2013 01:13:52 GMT") == 1_384_823_632_000


def test_agrees_with_the_standard_library_across_the_calendar() -> None:
    # Every weekday, month, leap day and single-digit field over two centuries.
    seconds = 0
    while seconds < 7_000_000_000:
        text = email.utils.formatdate(seconds, usegmt=True)
        assert parse_ms(text) == seconds * 1000, text
        seconds += 86_400 * 3 + 3_723  # 3 days, 1 h 2 min 3 s


def test_civil_dates_round_trip_far_from_the_epoch() -> None:
    for days in range(-800_000, 800_000, 997):
        assert days_from_civil(*civil_from_days(days)) == days
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 3, 1) == 11_017
    assert civil_from_days(-719_528) == (0, 1, 1)


@pytest.mark.parametrize(
    "text,ms",
    [
        # What chrono's parser also takes: names in any case, fewer digits, other or no
        # whitespace where the format has a space, a signed year, a leap second.
        ("tue, 19 NOV 2013 01:13:52 GMT", 1_384_823_632_000),
        ("Tue, 1 Jan 2030 0:0:0 GMT", 1_893_456_000_000),
        ("Tue,01 Jan 2030 00:00:00GMT", 1_893_456_000_000),
        ("Tue,\t01\n Jan  2030 00: 00: 00 GMT", 1_893_456_000_000),
        ("  Tue, 01 Jan 2030 00:00:00 GMT\u3000", 1_893_456_000_000),
        ("Tue, 01 Jan +2030 00:00:00 GMT", 1_893_456_000_000),
        ("Tue, 01 Jan 0002030 00:00:00 GMT", None),  # 4 digits at most without a sign
        ("Sat, 01 Jan 0000 00:00:00 GMT", days_from_civil(0, 1, 1) * 86_400_000),
        ("Fri, 01 Jan -0001 00:00:00 GMT", days_from_civil(-1, 1, 1) * 86_400_000),
        ("Sun, 31 Dec 1989 23:59:60 GMT", 631_152_000_000),
        ("Thu, 29 Feb 2024 12:00:00 GMT", 1_709_208_000_000),
    ],
)
def test_accepts_what_the_rust_library_accepts(text: str, ms: int) -> None:
    assert parse_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2013-11-19T01:13:52Z",
        "1893456000000",
        "Wed, 01 Jan 2030 00:00:00 GMT",  # a Tuesday
        "Tuesday, 01 Jan 2030 00:00:00 GMT",
        "Tue, 01 January 2030 00:00:00 GMT",
        "Tue, 01 Jan 2030 00:00:00 UTC",
        "Tue, 01 Jan 2030 00:00:00 gmt",
        "Tue, 01 Jan 2030 00:00:00 GMT+1",
        "Tue , 01 Jan 2030 00:00:00 GMT",
        "Tue, 01 Jan 2030 00 :00:00 GMT",
        "Tue, 01 Jan 2030 24:00:00 GMT",
        "Tue, 01 Jan 2030 00:60:00 GMT",
        "Tue, 01 Jan 2030 00:00:61 GMT",
        "Tue, 00 Jan 2030 00:00:00 GMT",
        "Thu, 29 Feb 2023 00:00:00 GMT",
        "Tue, 32 Jan 2030 00:00:00 GMT",
        "Tue, 001 Jan 2030 00:00:00 GMT",
        "Tue, 01 Jan 2030 00:00:00.5 GMT",
        "Tue, ١ Jan 2030 00:00:00 GMT",
        "Mon, 01 Jan +262143 00:00:00 GMT",
        "Mon, 01 Jan +99999999999999999999 00:00:00 GMT",
    ],
)
def test_refuses_everything_else(text: str) -> None:
    assert parse_ms(text) is None


def test_the_range_is_chrono_s() -> None:
    assert format_utc(MIN_MS) == "-262143-01-01 00:00:00 UTC"
    assert format_utc(MAX_MS) == "+262142-12-31 23:59:59.999 UTC"


def test_formats_times_as_the_rust_library_shows_them() -> None:
    assert format_utc(1_893_456_000_000) == "2030-01-01 00:00:00 UTC"
    assert format_utc(1_893_456_000_123) == "2030-01-01 00:00:00.123 UTC"
    assert format_utc(-1) == "1969-12-31 23:59:59.999 UTC"
