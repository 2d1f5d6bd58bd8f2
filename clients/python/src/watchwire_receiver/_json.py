"""Strict JSON for `X-Watchwire-Metadata`: exactly what the Rust library's parser (serde_json,
with its default limit of 127 nested arrays and objects) accepts.

Python's `json` is more lenient in four ways that are closed here: `NaN` and
`Infinity`; numbers beyond the range of a double (which become `inf`); `\\u` escapes of
lone surrogates (also in a value that a repeated key then replaces); and nesting, which
serde_json stops at 128 levels. The gateway never sends deeper metadata: its request
bodies nest at most 128 levels, the event object included.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Tuple


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


def _is_lone_surrogate_free(text: str) -> bool:
    return not any("\ud800" <= c <= "\udfff" for c in text)


def _check_strings(value: Any) -> None:
    """Refuses lone surrogates in `value`'s strings, down to (not into) nested objects,
    which their own hook checked."""
    stack: List[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _is_lone_surrogate_free(item):
                raise _Invalid("lone surrogate")
        elif isinstance(item, list):
            stack.extend(item)


def _object(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    # Every pair, also those a repeated key then replaces: serde_json refuses a lone
    # surrogate wherever it is.
    for key, value in pairs:
        if not _is_lone_surrogate_free(key):
            raise _Invalid("lone surrogate")
        _check_strings(value)
    return dict(pairs)


#: serde_json's recursion limit refuses the 128th nested array or object.
MAX_DEPTH = 127


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (brackets in strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
    return deepest


def parse_object(text: str) -> Optional[Dict[str, Any]]:
    """The JSON object `text` holds, or `None` when it holds anything else."""
    if nesting_depth(text) > MAX_DEPTH:
        return None
    try:
        value = json.loads(
            text,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
            object_pairs_hook=_object,
        )
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
