"""A spec-faithful Server-Sent Events parser (WHATWG HTML, "Parsing an event stream").

Written from the standard, independently of the library's encoder, so that tests can check the
encoder against it. It also keeps what the standard discards (comments, retry) for assertions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ParsedEvent:
    type: str
    data: str
    last_event_id: str


@dataclass
class SSEParser:
    events: list[ParsedEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str = ""
    _data: list[str] = field(default_factory=list)
    _has_data: bool = False
    _type: str = ""
    _id_buffer: str = ""
    _pending: str = ""
    _cr_seen: bool = False

    def feed(self, text: str) -> list[ParsedEvent]:
        """Parse a chunk of the stream; returns the events it completed."""
        before = len(self.events)
        if self._cr_seen and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._cr_seen = text.endswith("\r")
        buf = self._pending + text
        start = 0
        i = 0
        while i < len(buf):
            ch = buf[i]
            if ch in "\r\n":
                self._line(buf[start:i])
                if ch == "\r" and i + 1 < len(buf) and buf[i + 1] == "\n":
                    i += 1
                start = i + 1
            i += 1
        self._pending = buf[start:]
        return self.events[before:]

    def _line(self, line: str) -> None:
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            self.comments.append(line[1:])
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            self.retry = int(value)

    def _dispatch(self) -> None:
        self.last_event_id = self._id_buffer
        lines, has_data = self._data, self._has_data
        self._data, self._has_data = [], False
        event_type, self._type = self._type, ""
        if not has_data:  # the data buffer is empty: nothing is dispatched
            return
        # Each data line adds value + LF and the last LF is removed: the same as joining.
        self.events.append(ParsedEvent(event_type or "message", "\n".join(lines), self.last_event_id))


def parse(text: str) -> SSEParser:
    parser = SSEParser()
    parser.feed(text)
    return parser
