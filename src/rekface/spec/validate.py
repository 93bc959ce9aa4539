"""Validate a request (or, in tests, a response) against its botocore shape.

botocore's client-side ``ParamValidator`` checks only required members, types and minimums; the
service checks the rest (maximums, patterns, enums, ranges) and answers like Coral does::

    1 validation error detected: Value 'a b' at 'collectionId' failed to satisfy constraint:
    Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+

Every violation found is counted in one ``InvalidParameterException``; the message shows the first
``MAX_REPORTED`` of them with each value cut to ``MAX_SHOWN`` characters, so its size is bounded
(under 2 KB) and the work linear in the request, whatever the request holds. Values arrive as
decoded JSON with blobs already turned into ``bytes`` by the wire codec (``rekface.adapters.wire``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.model import Shape

from rekface.errors import InvalidParameterException
from rekface.spec.javaregex import compile_java
from rekface.spec.model import input_shape

# Members whose maximum the operation enforces itself with a more specific error, as the service
# does: image bytes over 5 MB are ImageTooLargeException, not a validation error.
_OWN_MAXIMUM = {"ImageBlob"}
MAX_REPORTED = 4  # violations spelled out in a message; the rest are counted
MAX_SHOWN = 100  # characters of a value echoed in a message


def validate_request(operation: str, request: Any) -> None:
    validate_shape(input_shape(operation), request)


def validate_shape(shape: Shape, value: Any) -> None:
    errors = _Errors()
    _check(shape, value, "", errors)
    if errors.count:
        n = errors.count
        noun = "validation error" if n == 1 else "validation errors"
        message = f"{n} {noun} detected: " + "; ".join(errors.reported)
        if n > len(errors.reported):
            message += f"; and {n - len(errors.reported)} more"
        raise InvalidParameterException(message)


class _Errors:
    """Counts every violation, keeps the text of the first few."""

    def __init__(self) -> None:
        self.count = 0
        self.reported: list[str] = []

    def append(self, message: str) -> None:
        self.count += 1
        if len(self.reported) < MAX_REPORTED:
            self.reported.append(message)

    def wants_text(self) -> bool:
        return len(self.reported) < MAX_REPORTED


def _member_path(parent: str, member: str) -> str:
    name = member[:1].lower() + member[1:]
    return f"{parent}.{name}" if parent else name


def _show(value: Any, budget: int = MAX_SHOWN) -> str:
    """The value as the service echoes it (Java's toString), cut to ``budget`` characters."""
    out: list[str] = []
    size = 0
    # An explicit stack instead of recursion: text pieces and values still to render.
    stack: list[Any] = [value]
    while stack and size <= budget:
        item = stack.pop()
        if isinstance(item, _Text):
            piece = item.text
        elif isinstance(item, bytes):
            piece = f"java.nio.HeapByteBuffer[pos=0 lim={len(item)} cap={len(item)}]"
        elif isinstance(item, list):
            parts: list[Any] = [_Text("[")]
            for i, v in enumerate(item[: budget + 1]):
                parts += [_Text(", ")] if i else []
                parts.append(v)
            parts.append(_Text("]"))
            stack.extend(reversed(parts))
            continue
        elif isinstance(item, dict):
            parts = [_Text("{")]
            for i, (k, v) in enumerate(list(item.items())[: budget + 1]):
                parts += [_Text(", ")] if i else []
                parts += [_Text(f"{str(k)[:budget]}="), v]
            parts.append(_Text("}"))
            stack.extend(reversed(parts))
            continue
        elif isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 512:
            piece = f"{'-' if item < 0 else ''}<an integer of {item.bit_length()} bits>"
        else:
            piece = str(item)[: budget + 1]
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    return text if size <= budget and not stack else text[:budget] + "..."


@dataclass(frozen=True)
class _Text:
    text: str


def _fail(errors: _Errors, value: Any, path: str, constraint: str) -> None:
    if not errors.wants_text():
        errors.append("")  # counted, not spelled out: no need to render the value
        return
    where = path or "request"
    errors.append(f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: {constraint}")


def _check(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    checker = _CHECKERS.get(shape.type_name)
    if checker is None:  # pragma: no cover - the model uses only the types below
        raise TypeError(f"unsupported shape type {shape.type_name}")
    checker(shape, value, path, errors)


def _structure(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, dict):
        _fail(errors, value, path, "Member must be a structure")
        return
    for name in shape.required_members:
        if value.get(name) is None:
            _fail(errors, None, _member_path(path, name), "Member must not be null")
    members = shape.members  # type: ignore[attr-defined]
    for name, member_value in value.items():
        member = members.get(name)
        # Unknown members are ignored, as the service ignores them; null means "not given".
        if member is not None and member_value is not None:
            _check(member, member_value, _member_path(path, name), errors)


def _length(shape: Shape, value: Any, size: int, path: str, errors: _Errors, what: str) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is not None and size < lo:
        _fail(errors, value, path, f"Member must have {what} greater than or equal to {lo}")
    if hi is not None and size > hi and shape.name not in _OWN_MAXIMUM:
        _fail(errors, value, path, f"Member must have {what} less than or equal to {hi}")


def _list(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, list):
        _fail(errors, value, path, "Member must be a list")
        return
    _length(shape, value, len(value), path, errors, "length")
    member = shape.member  # type: ignore[attr-defined]
    reported: set[str] = set()
    for item in value:
        inner = _Errors()
        if item is None:
            inner.append("Member must not be null")
        else:
            _check(member, item, path, inner)
        if not inner.count:
            continue
        # Coral reports a bad element as a constraint of the whole list; each distinct
        # constraint once (10,000 bad elements are one violation, not 10,000 echoes of the list).
        constraint = inner.reported[0].split("failed to satisfy constraint: ", 1)[-1]
        if constraint not in reported:
            reported.add(constraint)
            _fail(errors, value, path, f"Member must satisfy constraint: [{constraint}]")


def _map(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, dict):
        _fail(errors, value, path, "Member must be a map")
        return
    _length(shape, value, len(value), path, errors, "length")
    key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
    for k, v in value.items():
        _check(key_shape, k, f"{path}.key", errors)
        where = f"{path}.{str(k)[:MAX_SHOWN]}"
        if v is None:
            _fail(errors, v, where, "Member must not be null")
        else:
            _check(value_shape, v, where, errors)


def _string(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, str):
        _fail(errors, value, path, "Member must be a string")
        return
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        _fail(errors, value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        return
    _length(shape, value, len(value), path, errors, "length")
    pattern = shape.metadata.get("pattern")
    if pattern and not compile_java(pattern).fullmatch(value):
        _fail(errors, value, path, f"Member must satisfy regular expression pattern: {pattern}")


def _range(shape: Shape, value: float, path: str, errors: _Errors) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is not None and value < lo:
        _fail(errors, value, path, f"Member must have value greater than or equal to {lo}")
    if hi is not None and value > hi:
        _fail(errors, value, path, f"Member must have value less than or equal to {hi}")


def _integer(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(errors, value, path, "Member must be an integer")
        return
    _range(shape, value, path, errors)


def _float(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(errors, value, path, "Member must be a number")
        return
    _range(shape, value, path, errors)


def _boolean(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, bool):
        _fail(errors, value, path, "Member must be a boolean")


def _blob(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, (bytes, bytearray)):
        _fail(errors, value, path, "Member must be a blob")
        return
    _length(shape, value, len(value), path, errors, "length")


def _timestamp(shape: Shape, value: Any, path: str, errors: _Errors) -> None:
    if not isinstance(value, (datetime, int, float)) or isinstance(value, bool):
        _fail(errors, value, path, "Member must be a timestamp")


_CHECKERS: dict[str, Callable[[Shape, Any, str, _Errors], None]] = {
    "structure": _structure,
    "list": _list,
    "map": _map,
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
    "boolean": _boolean,
    "blob": _blob,
    "timestamp": _timestamp,
}
