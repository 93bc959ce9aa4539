"""Compile the model's Java regular expressions with Python's ``re``.

The model's patterns are Java regexes; all but the tag patterns are valid Python too. The tag
patterns use the Unicode classes ``\\p{L}`` (letters), ``\\p{Z}`` (separators) and ``\\p{N}``
(numbers), which ``re`` lacks: they are expanded into explicit code-point ranges, built from
``unicodedata`` once, on first use.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

_UNICODE_CLASS = re.compile(r"\\p\{([A-Z])\}")


@functools.cache
def _ranges(category_prefix: str) -> str:
    parts: list[str] = []
    start = prev = -1
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(category_prefix):
            if start < 0:
                start = cp
            elif cp != prev + 1:
                parts.append(_range(start, prev))
                start = cp
            prev = cp
    if start >= 0:
        parts.append(_range(start, prev))
    return "".join(parts)


def _range(a: int, b: int) -> str:
    return re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"


@functools.cache
def compile_java(pattern: str) -> re.Pattern[str]:
    """The pattern, compiled for ``fullmatch`` (the service matches the whole value)."""
    translated = _UNICODE_CLASS.sub(lambda m: _ranges(m.group(1)), pattern)
    return re.compile(translated)
