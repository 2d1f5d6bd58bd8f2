"""Times as the library takes them: milliseconds since the Unix epoch (`int`), or an aware
`datetime`; `None` is the current time."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional, Union

Now = Union[None, int, datetime]
Clock = Callable[[], int]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_ms() -> int:
    """The current time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def to_ms(now: Now) -> int:
    if now is None:
        return now_ms()
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("a datetime given as the time must be aware (have a tzinfo)")
        return (now - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(now, bool) or not isinstance(now, int):
        raise TypeError(
            "a time is an aware datetime or an int of milliseconds since the Unix epoch"
        )
    return now


def to_datetime(ms: int) -> Optional[datetime]:
    """`ms` as an aware UTC `datetime`, or `None` outside the years 1 to 9999."""
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None
