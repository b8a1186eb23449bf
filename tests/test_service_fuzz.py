"""Fuzzing the telegram parser and the live handler (hypothesis, derandomised).

Inputs tried per default run (each test prints its count; run with ``-s`` to see them):
random byte lines 2,000; structured telegrams with mutated fields 2,000 (checked against
an independent validity oracle); random chunked streams through the service handler 300
(each 1-60 telegrams, valid scans mixed with garbage, over-long lines and random bytes,
split at random read boundaries); random bytes over a live TCP connection 60; random plan
files through ``PLAN`` 40. About 4,400 in all, each with zero crashes: every malformed
input gets a clear ``ERR`` with a documented code, every valid scan a decision.
"""
from __future__ import annotations

import asyncio
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sorter import Sorter
from sorter.constants import REASONS, STATES
from sorter.resources import seed_path
from sorter.service import protocol as P
from sorter.service.server import Connection, Service, start_server
from service_fakes import FakeTransport, ListJournal

PLAN = seed_path("plan/demo_plan.csv")
CHUTES = seed_path("plan/demo_chutes.toml")
_FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def fuzz(n):
    """Derandomised hypothesis settings with ``n`` examples (same inputs every run)."""
    return settings(_FUZZ, max_examples=n)
COUNTS = {}
_STATE = Sorter.from_files(PLAN, CHUTES).state_dict()


def engine():
    """A fresh demo engine (from a state: much quicker than re-reading the TOML)."""
    return Sorter.from_state(_STATE)


def _count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\nfuzz inputs tried: " + ", ".join(f"{k} {v}" for k, v in COUNTS.items())
          + f"; total {sum(COUNTS.values())}")


ANSWER_KINDS = {"DEST", "ACK", "ERR", "HELLO", "STATUS"}


def check_answer(line: bytes):
    """An answer is one printable ASCII line of a known kind."""
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    text = line.decode("ascii")[:-1]
    assert text.isprintable()
    kind, seq, fields = P.parse_answer(text)
    assert kind in ANSWER_KINDS
    if kind == "ERR":
        assert fields[0] in P.ERR_CODES and len(fields) == 2
    if kind == "DEST":
        assert fields[2] in REASONS and len(fields) == 3
    return kind, seq, fields


# -- the parser ----------------------------------------------------------------------------
@fuzz(2000)
@given(st.one_of(st.binary(max_size=200),
                 st.binary(min_size=P.MAX_LINE - 2, max_size=P.MAX_LINE + 40),
                 st.lists(st.binary(max_size=12), max_size=8).map(b"|".join)))
def test_parser_random_bytes(data):
    _count("random byte lines")
    try:
        tg = P.parse_line(data)
    except P.TelegramError as e:
        assert e.code in P.ERR_CODES
        assert e.seq is None or 0 <= e.seq < P.MAX_SEQ
        check_answer(P.format_err(e.seq, e.code, e.text))
        return
    # whatever parses re-formats to an equivalent telegram
    kind = type(tg).__name__
    assert 0 <= tg.seq < P.MAX_SEQ
    assert P.parse_line(data.decode("ascii")) == tg
    assert kind in {"Scan", "ChuteState", "Discharged", "Container", "PlanSwitch", "Heartbeat",
                    "Hello", "Status"}


_PRINTABLE = string.ascii_letters + string.digits + " -_./:"
field_text = st.one_of(
    st.text(alphabet=_PRINTABLE, max_size=8),
    st.text(alphabet=_PRINTABLE, min_size=60, max_size=70),
    st.text(max_size=6),                                  # any unicode, controls, '|'
    st.sampled_from(["", "0", "1", "-1", "-0", "007", "1e3", " 1", "2", "open", "full", "blocked",
                     "closed", "C001", "01422", "99999999999999999999"]),
)
seq_text = st.one_of(st.integers(-10 ** 20, 10 ** 20).map(str),
                     st.sampled_from(["", "-", "+1", "1.0", " 1", "0x1", "１"]))


def oracle(kind, seq, fields):
    """Independent statement of the field rules: None if valid, else the error code."""
    line = "|".join([kind, seq] + fields)
    if not line.isascii():
        return "not_ascii"
    if line.endswith("\r"):
        line = line[:-1]
    if not line:
        return "empty"
    if not line.isprintable():
        return "bad_char"
    parts = line.split("|")
    kind, rest = parts[0], parts[1:]
    n = {"SCAN": 6, "CHUTE": 4, "DISCHARGED": 4, "CONTAINER": 3, "PLAN": 3, "HB": 2,
         "HELLO": 3, "STATUS": 2}.get(kind)
    if n is None:
        return "unknown_type"
    if not rest or not (rest[0].isdigit() and 0 <= int(rest[0]) < 10 ** 18 and len(rest[0]) <= 18):
        return "bad_seq"
    if len(parts) != n:
        return "field_count"
    f = parts[2:]

    def ok_len(x, lo, hi=64):
        return lo <= len(x) <= hi
    if kind == "SCAN":
        if not ok_len(f[0], 1):
            return "bad_parcel"
        if not ok_len(f[1], 0):
            return "bad_destination"
        if not (f[2] == "" or (f[2].isdigit() and len(f[2]) <= 9)):
            return "bad_recirculation"
        if f[3] not in ("", "0", "1"):
            return "bad_sortable"
    elif kind == "CHUTE":
        if not ok_len(f[0], 1):
            return "bad_chute"
        if f[1] not in STATES:
            return "bad_state"
    elif kind == "DISCHARGED":
        if not ok_len(f[0], 0):
            return "bad_parcel"
        if not ok_len(f[1], 1):
            return "bad_chute"
    elif kind == "CONTAINER" and not ok_len(f[0], 1):
        return "bad_chute"
    elif kind == "PLAN" and not ok_len(f[0], 1, 1024):
        return "bad_path"
    elif kind == "HELLO" and not ok_len(f[0], 1):
        return "bad_client"
    return None


@fuzz(2000)
@given(kind=st.one_of(st.sampled_from(sorted(P.TELEGRAMS)), st.sampled_from(["", "X", "scan", "DEST"])),
       seq=seq_text, fields=st.lists(field_text, max_size=7), trim=st.booleans())
def test_parser_structured_against_oracle(kind, seq, fields, trim):
    """Right and wrong field counts, negative numbers, non-ASCII, long fields: the parser
    accepts exactly what the oracle calls valid, and names the oracle's error otherwise."""
    _count("structured telegrams")
    if trim and kind in P.TELEGRAMS:
        fields = fields[:P.TELEGRAMS[kind] - 2]
        fields += ["1"] * (P.TELEGRAMS[kind] - 2 - len(fields))
    want = oracle(kind, seq, fields)
    line = "|".join([kind, seq] + fields).encode("utf-8")
    if len(line) > P.MAX_LINE:
        want = "too_long"
    try:
        P.parse_line(line)
        got = None
    except P.TelegramError as e:
        got = e.code
    assert got == want, (line, got, want)


# -- the live handler (in process) ------------------------------------------------------------
piece = st.one_of(
    st.integers(0, 10 ** 6).map(lambda i: ("scan", i)),               # a valid scan
    st.binary(max_size=40).map(lambda b: ("bytes", b.replace(b"\n", b""))),
    st.text(max_size=30).map(lambda t: ("text", t.replace("\n", "").encode("utf-8"))),
    st.integers(P.MAX_LINE - 5, 3 * P.MAX_LINE).map(lambda n: ("long", n)),
    st.sampled_from([b"SCAN|-5|P|01422|0|1", b"SCAN|5|P|01422|-1|1", b"CHUTE|5|NOPE|open",
                     b"DISCHARGED|5||C999", b"SCAN|5|P|01422", b"HB|5", b"STATUS|5", b"",
                     b"\r", b"PLAN|5|/nonexistent/plan.csv", b"CHUTE|5|C001|closed"]).map(
        lambda b: ("fixed", b)),
)


@fuzz(300)
@given(pieces=st.lists(piece, min_size=1, max_size=60), cuts=st.lists(st.integers(1, 9000), max_size=20),
       tail=st.binary(max_size=30))
def test_handler_random_streams(pieces, cuts, tail):
    """One answer per newline, in order; every valid scan decided and journalled once."""
    _count("chunked streams")
    svc = Service(engine(), journal=ListJournal(), deadline_ms=60_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    lines, scans = [], {}
    for k, (what, x) in enumerate(pieces):
        if what == "scan":
            seq = 10 ** 7 + k
            line = f"SCAN|{seq}|FZ{k}|{['01422', '02194', '', 'zzz'][x % 4]}|{x % 5}|{x % 2}".encode()
            scans[seq] = f"FZ{k}"
        elif what == "long":
            line = b"HB|" + b"9" * x
        else:
            line = x
        lines.append(line)
    data = b"\n".join(lines) + b"\n" + tail.replace(b"\n", b"")
    pos = 0
    for c in sorted(set(cuts)):
        if c > pos:
            svc.feed(conn, data[pos:c])
            pos = c
    svc.feed(conn, data[pos:])
    out = bytes(conn.transport.out)
    answers = out.split(b"\n")[:-1]
    assert len(answers) == data.count(b"\n")
    dests = {}
    for a in answers:
        kind, seq, fields = check_answer(a + b"\n")
        if kind == "DEST":
            dests.setdefault(seq, []).append(fields)
    for seq, parcel in scans.items():             # never a lost decision
        assert len(dests[seq]) == 1 and dests[seq][0][0] == parcel
    recs = svc.journal.records
    n_dest = sum(len(v) for v in dests.values())
    assert sum(1 for r in recs if r[4] == "scan") == n_dest
    assert sum(svc.engine.counters()["by_reason"].values()) == n_dest


# -- the live handler over TCP -------------------------------------------------------------------
@fuzz(60)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_live_socket_survives_random_bytes(chunks):
    """Random bytes on a real connection: the connection stays up, the next telegram is
    answered, and every answer is a well-formed line."""
    _count("tcp byte streams")
    svc = Service(engine(), deadline_ms=60_000)

    async def main():
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        for c in chunks:
            w.write(c)
            await w.drain()
        w.write(b"\nHB|424242\n")
        await w.drain()
        got = []
        while True:
            line = await asyncio.wait_for(r.readline(), 30)
            assert line, "service closed the connection"
            got.append(line)
            if line == b"ACK|424242\n":
                break
        w.close()
        server.close()
        await server.wait_closed()
        return got

    got = asyncio.run(main())
    data = b"".join(chunks) + b"\nHB|424242\n"
    assert len(got) == data.count(b"\n")
    for line in got:
        check_answer(line)


@fuzz(40)
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.tuples(st.text(max_size=8), st.lists(st.sampled_from(
                     ["C001", "C002", "R1", "OV1", "C999", "", "c001"]), max_size=3)),
                     max_size=6).map(lambda rows: ("destination,chutes\n" + "".join(
                         f"{d},{';'.join(c)}\n" for d, c in rows)).encode("utf-8", "replace"))))
def test_plan_telegram_with_random_files(tmp_path_factory, content):
    """PLAN with a random file: a clean ACK (the plan fits) or ERR bad_plan; the old plan
    stays in force on error and scans keep being answered."""
    _count("plan files")
    path = tmp_path_factory.mktemp("plan") / "p.csv"
    path.write_bytes(content)
    svc = Service(engine(), deadline_ms=60_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    before = svc.engine.plan_name
    svc.feed(conn, b"PLAN|1|" + str(path).encode() + b"\nSCAN|2|P|01422|0|1\n")
    a, b = bytes(conn.transport.out).split(b"\n")[:2]
    kind, _, fields = check_answer(a + b"\n")
    assert kind == "ACK" or fields[0] == "bad_plan"
    if kind == "ERR":
        assert svc.engine.plan_name == before
    assert check_answer(b + b"\n")[0] == "DEST"
