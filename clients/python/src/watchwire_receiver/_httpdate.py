"""IMF-fixdate (`Tue, 19 Nov 2013 01:13:52 GMT`), the format of `X-Goog-Channel-Expiration`,
parsed into milliseconds since the Unix epoch.

It accepts exactly what the Rust library accepts (chrono's `%a, %d %b %Y %H:%M:%S GMT`),
so that both decide every header alike: day and month names in any letter case, numbers
with fewer digits (`1 Jan`, `0:0:0`), any whitespace where the format has a space (none
too), a signed year, a leap second (`:60`). The weekday must match the date. Computed by
hand rather than with `datetime`, which stops at the years 1 and 9999.
"""

from __future__ import annotations

from typing import Optional, Tuple

from ._text import DIGITS, I64_MAX, trim, trim_start

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

# chrono's range of years.
MIN_YEAR = -262143
MAX_YEAR = 262142

_DAY_MS = 86_400_000


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> Tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


#: The range of milliseconds the Rust library's times can hold.
MIN_MS = days_from_civil(MIN_YEAR, 1, 1) * _DAY_MS
MAX_MS = (days_from_civil(MAX_YEAR, 12, 31) + 1) * _DAY_MS - 1


def _name(s: str, names: Tuple[str, ...]) -> Optional[Tuple[int, str]]:
    head = s[:3]
    if len(head) < 3 or not head.isascii():
        return None
    try:
        return names.index(head.lower()), s[3:]
    except ValueError:
        return None


def _digits(s: str, max_digits: Optional[int]) -> Optional[Tuple[int, str]]:
    end = 0
    while end < len(s) and s[end] in DIGITS and (max_digits is None or end < max_digits):
        end += 1
    if end == 0:
        return None
    value = int(s[:end].lstrip("0") or "0") if end <= 4300 else None
    if value is None or value > I64_MAX:
        return None
    return value, s[end:]


def _number(s: str, width: int) -> Optional[Tuple[int, str]]:
    return _digits(trim_start(s), width)


def _year(s: str) -> Optional[Tuple[int, str]]:
    s = trim_start(s)
    if s.startswith("-") or s.startswith("+"):
        found = _digits(s[1:], None)
        if found is None:
            return None
        value, rest = found
        return (-value if s[0] == "-" else value), rest
    return _digits(s, 4)


def _literal(s: str, text: str) -> Optional[str]:
    return s[len(text) :] if s.startswith(text) else None


def parse_ms(value: str) -> Optional[int]:
    """Milliseconds since the Unix epoch of an IMF-fixdate, or `None`."""
    s = trim(value)
    weekday = _name(s, _WEEKDAYS)
    if weekday is None:
        return None
    wday, s = weekday
    rest = _literal(s, ",")
    if rest is None:
        return None
    found = _number(rest, 2)
    if found is None:
        return None
    day, s = found
    month_found = _name(trim_start(s), _MONTHS)
    if month_found is None:
        return None
    month0, s = month_found
    year_found = _year(s)
    if year_found is None:
        return None
    year, s = year_found
    fields = []
    for i, separator in enumerate(("", ":", ":")):
        if separator:
            rest = _literal(s, separator)
            if rest is None:
                return None
            s = rest
        found = _number(s, 2)
        if found is None:
            return None
        number, s = found
        fields.append(number)
    rest = _literal(trim_start(s), "GMT")
    if rest != "":
        return None
    hour, minute, second = fields
    if not (1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    month = month0 + 1
    if day > _days_in_month(year, month):
        return None
    days = days_from_civil(year, month, day)
    if (days + 3) % 7 != wday:  # 1970-01-01 was a Thursday
        return None
    # A leap second (:60) counts as the second after :59, as chrono counts it.
    return days * _DAY_MS + hour * 3_600_000 + minute * 60_000 + second * 1000


def format_utc(ms: int) -> str:
    """`2030-01-01 00:00:00 UTC` (with `.123` when there are milliseconds), as the Rust
    library's messages show a time."""
    days, rest = divmod(ms, _DAY_MS)
    year, month, day = civil_from_days(days)
    seconds, millis = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    fraction = f".{millis:03d}" if millis else ""
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{year_text}-{month:02d}-{day:02d} {hours:02d}:{minutes:02d}:{seconds:02d}{fraction} UTC"
