"""The scan-decision service: protocol, handler, deadline, de-duplication, live TCP server."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from sorter import Sorter
from sorter.constants import REASONS, STATES
from sorter.resources import seed_path
from sorter.service import protocol as P
from sorter.service.server import Connection, Service, open_service, start_server
from service_fakes import FakeTransport

PLAN = seed_path("plan/demo_plan.csv")
WAVE2 = seed_path("plan/demo_plan_wave2.csv")
CHUTES = seed_path("plan/demo_chutes.toml")
TIMEOUT = 60.0


def make(deadline_ms=60_000.0, **kw):
    svc = Service(Sorter.from_files(PLAN, CHUTES), deadline_ms=deadline_ms, **kw)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    return svc, conn


# -- protocol ---------------------------------------------------------------------------
@pytest.mark.parametrize("line,expected", [
    (b"SCAN|1|P1|10115|0|1", P.Scan(1, "P1", "10115", 0, True)),
    (b"SCAN|2|P1||3|0\r", P.Scan(2, "P1", None, 3, False)),
    (b"SCAN|3|P1|x||", P.Scan(3, "P1", "x", 0, True)),
    (b"CHUTE|4|C001|blocked", P.ChuteState(4, "C001", "blocked")),
    (b"DISCHARGED|5||C001", P.Discharged(5, "", "C001")),
    (b"CONTAINER|6|C001", P.Container(6, "C001")),
    (b"PLAN|7|/tmp/p.csv", P.PlanSwitch(7, "/tmp/p.csv")),
    (b"HB|8", P.Heartbeat(8)),
    (b"HELLO|9|plc-1", P.Hello(9, "plc-1")),
    (b"STATUS|0", P.Status(0)),
    ("HB|999999999999999999", P.Heartbeat(10 ** 18 - 1)),
])
def test_parse_valid(line, expected):
    assert P.parse_line(line) == expected


@pytest.mark.parametrize("line,code,seq", [
    (b"", "empty", None),
    (b"\r", "empty", None),
    (b"X" * (P.MAX_LINE + 1), "too_long", None),
    (b"SCAN|5|" + b"P" * P.MAX_LINE, "too_long", 5),
    ("SCAN|5|P\u00e9|x|0|1".encode(), "not_ascii", 5),
    (b"SCAN|5|P\x00|x|0|1", "bad_char", 5),
    (b"SCAN|5|P\t|x|0|1", "bad_char", 5),
    (b"FOO|5", "unknown_type", 5),
    (b"scan|5|P|x|0|1", "unknown_type", 5),
    (b"SCAN", "bad_seq", None),
    (b"SCAN|-1|P|x|0|1", "bad_seq", None),
    (b"SCAN|1e3|P|x|0|1", "bad_seq", None),
    (b"SCAN||P|x|0|1", "bad_seq", None),
    (b"HB|1000000000000000000", "bad_seq", None),
    (b"SCAN|5|P|x|0", "field_count", 5),
    (b"SCAN|5|P|x|0|1|", "field_count", 5),
    (b"HB|5|", "field_count", 5),
    (b"SCAN|5||x|0|1", "bad_parcel", 5),
    (b"SCAN|5|" + b"P" * 65 + b"|x|0|1", "bad_parcel", 5),
    (b"SCAN|5|P|" + b"d" * 65 + b"|0|1", "bad_destination", 5),
    (b"SCAN|5|P|x|-1|1", "bad_recirculation", 5),
    (b"SCAN|5|P|x|1.5|1", "bad_recirculation", 5),
    (b"SCAN|5|P|x|1234567890|1", "bad_recirculation", 5),
    (b"SCAN|5|P|x|0|2", "bad_sortable", 5),
    (b"SCAN|5|P|x|0|yes", "bad_sortable", 5),
    (b"CHUTE|5|C001|closed", "bad_state", 5),
    (b"CHUTE|5||open", "bad_chute", 5),
    (b"DISCHARGED|5|P|", "bad_chute", 5),
    (b"CONTAINER|5|", "bad_chute", 5),
    (b"PLAN|5|", "bad_path", 5),
    (b"HELLO|5|", "bad_client", 5),
])
def test_parse_errors(line, code, seq):
    with pytest.raises(P.TelegramError) as e:
        P.parse_line(line)
    assert e.value.code == code
    assert e.value.code in P.ERR_CODES
    assert e.value.seq == seq
    err = P.format_err(e.value.seq, e.value.code, e.value.text)
    assert err.endswith(b"\n") and err.count(b"\n") == 1
    kind, s, fields = P.parse_answer(err)
    assert (kind, s, fields[0]) == ("ERR", seq, code)


def test_formatters_and_client_helpers():
    assert P.format_dest(3, "P1", "C001", "ok") == b"DEST|3|P1|C001|ok\n"
    assert P.format_ack(4) == b"ACK|4\n"
    assert P.format_err(None, "bad_seq", "a|b\nc\xe9") == b"ERR|-|bad_seq|a/b c?\n"
    assert P.format_hello(1, "plc", None) == b"HELLO|1|plc|-\n"
    assert P.parse_answer(P.format_status(2, {"a": 1, "b": "x"})) == ("STATUS", 2, ["a=1;b=x"])
    assert P.format_telegram("SCAN", 1, "P", None, 0, 1) == b"SCAN|1|P||0|1\n"
    assert P.parse_line(P.format_telegram("SCAN", 1, "P", None, 0, 1)[:-1]).destination is None
    with pytest.raises(ValueError):
        P.parse_answer(b"HELLO")


# -- the handler, in process --------------------------------------------------------------
def test_one_answer_per_telegram_in_order_and_same_rules_as_engine():
    svc, conn = make()
    ref = Sorter.from_files(PLAN, CHUTES)
    lines = [b"SCAN|1|P1|01422|0|1", b"SCAN|2|P2||0|1", b"SCAN|3|P3|nope|0|1",
             b"SCAN|4|P4|01422|9|1", b"SCAN|5|P5|01422|0|0", b"CHUTE|6|C001|blocked",
             b"SCAN|7|P6|01422|0|1", b"DISCHARGED|8|P6|C002", b"CONTAINER|9|C002", b"HB|10",
             b"CHUTE|11|NOPE|open", b"bad", b"PLAN|12|" + str(WAVE2).encode(), b"PLAN|13|/nonexistent.csv",
             b"SCAN|14|P7|01422|0|1"]
    svc.feed(conn, b"\n".join(lines) + b"\n")
    got = conn.transport.lines()
    assert len(got) == len(lines)
    assert [int(g.split("|")[1]) if g.split("|")[1] != "-" else None for g in got] == \
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, None, 12, 13, 14]
    exp = []
    for args in [("01422", 0, True), (None, 0, True), ("nope", 0, True), ("01422", 9, True),
                 ("01422", 0, False)]:
        exp.append(ref.assign(*args))
    ref.set_state("C001", "blocked")
    exp.append(ref.assign("01422"))
    ref.discharged("C002")
    ref.container_changed("C002")
    ref.switch_plan(WAVE2)
    exp.append(ref.assign("01422"))
    dests = [g for g in got if g.startswith("DEST")]
    assert [tuple(d.split("|")[3:]) for d in dests] == [(str(d.chute), d.reason) for d in exp]
    assert got[10].startswith("ERR|11|unknown_chute")
    assert got[11].startswith("ERR|-|unknown_type")
    assert got[12] == "ACK|12" and got[13].startswith("ERR|13|bad_plan")
    assert svc.engine.counters() == ref.counters()
    assert svc.n_errors == 3 and svc.n_scans == 7


def test_partial_lines_and_overlong_lines_across_reads():
    svc, conn = make()
    data = b"SCAN|1|P1|01422|0|1\nHB|2\n" + b"HB|3|" + b"x" * (3 * P.MAX_LINE) + b"\nHB|4\n"
    for i in range(0, len(data), 7):          # 7-byte reads
        svc.feed(conn, data[i:i + 7])
    got = conn.transport.lines()
    assert got[0].startswith("DEST|1|P1|") and got[1] == "ACK|2"
    assert got[2].startswith("ERR|3|too_long")
    assert got[3] == "ACK|4" and len(got) == 4
    # one huge read, a newline-less flood, then a normal telegram
    svc.feed(conn, b"HB|5|" + b"y" * (10 * P.MAX_LINE))
    svc.feed(conn, b"z" * P.MAX_LINE)
    svc.feed(conn, b"zz\nHB|6\n")
    assert conn.transport.lines()[4:] == ["ERR|5|too_long|line longer than 4096 bytes", "ACK|6"]
    assert len(conn.buf) == 0


def test_late_scans_get_the_late_reject_and_are_counted():
    """A scan read longer ago than the deadline gets engine.reject('late') (no timing:
    the read time is handed in)."""
    svc, conn = make(deadline_ms=50.0)
    ref = Sorter.from_files(PLAN, CHUTES)
    import time
    t_old = time.perf_counter() - 1.0        # read a second ago
    svc.feed(conn, b"SCAN|1|P1|01422|0|1\nSCAN|2|P2|01422|0|1\nHB|3\n", t=t_old)
    late = ref.reject("late")
    assert conn.transport.lines() == [f"DEST|1|P1|{late.chute}|late", f"DEST|2|P2|{late.chute}|late",
                                      "ACK|3"]
    assert svc.n_late == 2
    assert svc.engine.counters()["by_reason"]["late"] == 2
    svc.feed(conn, b"SCAN|4|P3|01422|0|1\n", t=time.perf_counter() + 3600)    # read "now"
    assert conn.transport.lines()[-1].endswith("|ok")
    assert svc.n_late == 2


def test_resent_telegrams_get_the_same_answer_once_applied():
    svc, conn = make()
    svc.feed(conn, b"HELLO|1|plc\nSCAN|2|P1|01422|0|1\nDISCHARGED|3|P1|C001\nCONTAINER|4|C001\n")
    first = conn.transport.lines()
    c0 = svc.engine.counters()
    # reconnect as the same client and re-send everything
    conn2 = Connection(svc)
    conn2.connection_made(FakeTransport())
    svc.feed(conn2, b"HELLO|1|plc\nSCAN|2|P1|01422|0|1\nDISCHARGED|3|P1|C001\nCONTAINER|4|C001\n")
    assert conn2.transport.lines()[0] == "HELLO|1|plc|4"
    assert conn2.transport.lines()[1:] == first[1:]
    assert svc.engine.counters() == c0 and svc.n_replayed == 3
    # the same telegram from another client is new; a recirculated scan (higher count) is new
    svc.feed(conn2, b"HELLO|5|other\nSCAN|2|P1|01422|0|1\nHELLO|6|plc\nSCAN|7|P1|01422|1|1\n")
    assert svc.engine.counters()["by_reason"]["ok"] == c0["by_reason"]["ok"] + 2


def test_dedupe_window_forgets_oldest():
    svc, conn = make(dedupe_window=2)
    svc.feed(conn, b"SCAN|1|P1|01422|0|1\nSCAN|2|P2|01422|0|1\nSCAN|3|P3|01422|0|1\n")
    svc.feed(conn, b"SCAN|1|P1|01422|0|1\nSCAN|3|P3|01422|0|1\n")
    assert svc.n_replayed == 1 and svc.n_scans == 4


def test_status_and_heartbeat():
    svc, conn = make()
    svc.feed(conn, b"HB|1\nSCAN|2|P|01422|0|1\nSTATUS|3\n")
    st = conn.transport.lines()[2]
    kind, seq, (body,) = P.parse_answer(st)
    d = dict(kv.split("=") for kv in body.split(";"))
    assert kind == "STATUS" and seq == 3
    assert d["scans"] == "1" and d["telegrams"] == "3" and d["durability"] == "none"


def test_service_rejects_bad_settings():
    with pytest.raises(ValueError, match="deadline"):
        make(deadline_ms=0)
    with pytest.raises(ValueError):
        make(snapshot_every=0)


# -- the live TCP server -------------------------------------------------------------------
async def _client(port, lines):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(lines))
    await writer.drain()
    out = []
    for _ in lines:
        out.append((await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().rstrip("\n"))
    writer.close()
    return out


def test_live_server_several_clients_share_one_engine():
    svc, _ = open_service(PLAN, CHUTES, deadline_ms=60_000)
    n_clients, n = 6, 300

    async def main():
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        streams = []
        for c in range(n_clients):
            lines = []
            for i in range(n):
                if i % 50 == 49:
                    lines.append(f"garbage {c} {i}\n".encode())
                elif i % 10 == 9:
                    lines.append(f"HB|{i}\n".encode())
                else:
                    lines.append(f"SCAN|{i}|C{c}-{i}|01422|0|1\n".encode())
            streams.append(lines)
        res = await asyncio.gather(*[_client(port, s) for s in streams])
        status = await _client(port, [b"STATUS|1\n"])
        server.close()
        await server.wait_closed()
        return streams, res, status

    streams, res, status = asyncio.run(main())
    for lines, answers in zip(streams, res):
        assert len(answers) == len(lines)
        for line, ans in zip(lines, answers):
            if line.startswith(b"SCAN"):
                seq, parcel = line.decode().split("|")[1:3]
                assert ans.startswith(f"DEST|{seq}|{parcel}|")
                assert ans.split("|")[4] in REASONS
            elif line.startswith(b"HB"):
                assert ans == "ACK|" + line.decode().split("|")[1].strip()
            else:
                assert ans.startswith("ERR|-|unknown_type")
    n_scans = sum(1 for s in streams for x in s if x.startswith(b"SCAN"))
    assert svc.engine.counters()["by_reason"]["ok"] + svc.engine.counters()["by_reason"]["overflow"] \
        + svc.engine.counters()["by_reason"]["no_chute_available"] == n_scans
    assert f"scans={n_scans}" in status[0]


def test_live_server_survives_a_client_that_vanishes():
    svc, _ = open_service(PLAN, CHUTES, deadline_ms=60_000)

    async def main():
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"SCAN|1|P1|01422|0|1\n" * 1000 + b"SCAN|2|P2|01")   # half a line, then gone
        w.transport.abort()
        out = await _client(port, [b"SCAN|3|P3|01422|0|1\n", b"CHUTE|4|C003|" + STATES[3].encode() + b"\n"])
        server.close()
        await server.wait_closed()
        return out

    out = asyncio.run(main())
    assert out[0].startswith("DEST|3|P3|") and out[1] == "ACK|4"


def test_serve_cli_errors_are_one_line():
    cmd = [sys.executable, "-c", "import sys; from sorter.cli import main; sys.exit(main())"]
    p = subprocess.run(cmd + ["serve", "--port", "0"], capture_output=True, text=True, timeout=TIMEOUT,
                       cwd="/")
    assert p.returncode == 2
    assert "--plan and --chutes" in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1


def test_loadgen_against_a_live_service(tmp_path):
    """`sorter serve` + `sorter loadgen` on loopback: every scan answered, no errors."""
    import json

    cmd = [sys.executable, "-c", "import sys; from sorter.cli import main; sys.exit(main())"]
    proc = subprocess.Popen(cmd + ["serve", "--plan", str(PLAN), "--chutes", str(CHUTES), "--port", "0",
                                   "--journal", str(tmp_path / "s.db")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = line.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1]
        p = subprocess.run(cmd + ["loadgen", "--port", port, "--rate", "400", "--seconds", "0.5",
                                  "--connections", "2", "--json"],
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        assert r["sent"] == r["answered"] == 200 and r["errors"] == 0 and r["unanswered"] == 0
        assert r["p50_us"] > 0
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
    assert proc.returncode == 0
    from sorter.service.journal import journal_info
    assert journal_info(tmp_path / "s.db")["by_kind"]["scan"] == 200
