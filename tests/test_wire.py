"""The wire format: what goes on the wire for each kind of value, checked with strings and parsers."""

from __future__ import annotations

import pytest
from fasthtml.common import Div, P, sse_message
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import given
from hypothesis import strategies as st

from graceful_sse._wire import Encoded, Event, comment, encode, encode_item, is_wire_text, retry

from sse_parser import ParsedEvent, parse


def test_text_becomes_one_data_line_per_line_whatever_the_line_ending() -> None:
    assert encode("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_fields_come_in_a_fixed_order_and_end_with_a_blank_line() -> None:
    event = Event(data="hi", event="chat", id="7", retry=1500, comment="note")
    assert event.encode() == b": note\nretry: 1500\nid: 7\nevent: chat\ndata: hi\n\n"


def test_empty_text_is_an_event_with_empty_data() -> None:
    assert encode("") == b"data: \n\n"
    assert parse(encode("").decode()).events == [ParsedEvent("message", "", "")]


def test_html_components_render_compactly_and_tuples_concatenate() -> None:
    assert encode(Div(P("x"), id="a")) == b'data: <div id="a"><p>x</p></div>\n\n'
    assert encode((P("a"), P("b"))) == b"data: <p>a</p><p>b</p>\n\n"


def test_html_text_with_newlines_cannot_break_out_of_the_data_field() -> None:
    user_text = "hi\n\nevent: shutdown\ndata: {}"
    events = parse(encode(P(user_text)).decode()).events
    assert [e.type for e in events] == ["message"]
    assert "event: shutdown" in events[0].data


def test_json_values_are_compact_and_keep_non_ascii() -> None:
    assert encode({"b": [1, 2], "t": "é"}) == 'data: {"b":[1,2],"t":"é"}\n\n'.encode()
    assert encode(3) == b"data: 3\n\n"


def test_bytes_are_utf8_data() -> None:
    assert encode("é".encode()) == "data: é\n\n".encode()
    with pytest.raises(UnicodeDecodeError):
        encode(b"\xff")


def test_unsupported_data_says_what_is_accepted() -> None:
    with pytest.raises(TypeError, match="cannot send object as SSE data"):
        encode(object())


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\n"])
@pytest.mark.parametrize("field", ["event", "id"])
def test_line_breaks_in_event_names_and_ids_are_refused(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match="must not contain CR or LF"):
        Event(data="x", **{field: bad})


def test_nul_in_an_id_is_refused_because_browsers_would_drop_the_id() -> None:
    with pytest.raises(ValueError, match="NUL"):
        Event(id="a\0b")


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_retry_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        Event(retry=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry"):
        retry(bad)  # type: ignore[arg-type]


def test_comments_split_lines_and_stay_comments() -> None:
    assert comment("a\nb") == b": a\n: b\n\n"
    assert comment() == b":\n\n"
    assert parse(comment("x\ndata: injected").decode()).events == []


def test_encoded_events_pass_through_untouched() -> None:
    chunk = encode("x")
    assert isinstance(chunk, Encoded)
    assert encode_item(chunk) is chunk


def test_stream_items_keep_fasthtml_sse_message_text_as_it_is() -> None:
    text = sse_message(Div("hi"), event="update")
    assert encode_item(text) == text.encode()
    assert encode_item(text.encode()) == text.encode()


@pytest.mark.parametrize(
    "text",
    ["hello", "hello\n\n", "hi\nevent: shutdown\n\n", " data: x\n\n", "data: x\n"],
)
def test_stream_items_that_are_not_complete_wire_text_are_sent_as_data(text: str) -> None:
    events = parse(encode_item(text).decode()).events
    assert len(events) == 1 and events[0].type == "message"


def test_stream_items_of_other_kinds_are_encoded() -> None:
    assert encode_item(P("x")) == b"data: <p>x</p>\n\n"
    assert encode_item(Event(event="e", data=1)) == b"event: e\ndata: 1\n\n"


def test_wire_text_recognition() -> None:
    assert is_wire_text("data: a\n\n")
    assert is_wire_text(": c\r\nevent: e\r\ndata\r\n\r\n")
    assert is_wire_text("id: 1\nretry: 5\ndata: a\n\ndata: b\n\n")
    assert not is_wire_text("data: a\n")
    assert not is_wire_text("")
    assert not is_wire_text("name: x\n\n")


# -- properties: a real parser reads back exactly what was encoded ------------------------------

single_line = st.text().filter(lambda s: "\r" not in s and "\n" not in s)
ids = single_line.filter(lambda s: "\0" not in s)
names = single_line.filter(lambda s: s != "")


def normalise(text: str) -> str:
    """SSE cannot carry CR: every line ending arrives as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def httpx_sse_events(wire: str) -> list[tuple[str, str, str]]:
    lines, decoder, out = SSELineDecoder(), SSEDecoder(), []
    for line in [*lines.decode(wire), *lines.flush()]:
        sse = decoder.decode(line)
        if sse is not None:
            out.append((sse.event, sse.data, sse.id))
    return out


@given(data=st.text(), event=st.none() | names, id=st.none() | ids)
def test_any_event_reads_back_exactly_in_a_spec_parser(data: str, event: str | None, id: str | None) -> None:
    parsed = parse(Event(data=data, event=event, id=id).encode().decode())
    assert parsed.events == [ParsedEvent(event or "message", normalise(data), id or "")]


@given(data=st.text(), event=st.none() | names, id=st.none() | ids)
def test_any_event_reads_back_exactly_in_httpx_sse(data: str, event: str | None, id: str | None) -> None:
    wire = Event(data=data, event=event, id=id).encode().decode()
    assert httpx_sse_events(wire) == [(event or "message", normalise(data), id or "")]


@given(st.lists(st.tuples(st.text(), st.none() | names), max_size=5), st.data())
def test_a_stream_split_anywhere_reads_back_the_same(
    items: list[tuple[str, str | None]], draw: st.DataObject
) -> None:
    wire = b"".join(Event(data=d, event=e).encode() for d, e in items).decode()
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    parser = parse("")
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        parser.feed(wire[a:b])
    assert [(e.type, e.data) for e in parser.events] == [(e or "message", normalise(d)) for d, e in items]


@given(st.text())
def test_no_stream_item_text_can_make_more_than_its_events(text: str) -> None:
    events = parse(encode_item(text).decode()).events
    if is_wire_text(text):
        assert encode_item(text) == text.encode()
    else:
        assert len(events) == 1 and events[0].data == normalise(text)
