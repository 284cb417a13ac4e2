"""The Server-Sent Events wire format, as values and pure functions (no I/O).

The format is defined by the WHATWG HTML standard ("Server-sent events"): a stream of UTF-8
lines, each a ``field: value`` pair or a ``:comment``; a blank line ends an event. Field values
cannot hold CR or LF, so every function here either refuses them (event names, ids) or splits
the text into one line per field (data, comments): user text can never start a new field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Encoded",
    "Event",
    "comment",
    "data_text",
    "encode",
    "encode_item",
    "is_wire_text",
    "retry",
]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_KNOWN_FIELDS = frozenset({"data", "event", "id", "retry"})


class Encoded(bytes):
    """Bytes already in SSE wire format (complete events), sent exactly as they are."""

    __slots__ = ()


@runtime_checkable
class HasHTML(Protocol):
    """Anything that renders itself as HTML: FastHTML/fastcore ``FT``, markupsafe ``Markup``."""

    def __html__(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event.

    ``data`` may be text, UTF-8 bytes, an HTML component (anything with ``__html__``, such as a
    FastHTML ``FT``), a tuple or list of components, or a JSON value (dict, list, number, bool).
    ``retry`` is the reconnection time in milliseconds. ``comment`` is written before the fields
    and is ignored by browsers.
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        _check_single_line("event name", self.event)
        _check_single_line("event id", self.id)
        if self.id is not None and "\0" in self.id:
            # Browsers silently ignore an id holding NUL; refusing it is kinder than losing it.
            raise ValueError(f"SSE event id must not contain NUL: {self.id!r}")
        if self.retry is not None:
            _check_retry(self.retry)

    def encode(self) -> bytes:
        """The event as wire bytes, ending with the blank line that dispatches it."""
        parts: list[str] = []
        if self.comment is not None:
            parts.append(_comment_lines(self.comment))
        if self.retry is not None:
            parts.append(f"retry: {self.retry}\n")
        if self.id is not None:
            parts.append(f"id: {self.id}\n")
        if self.event is not None:
            parts.append(f"event: {self.event}\n")
        if self.data is not None:
            parts.append(_data_lines(data_text(self.data)))
        parts.append("\n")
        return "".join(parts).encode("utf-8")


def encode(data: Any, *, event: str | None = None, id: str | None = None) -> Encoded:
    """Encode ``data`` (text, bytes, HTML component, JSON value or an ``Event``) as one event."""
    if isinstance(data, Event):
        if event is not None or id is not None:
            raise TypeError("pass event= and id= inside the Event, not next to it")
        return Encoded(data.encode())
    return Encoded(Event(data=data, event=event, id=id).encode())


def encode_item(item: Any) -> bytes:
    """Encode one item yielded by an application's stream generator.

    Text that already is SSE wire text (one or more complete events, as FastHTML's
    ``sse_message`` produces) is sent as it is, so existing generators keep working. Any other
    text, and every other kind of item, is encoded as the data of one event.
    """
    if isinstance(item, Encoded):
        return item
    if isinstance(item, bytes | bytearray | memoryview):
        raw = bytes(item)
        text = raw.decode("utf-8")
        return raw if is_wire_text(text) else encode(text)
    if isinstance(item, str):
        return item.encode("utf-8") if is_wire_text(item) else encode(item)
    return encode(item)


def comment(text: str = "") -> bytes:
    """A comment block (ignored by clients; keeps idle connections alive)."""
    return (_comment_lines(text) + "\n").encode("utf-8")


def retry(milliseconds: int) -> bytes:
    """A block that only sets the client's reconnection time."""
    _check_retry(milliseconds)
    return f"retry: {milliseconds}\n\n".encode()


def data_text(data: Any) -> str:
    """The text an event's ``data`` field carries for ``data``."""
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data).decode("utf-8")
    if isinstance(data, HasHTML):
        return data.__html__()
    if isinstance(data, tuple | list) and data and all(isinstance(x, HasHTML) for x in data):
        return "".join(x.__html__() for x in data)
    if isinstance(data, Mapping | list | tuple | int | float | bool):
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    raise TypeError(
        f"cannot send {type(data).__name__} as SSE data: use text, bytes, an HTML component or a JSON value"
    )


def is_wire_text(text: str) -> bool:
    """Whether ``text`` is complete SSE wire text: known fields or comments, ending in a blank line."""
    lines = _LINE_BREAK.split(text)
    # A complete block ends with a line break followed by an empty line: split gives two "".
    if len(lines) < 3 or lines[-1] or lines[-2]:
        return False
    return all(_is_wire_line(line) for line in lines[:-2])


def _is_wire_line(line: str) -> bool:
    if not line or line.startswith(":"):
        return True
    name = line.partition(":")[0]
    return name in _KNOWN_FIELDS


def _data_lines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "data: " + text.replace("\n", "\ndata: ") + "\n"


def _comment_lines(text: str) -> str:
    return "".join(f": {line}\n" if line else ":\n" for line in _LINE_BREAK.split(text))


def _check_single_line(what: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"SSE {what} must be a str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {what} must not contain CR or LF: {value!r}")


def _check_retry(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"SSE retry must be a non-negative int of milliseconds, not {value!r}")
