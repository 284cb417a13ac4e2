"""A raw HTTP/2 client: frames read one by one (``hyperframe``, ``hpack``), in the order sent.

Client libraries stop at a GOAWAY (``h2`` closes its state machine, so httpx drops every stream),
though the frames that follow it for streams it lets finish are valid HTTP/2. This reader goes
on to the end of the connection, so a test sees whether each stream's farewell came before the
server's GOAWAY, after it, or not at all.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from hpack import Decoder, Encoder
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from sse_parser import SSEParser

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WINDOW = 2**30  # so that flow control never holds the server back in a test


@dataclass
class H2Stream:
    path: str
    stream_id: int
    status: int | None = None
    parser: SSEParser = field(default_factory=SSEParser)
    ended: bool = False  # END_STREAM received: the response ended cleanly
    reset: bool = False
    farewell_after_goaway: bool = False

    def names(self) -> list[str]:
        return [e.type for e in self.parser.events if e.type != "sse-status"]

    @property
    def farewell(self) -> str | None:
        names = self.names()
        return names[-1] if names and names[-1] in ("shutdown", "restart") else None


@dataclass
class H2Connection:
    """The streams opened on one HTTP/2 connection, and what the server sent on it."""

    streams: dict[int, H2Stream]
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    goaway_last_stream: int | None = None  # set when a GOAWAY arrives
    closed: bool = False

    @property
    def goaway_seen(self) -> bool:
        return self.goaway_last_stream is not None


async def open_h2_streams(
    host: str, port: int, paths: list[str], *, tls: bool = False
) -> tuple[H2Connection, asyncio.Task[None]]:
    """One connection (h2c with prior knowledge, or TLS with ALPN ``h2``), one GET per path.

    Returns the record and the reading task, done when the server closes the connection;
    ``record.connected`` is set once every stream has its opening comment.
    """
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    if tls:
        chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        assert chosen == "h2", f"the server chose {chosen!r}, not h2"
    record = H2Connection({2 * i + 1: H2Stream(path, 2 * i + 1) for i, path in enumerate(paths)})
    encoder = Encoder()
    out = [PREFACE, SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: WINDOW - 1}).serialize()]
    out.append(WindowUpdateFrame(0, window_increment=WINDOW - 65535).serialize())
    for stream in record.streams.values():
        headers = [
            (":method", "GET"),
            (":scheme", "https" if tls else "http"),
            (":authority", f"{host}:{port}"),
            (":path", stream.path),
            ("accept", "text/event-stream"),
        ]
        frame = HeadersFrame(
            stream.stream_id, data=encoder.encode(headers), flags=["END_HEADERS", "END_STREAM"]
        )
        out.append(frame.serialize())
    writer.write(b"".join(out))
    await writer.drain()
    return record, asyncio.create_task(_read(reader, writer, record))


async def _read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: H2Connection) -> None:
    decoder = Decoder()
    try:
        while True:
            frame, length = Frame.parse_frame_header(await reader.readexactly(9))
            frame.parse_body(memoryview(await reader.readexactly(length)))
            reply = _on_frame(frame, record, decoder)
            if all(" connected" in s.parser.comments for s in record.streams.values()):
                record.connected.set()
            if reply:
                writer.write(reply)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass  # the server closed the connection
    finally:
        record.closed = True
        record.connected.set()
        writer.close()


def _on_frame(frame: Frame, record: H2Connection, decoder: Decoder) -> bytes:
    """Take in one frame; returns what the protocol asks the client to answer."""
    stream = record.streams.get(frame.stream_id)
    if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
        return SettingsFrame(0, flags=["ACK"]).serialize()
    if isinstance(frame, PingFrame) and "ACK" not in frame.flags:
        return PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]).serialize()
    if isinstance(frame, GoAwayFrame):
        record.goaway_last_stream = frame.last_stream_id
    elif isinstance(frame, HeadersFrame) and stream is not None:
        headers = dict(decoder.decode(frame.data))
        if ":status" in headers:
            stream.status = int(headers[":status"])
        stream.ended |= "END_STREAM" in frame.flags
    elif isinstance(frame, DataFrame) and stream is not None:
        had_farewell = stream.farewell is not None
        stream.parser.feed(bytes(frame.data).decode())
        if not had_farewell and stream.farewell is not None and record.goaway_seen:
            stream.farewell_after_goaway = True
        stream.ended |= "END_STREAM" in frame.flags
    elif isinstance(frame, RstStreamFrame) and stream is not None:
        stream.reset = True
    return b""
