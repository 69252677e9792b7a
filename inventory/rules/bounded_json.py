"""JSON from outside, within bounds: size, nesting depth, and text the database can store.

Python's json module has no depth limit of its own: a document nested a few thousand levels deep
raises RecursionError (not ValueError), which every caller that catches ValueError turns into a
crash. And it accepts what PostgreSQL refuses to store: NUL characters and lone surrogates
("\\ud800" decodes to a str that has no UTF-8 form), and NaN/Infinity, which are not JSON at all.
So every parser of untrusted JSON in the portal (the API's request bodies, agent hints, agent
snapshots, a NAD's spec.config) goes through `loads` and gets one exception, `JsonRefused`, whose
message names the limit or the rule and, where there is one, the field.

Pure: no Django, no I/O.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Text that can never be stored: NUL (PostgreSQL text and jsonb refuse it) and lone surrogates
# (no UTF-8 encoding exists).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What people may type into a field: no NUL, no C0 control character except tab, line feed and
# carriage return, no DEL, no lone surrogate. Used for request bodies and query parameters.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class JsonRefused(ValueError):
    """The document breaks a limit or a rule. `field` is the dotted path of the offending value
    ("" for the document as a whole, e.g. its size or syntax)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(
    data: bytes | str,
    *,
    max_bytes: int,
    max_depth: int,
    forbidden: re.Pattern[str] | None = CONTROL,
) -> Any:
    """Parse `data`, refusing (JsonRefused) a document larger than `max_bytes`, nested deeper
    than `max_depth` containers, that is not JSON, holds a non-finite number, or a key or string
    matching `forbidden` (None: no text check)."""
    # surrogatepass: a str may hold a lone surrogate (from a \\ud800 escape parsed upstream);
    # it is counted here and refused by the text rules, not raised as UnicodeEncodeError.
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > max_bytes:
        raise JsonRefused(f"The JSON document is larger than the limit of {max_bytes} bytes.")
    try:
        document = json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        # Deeper than the interpreter's own stack allows, so certainly deeper than any limit.
        raise JsonRefused(_too_deep(max_depth)) from None
    except ValueError as exc:  # JSONDecodeError, bytes that are no Unicode, huge integers
        raise JsonRefused(f"Not valid JSON: {exc}.") from None
    if not _plainly_within(data, max_depth=max_depth, forbidden=forbidden):
        check(document, max_depth=max_depth, forbidden=forbidden)
    return document


# For _plainly_within: the ASCII characters each of this module's patterns refuses (both are
# one character class, so ASCII text holds a match exactly when it holds one of these); every
# byte but the four brackets; a digit as "0" (a run of 300 is a number that may overflow a
# double); an innermost pair of brackets.
_ASCII_REFUSED = {
    pattern: "".join(chr(c) for c in range(128) if pattern.match(chr(c)))
    for pattern in (CONTROL, UNSTORABLE)
}
_NOT_BRACKET = bytes(c for c in range(256) if chr(c) not in "[]{}")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 300
_INNERMOST = re.compile(rb"\[\]|\{\}")


def _holds_refused(text: str, forbidden: re.Pattern[str]) -> bool:
    refused = _ASCII_REFUSED.get(forbidden)
    if refused is not None and text.isascii():
        # One scan of the text per refused character: an agent snapshot's 9 kB in a few
        # microseconds, where the pattern's search took 80.
        return any(char in text for char in refused)
    return forbidden.search(text) is not None


def _plainly_within(
    data: bytes | str, *, max_depth: int, forbidden: re.Pattern[str] | None
) -> bool:
    """True when the text rules of `check` hold for the parsed document, read off its source
    without visiting its values (an agent snapshot has thousands): no backslash (so every
    string is its source characters as they stand: no escape can decode to a forbidden one),
    no forbidden character in the source, no number that may be infinite, and brackets nested
    at most `max_depth` deep. False means "not shown this way": `check` walks the document.
    The two agree (tests/unit/test_bounded_json.py compares them). Every step is a C loop
    over the text (split, translate, `in`): a regular expression's per-character steps made
    this cost four times the parse itself."""
    if isinstance(data, bytes):
        try:
            text = data.decode()
        except UnicodeDecodeError:  # UTF-16 or UTF-32, which json.loads also takes
            return False
    else:
        text = data
    if "\\" in text or (forbidden is not None and _holds_refused(text, forbidden)):
        return False
    # Without backslashes every string is its two quotes and what stands between them, so the
    # pieces between quotes alternate: the document's skeleton (numbers, literals, brackets,
    # punctuation), then a string's characters.
    skeleton = "".join(text.split('"')[::2])
    if not skeleton.isascii():
        return False  # not JSON outside its strings (json.loads would have refused it)
    # An exponent (the only e or E left once true and false are gone) or 300 digits in a row:
    # a number that may parse to infinity.
    plain = skeleton.replace("true", "").replace("false", "")
    if "e" in plain or "E" in plain:
        return False
    source = skeleton.encode("ascii")
    if _LONG_NUMBER in source.translate(_DIGITS_AS_ZERO):
        return False
    brackets = source.translate(None, _NOT_BRACKET)
    depth = 0
    while brackets:
        # Each pass removes the innermost containers: as many passes as the deepest nesting.
        depth += 1
        if depth > max_depth:
            return False  # check() says how
        brackets, pairs = _INNERMOST.subn(b"", brackets)
        if not pairs:
            return False  # not JSON's brackets (json.loads would have refused it)
    return True


def check(
    document: Any,
    *,
    max_depth: int,
    forbidden: re.Pattern[str] | None = CONTROL,
    max_values: int | None = None,
) -> None:
    """The depth, number and text rules of `loads` for an already parsed document. Iterative,
    so that it cannot itself run out of stack. `max_values` bounds the values visited: a YAML
    document can share one list a billion times through aliases (PyYAML parses that in
    microseconds; walking or dumping it never ends)."""
    # Each entry: (value, depth, where), where is None for the document or (parent's where, key
    # or index). The dotted path is spelled out only for a refusal: building it for every value
    # cost more than the rest of the walk (an agent snapshot has thousands of values).
    stack: list[tuple[Any, int, Any]] = [(document, 0, None)]
    visited = 0
    while stack:
        value, depth, where = stack.pop()
        visited += 1
        if max_values is not None and visited > max_values:
            raise JsonRefused(f"The document holds more than the limit of {max_values} values.")
        if isinstance(value, dict):
            depth += 1
            if depth > max_depth:
                # The document's fault, not one field's (the path would be "a[0][0][0]...").
                raise JsonRefused(_too_deep(max_depth))
            for key, item in value.items():
                if isinstance(key, int):
                    stack.append((item, depth, (where, key)))
                    continue
                if forbidden is not None and forbidden.search(key) is not None:
                    problem = text_problem(key, forbidden)
                    raise JsonRefused(f"The key {key!r} is refused: {problem}", field=_path(where))
                stack.append((item, depth, (where, key)))
        elif isinstance(value, list):
            depth += 1
            if depth > max_depth:
                raise JsonRefused(_too_deep(max_depth))
            stack.extend((item, depth, (where, index)) for index, item in enumerate(value))
        elif isinstance(value, str):
            if forbidden is not None and forbidden.search(value) is not None:
                _check_text(value, forbidden, _path(where))
        elif isinstance(value, float) and not math.isfinite(value):
            raise JsonRefused("The number is out of range.", field=_path(where))


def _path(where: Any) -> str:
    """The dotted path of a value ("links[3].name") from its (parent, key) chain."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def text_problem(text: str, forbidden: re.Pattern[str] = CONTROL) -> str:
    """Why `text` is refused ("" when it is not)."""
    found = forbidden.search(text)
    if found is None:
        return ""
    char = found.group()
    if char == "\x00":
        return "NUL characters are not allowed."
    if "\ud800" <= char <= "\udfff":
        return "Lone UTF-16 surrogates (\\ud800-\\udfff) are not allowed."
    return f"Control characters are not allowed (found U+{ord(char):04X})."


def _check_text(text: str, forbidden: re.Pattern[str] | None, path: str) -> None:
    if forbidden is None:
        return
    problem = text_problem(text, forbidden)
    if problem:
        raise JsonRefused(problem, field=path)


def _too_deep(max_depth: int) -> str:
    return f"The JSON document is nested deeper than the limit of {max_depth} levels."
