"""Strict JSON for `X-Watchwire-Metadata`: what the Rust library's parser (serde_json) accepts.

Python's `json` is more lenient in three ways that are closed here: `NaN` and
`Infinity`, numbers beyond the range of a double (which become `inf`), and `\\u`
escapes of lone surrogates. One way cannot be closed without a parser of our own:
nesting deeper than the interpreter's recursion limit (about a thousand levels) is
refused here, while the Rust library accepts any depth. The gateway never sends
metadata nested deeper than 128 levels.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional


class _Invalid(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _Invalid(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid("number out of range")
    return value


def _int(text: str) -> int:
    # Beyond a double's range serde_json refuses the number (and Python's own limit on
    # the length of integer strings would refuse it differently).
    if len(text) > 400:
        raise _Invalid("number out of range")
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise _Invalid("number out of range") from None
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack: List[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_object(text: str) -> Optional[Dict[str, Any]]:
    """The JSON object `text` holds, or `None` when it holds anything else."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or _has_lone_surrogate(value):
        return None
    return value
