"""Small text helpers that behave exactly like the Rust library's, where Python's own differ."""

from __future__ import annotations

import json
from typing import Optional, Tuple

# Unicode's White_Space property: what Rust's `str::trim` removes. Python's `str.strip()`
# also removes U+001C..U+001F, so it is not used where the Rust library trims.
UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# HTTP's optional whitespace around a header value.
BLANKS = " \t"

DIGITS = frozenset("0123456789")

_ASCII_LOWER = {ord(c): ord(c) + 32 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}

I64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1


def trim(s: str) -> str:
    """`s` without leading and trailing Unicode whitespace (Rust's `str::trim`)."""
    return s.strip(UNICODE_WHITESPACE)


def trim_start(s: str) -> str:
    return s.lstrip(UNICODE_WHITESPACE)


def ascii_lower(s: str) -> str:
    """Lower-cases A-Z only: `str.lower()` would also fold, say, the Kelvin sign into `k`,
    and header names are matched as ASCII."""
    return s.translate(_ASCII_LOWER)


def is_ascii_digits(s: str) -> bool:
    return s != "" and all(c in DIGITS for c in s)


def parse_decimal(s: str, maximum: int) -> Optional[int]:
    """`s` as a decimal number of ASCII digits only (no sign, no blanks, no `_`), or `None`
    when it is not one or exceeds `maximum`. Leading zeros are allowed, as Rust's integer
    parsing allows them (and Python's limit on the length of integer strings does not
    apply to them)."""
    if not is_ascii_digits(s):
        return None
    significant = s.lstrip("0") or "0"
    if len(significant) > len(str(maximum)):
        return None
    value = int(significant)
    return value if value <= maximum else None


def quote(s: str) -> str:
    """A value in double quotes, as the Rust library's messages show values (`{:?}`)."""
    return json.dumps(s, ensure_ascii=False)


def split_once(s: str, sep: str) -> Tuple[str, Optional[str]]:
    head, found, tail = s.partition(sep)
    return (head, tail) if found else (head, None)
