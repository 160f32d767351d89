"""The sans-I/O control protocol: framing, request parsing, argument specs, peer checks, tables."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fractald.control import render
from fractald.control.protocol import (
    Arg,
    CommandError,
    LineBuffer,
    LineTooLong,
    PeerCred,
    encode,
    parse_request,
    peer_allowed,
    request_id_of,
    validate_args,
)

# --------------------------------------------------------------------------- framing


def test_line_buffer_splits_across_chunks() -> None:
    buf = LineBuffer(100)
    assert buf.feed(b'{"a":') == []
    assert buf.feed(b'1}\n{"b"') == [b'{"a":1}']
    assert buf.feed(b":2}\n\n") == [b'{"b":2}', b""]
    assert buf.tail() == b""


def test_line_buffer_caps_a_line_without_newline() -> None:
    buf = LineBuffer(10)
    buf.feed(b"0123456789")  # exactly the cap is fine
    buf.check()
    assert buf.feed(b"x") == [] and buf.overflowed
    with pytest.raises(LineTooLong) as info:
        buf.check()
    assert info.value.code == "line_too_long"
    assert info.value.details["limit"] == 10
    assert buf.feed(b"\nmore\n") == []  # dead once overflowed


def test_line_buffer_caps_a_complete_long_line_but_keeps_the_lines_before() -> None:
    buf = LineBuffer(10)
    assert buf.feed(b"ok\n01234567890\nlater\n") == [b"ok"]
    assert buf.overflowed
    buf = LineBuffer(10)
    assert buf.feed(b"0123456789\nab") == [b"0123456789"]
    assert not buf.overflowed


@given(st.lists(st.binary(max_size=50), max_size=20))
def test_line_buffer_reassembles_any_chunking(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    buf = LineBuffer(10_000)
    lines: list[bytes] = []
    for chunk in chunks:
        lines.extend(buf.feed(chunk))
    assert lines + [buf.tail()] == data.split(b"\n")


def test_encode_is_one_line_and_replaces_non_finite_numbers() -> None:
    line = encode({"id": 1, "ok": True, "result": {"x": float("nan"), "s": "a\nb", "t": (1, 2)}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"id": 1, "ok": True, "result": {"x": None, "s": "a\nb",
                                                                  "t": [1, 2]}}


# --------------------------------------------------------------------------- requests


def test_parse_request_fills_args() -> None:
    req = parse_request(b'{"id": "a1", "cmd": "status"}')
    assert (req.id, req.cmd, req.args) == ("a1", "status", {})
    req = parse_request(b'{"id": 3, "cmd": "signals", "args": {"last": 5}}\r')
    assert (req.id, req.cmd, req.args) == (3, "signals", {"last": 5})


@pytest.mark.parametrize(("line", "code", "keeps_id"), [
    (b"not json", "bad_json", False),
    (b"\xff\xfe{}", "bad_json", False),
    (b"[1, 2]", "bad_request", False),
    (b'"ping"', "bad_request", False),
    (b'{"id": [1], "cmd": "ping"}', "bad_request", False),
    (b'{"id": true, "cmd": "ping"}', "bad_request", False),
    (b'{"id": 9, "args": {}}', "bad_request", True),
    (b'{"id": 9, "cmd": ""}', "bad_request", True),
    (b'{"id": 9, "cmd": 5}', "bad_request", True),
    (b'{"id": 9, "cmd": "ping", "args": [1]}', "bad_request", True),
    (b'{"id": 9, "cmd": "ping", "extra": 1}', "bad_request", True),
    (b"[" * 100_000, "bad_json", False),
])
def test_parse_request_rejects_with_code(line: bytes, code: str, keeps_id: bool) -> None:
    with pytest.raises(CommandError) as info:
        parse_request(line)
    assert info.value.code == code
    assert request_id_of(info.value) == (9 if keeps_id else None)


# --------------------------------------------------------------------------- arguments

SPEC = (
    Arg("symbol", str, required=True),
    Arg("last", int, default=10, minimum=1, maximum=500),
    Arg("ratio", float, minimum=0, maximum=1),
    Arg("all", bool, default=False),
    Arg("period", str, choices=["day", "week"]),
    Arg("kind", list, choices=["bar", "fill"]),
)


def test_validate_args_fills_defaults_and_widens_ints_to_floats() -> None:
    out = validate_args("x", SPEC, {"symbol": "BTC", "ratio": 1, "kind": ["bar"]})
    assert out == {"symbol": "BTC", "last": 10, "ratio": 1.0, "all": False, "period": None,
                   "kind": ["bar"]}
    assert isinstance(out["ratio"], float)


@pytest.mark.parametrize(("args", "argument", "fragment"), [
    ({}, "symbol", "is required"),
    ({"symbol": 5}, "symbol", "must be a string"),
    ({"symbol": "B", "last": "5"}, "last", "must be an integer"),
    ({"symbol": "B", "last": True}, "last", "must be an integer"),
    ({"symbol": "B", "last": 0}, "last", "out of range"),
    ({"symbol": "B", "ratio": 1.5}, "ratio", "out of range"),
    ({"symbol": "B", "ratio": float("nan")}, "ratio", "must be a number"),
    ({"symbol": "B", "all": 1}, "all", "must be a boolean"),
    ({"symbol": "B", "period": "year"}, "period", "not allowed"),
    ({"symbol": "B", "kind": ["bar", "tick"]}, "kind", "not allowed"),
    ({"symbol": "B", "kind": "bar"}, "kind", "list of strings"),
    ({"symbol": "B", "lats": 3}, "lats", "unknown argument"),
])
def test_validate_args_names_the_argument_and_what_is_allowed(
        args: dict, argument: str, fragment: str) -> None:
    with pytest.raises(CommandError) as info:
        validate_args("signals", SPEC, args)
    err = info.value.as_error()
    assert err["code"] == "bad_args"
    assert err["argument"] == argument
    assert fragment in err["message"]
    assert "allowed" in err["message"] and err["message"].startswith("signals:")


def test_bad_choice_lists_the_choices() -> None:
    with pytest.raises(CommandError) as info:
        validate_args("report", SPEC, {"symbol": "B", "period": "year"})
    assert "one of: day, week" in info.value.message


def test_arg_rejects_unsupported_type() -> None:
    with pytest.raises(ValueError):
        Arg("x", dict)


# --------------------------------------------------------------------------- peers


@pytest.mark.parametrize(("peer", "uids", "gids", "allowed"), [
    (PeerCred(1, 0, 0), set(), set(), True),  # root always
    (PeerCred(1, 1000, 1000), set(), set(), True),  # the daemon's own user always
    (PeerCred(1, 1234, 1234), set(), set(), False),
    (PeerCred(1, 1234, 1234), {1234}, set(), True),
    (PeerCred(1, 1234, 1234), set(), {1234}, True),
    (PeerCred(1, 1234, 1234, groups={50, 60}), set(), {60}, True),  # supplementary group
    (PeerCred(1, 1234, 1234, groups={50}), {99}, {60}, False),
])
def test_peer_allowed(peer: PeerCred, uids: set[int], gids: set[int], allowed: bool) -> None:
    assert peer_allowed(peer, uids, gids, own_uid=1000) is allowed


# --------------------------------------------------------------------------- tables


def test_render_sections_tables_and_timestamps() -> None:
    text = render.render({
        "state": "ACTIVE", "uptime_s": 12.5, "paused": False,
        "actors": [{"name": "feed", "restarts": 0, "last_beat_ts": 1_700_000_000_000},
                   {"name": "router", "restarts": 12, "last_beat_ts": None}],
        "gates": {"store": True},
    })
    lines = text.splitlines()
    assert lines[0].split() == ["state", "ACTIVE"]
    assert lines[2].split() == ["paused", "no"]
    assert "actors" in lines and "gates" in lines
    header = lines[lines.index("actors") + 1]
    assert header.split() == ["name", "restarts", "last_beat_ts"]
    assert "2023-11-14 22:13:20Z" in text
    # numbers are right-aligned: the restarts column ends at the same place on every row
    rows = lines[lines.index("actors") + 3: lines.index("actors") + 5]
    assert rows[0].index("0") + 1 == rows[1].index("12") + 2
    assert lines[-1].split() == ["store", "yes"]


def test_render_empty_and_scalars() -> None:
    assert render.render([]) == "(none)"
    assert render.render("pong") == "pong"
    assert render.render({"symbols": ["BTC", "ETH"]}).split() == ["symbols", "BTC,", "ETH"]
    assert [render.format_float(v) for v in (7.7185e-05, 0.5, -0.25, 2.61, 61.5, 3600.0,
                                              10123.456, 1e-12, -1e-12)] == [
        "0.00007719", "0.5", "-0.25", "2.61", "61.5", "3600", "10123.46", "0", "0"]
    assert render.format_scalar("") == '""'


def test_csv_of_rows_and_of_nested_report_round_trips() -> None:
    rows = [{"symbol": "BTC", "pnl": 1.5}, {"symbol": "ETH", "pnl": -2.0, "note": None}]
    parsed = list(csv.DictReader(io.StringIO(render.to_csv(rows))))
    assert parsed == [{"symbol": "BTC", "pnl": "1.5", "note": ""},
                      {"symbol": "ETH", "pnl": "-2.0", "note": ""}]
    report = {"equity": {"start": 100, "end": 110}, "by_strategy": [{"name": "ob", "n": 3}]}
    parsed = dict(csv.reader(io.StringIO(render.to_csv(report))))
    assert parsed == {"key": "value", "equity.start": "100", "equity.end": "110",
                      "by_strategy.0.name": "ob", "by_strategy.0.n": "3"}


_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)


@given(_any_json)
def test_any_result_renders_as_table_and_csv(value: object) -> None:
    assert isinstance(render.render(value), str)
    rows = list(csv.reader(io.StringIO(render.to_csv(value), newline="")))
    width = len(rows[0])
    assert all(len(row) == width for row in rows)  # every field quoted as it needs
    if isinstance(value, dict):
        assert [row[0] for row in rows[1:]] == list(render.flatten(value))
    json.loads(encode({"result": value}))  # and the wire form is strict JSON
