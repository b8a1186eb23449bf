"""QA session 13: the scan-decision service and the capacity sweeps used as outsiders would.

(a) A WCS/PLC integrator talking to `sorter serve`: many clients at once, telegrams cut at
every byte (a PLAN among them), bad bytes, clients that never send, vanish mid-telegram or
flood without reading; SIGKILL under an overload and a restart; damaged journals.
(b) A planner running `sorter sweep`: keys the file does not set, a run that fails part-way,
a worker killed, `kill PID` on a running sweep, the `--dask local` backend.

Tests named ``..._regression`` failed before the fix they pin (see each docstring); the
others check behaviour that held. Live sockets only on ephemeral localhost ports, every wait
bounded.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sorter.sweep as sweep_mod
from sorter import Sorter
from sorter.cli import main
from sorter.constants import REASONS
from sorter.errors import InputError
from sorter.resources import seed_path
from sorter.service.journal import apply_record, restore
from sorter.service.server import MAX_BACKLOG, Connection, Service, open_service, start_server
from sorter.sweep import capacity_sweep
from service_fakes import FakeTransport, ListJournal

PLAN = str(seed_path("plan/demo_plan.csv"))
PLAN2 = str(seed_path("plan/demo_plan_wave2.csv"))
CHUTES = str(seed_path("plan/demo_chutes.toml"))
SMALL = str(seed_path("scenarios/small.toml"))
CHUTE_IDS = set(Sorter.from_files(PLAN, CHUTES).chute_ids)
WAIT = 20.0          # upper bound of any single wait (a loaded 2-core machine)


def comparable(state):
    return json.loads(json.dumps(state))


# =========================================================================================
# (a) the service
# =========================================================================================

def _client_stream(c, rng, n=120):
    """Telegram lines of client ``c`` and the answer each must get: (line, kind, seq, extra)."""
    out = [(f"HELLO|0|plc{c}\n".encode(), "HELLO", "0", None)]
    for i in range(1, n + 1):
        r = rng.random()
        chute = rng.choice(["C001", "C002", "C003", "R1"])
        if r < 0.55:
            dest = rng.choice(["01422", "02194", "", "   ", "zz9", "01422  "])
            out.append((f"SCAN|{i}|c{c}p{i}|{dest}|{rng.randrange(5)}|{rng.choice('01')}\n"
                        .encode(), "DEST", str(i), f"c{c}p{i}"))
        elif r < 0.62:
            state = rng.choice(["open", "full", "blocked", "container_change", "open"])
            out.append((f"CHUTE|{i}|{chute}|{state}\n".encode(), "ACK", str(i), None))
        elif r < 0.68:
            out.append((f"DISCHARGED|{i}|x|{chute}\n".encode(), "ACK", str(i), None))
        elif r < 0.72:
            out.append((f"CONTAINER|{i}|{chute}\n".encode(), "ACK", str(i), None))
        elif r < 0.75:
            out.append((f"HB|{i:05d}\n".encode(), "ACK", f"{i:05d}", None))
        elif r < 0.78:
            out.append((b"\n", "ERR", "-", "empty"))
        elif r < 0.81:
            out.append((b"SCAN|%d|P\xff\xfe|01422|0|1\n" % i, "ERR", str(i), "not_ascii"))
        elif r < 0.84:
            out.append((b"HB|%d|" % i + b"x" * 5000 + b"\n", "ERR", str(i), "too_long"))
        elif r < 0.87:
            out.append((b"SCAN|%d|P\x01|01422|0|1\r\n" % i, "ERR", str(i), "bad_char"))
        elif r < 0.90:
            out.append((f"SCAN|{i}|c{c}q{i}|01422|-1|1\n".encode(), "ERR", str(i),
                        "bad_recirculation"))
        elif r < 0.93:
            out.append((f"CHUTE|{i}|C999|open\n".encode(), "ERR", str(i), "unknown_chute"))
        elif r < 0.96:
            out.append((b"garbage \x00 line\n", "ERR", "-", None))
        else:
            out.append((f"SCAN|{i}|c{c}r{i}|01422|0|1\r\n".encode(), "DEST", str(i), f"c{c}r{i}"))
    return out


def _chunks(data, rng):
    """``data`` cut at random places, 1 to 60 bytes a piece (many single bytes)."""
    out, i = [], 0
    while i < len(data):
        k = rng.choice([1, 1, 2, 3, 7, 20, 60])
        out.append(data[i:i + k])
        i += k
    return out


async def _read_lines(reader, n, timeout=WAIT):
    lines = []
    while len(lines) < n:
        raw = await asyncio.wait_for(reader.readline(), timeout)
        if not raw:
            break
        lines.append(raw.decode("ascii"))
    return lines


async def _good_client(port, c, rng):
    stream = _client_stream(c, rng)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"".join(s[0] for s in stream)
    for piece in _chunks(data, rng):
        writer.write(piece)
        if rng.random() < 0.3:
            await writer.drain()
            await asyncio.sleep(0)
    await writer.drain()
    answers = await _read_lines(reader, len(stream))
    writer.close()
    return stream, answers


def _abort(writer):
    """Close with RST (SO_LINGER 0): the client vanished, not a clean close."""
    sock = writer.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def test_many_clients_and_misbehaving_ones_get_one_answer_each_in_order(tmp_path):
    """12 PLCs send scans, chute events, discharges, container changes, heartbeats and
    malformed lines (empty, non-ASCII, control characters, over-long, unknown chutes), cut
    into pieces down to single bytes, at once; meanwhile one client connects and says
    nothing, one vanishes (RST) mid-telegram, one closes its side mid-telegram, one floods
    scans without reading and vanishes. Every telegram of the good clients gets exactly one
    answer, in order, echoing its seq; every decision names a chute of the table and a
    reason; nothing of a cut-off telegram is applied; the flood's applied scans are a gap-free
    prefix of what it sent; the idle client is still served at the end; the journal restores
    to exactly the live engine and holds exactly the decisions that were answered."""
    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=str(db), durability="batch",
                          deadline_ms=60_000, snapshot_every=200)

    async def run():
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)

        async def rst_mid():
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"HELLO|1|rst\nSCAN|2|RST-1|01422|0|1\nSCAN|3|RST-2|01422|0")
            await w.drain()
            got = await _read_lines(r, 2)
            _abort(w)
            return got

        async def fin_mid():
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"HELLO|1|fin\nSCAN|2|FIN-1|01422|0|")
            await w.drain()
            w.write_eof()
            got = await _read_lines(r, 3)
            w.close()
            return got

        async def flood():
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"HELLO|1|flood\n" + b"".join(b"SCAN|%d|F-%d|01422|0|1\n" % (i, i)
                                                  for i in range(2, 3002)))
            await w.drain()
            await asyncio.sleep(0.01)
            _abort(w)

        rng = random.Random(13)
        rngs = [random.Random(rng.random()) for _ in range(12)]
        res = await asyncio.gather(*[_good_client(port, c, rngs[c]) for c in range(12)],
                                   rst_mid(), fin_mid(), flood())
        idle_w.write(b"HB|77\n")
        await idle_w.drain()
        idle = await _read_lines(idle_r, 1)
        idle_w.close()
        server.close()
        await server.wait_closed()
        return res[:12], res[12], res[13], idle

    good, rst, fin, idle = asyncio.run(asyncio.wait_for(run(), 60))
    svc.shutdown()

    assert idle == ["ACK|77\n"]                       # the service outlived every misbehaviour
    assert fin[0] == "HELLO|1|fin|-\n" and fin[1].startswith("ERR|2|unterminated|")
    assert len(fin) == 2                              # then the service closed the connection
    assert rst[0] == "HELLO|1|rst|-\n" and rst[1].startswith("DEST|2|RST-1|")
    n_dest = 0
    journal_dest = {}
    con = sqlite3.connect(db)
    for client, seq, kind, parcel, chute, detail in con.execute(
            "SELECT client, seq, kind, parcel, chute, detail FROM journal"):
        if kind == "scan":
            journal_dest[(client, seq)] = (parcel, chute, detail)
    con.close()
    for c, (stream, answers) in enumerate(good):
        assert len(answers) == len(stream), (c, answers[-3:])
        for (line, kind, seq, extra), ans in zip(stream, answers):
            assert ans.endswith("\n") and ans.count("\n") == 1
            f = ans[:-1].split("|")
            assert (f[0], f[1]) == (kind, seq), (line[:60], ans)
            if kind == "DEST":
                n_dest += 1
                assert f[2] == extra and f[3] in CHUTE_IDS and f[4] in REASONS, ans
                assert journal_dest[(f"plc{c}", int(seq))] == (extra, f[3], f[4])
            elif kind == "ERR" and extra is not None:
                assert f[2] == extra, (line[:60], ans)
    # the cut-off scans were not applied; the flood's applied scans are a prefix of its stream
    parcels = {p for p, _, _ in journal_dest.values()}
    assert "RST-2" not in parcels and "FIN-1" not in parcels
    flood_seqs = sorted(seq for (client, seq) in journal_dest if client == "flood")
    assert flood_seqs == list(range(2, 2 + len(flood_seqs)))
    rst_seqs = sorted(seq for (client, seq) in journal_dest if client == "rst")
    assert rst_seqs == [2]
    # answered decisions = journal decisions = engine decisions; the journal restores exactly
    n_journal = len(journal_dest)
    assert n_journal == n_dest + len(flood_seqs) + len(rst_seqs)
    assert sum(svc.engine.counters()["by_reason"].values()) == n_journal
    assert comparable(restore(db).sorter.state_dict()) == comparable(svc.engine.state_dict())
    # every answer follows from the events applied before it, in the journal's order: a fresh
    # engine fed every row from the first remakes each decision
    ref = Sorter.from_files(PLAN, CHUTES)
    con = sqlite3.connect(db)
    for kind, dest, rc, so, chute, detail, data in con.execute(
            "SELECT kind, destination, recirculation, sortable, chute, detail, data "
            "FROM journal ORDER BY id"):
        d = apply_record(ref, kind, dest, rc, so, chute, detail, data)
        if d is not None:
            assert (str(d.chute), d.reason) == (chute, detail)
    con.close()
    assert comparable(ref.state_dict()) == comparable(svc.engine.state_dict())


# -- a PLAN among telegrams cut at every byte ------------------------------------------------

STREAM = (b"HELLO|1|plc\nSCAN|2|P1|01422|0|1\nPLAN|003|" + PLAN2.encode() + b"\n"
          b"SCAN|4|P2|01422|0|1\nCHUTE|5|C001|full\nSCAN|6|P3|01422|0|1\r\n"
          b"PLAN|7|/no/such/plan.csv\nSCAN|8|P4||0|1\nPLAN|9|" + PLAN.encode() + b"\n"
          b"PLAN|10|" + PLAN2.encode() + b"\nHB|11\nSCAN|12|P5|02194|1|0")


def _reference_answers():
    svc = Service(Sorter.from_files(PLAN, CHUTES), deadline_ms=3_600_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.feed(conn, STREAM)             # no event loop: PLAN is read in line
    svc.end_of_input(conn)
    return conn.transport.lines(), svc.engine.state_dict()


def test_plan_loading_while_the_stream_arrives_cut_at_every_byte():
    """The stream (three PLANs, one bad, scans and events after them, a last line without
    its newline before the client closes its side) cut in two at every byte, and once fed
    byte by byte, into a live service whose PLANs load in a worker thread (the telegrams
    after a PLAN wait for it): always the same answers, in the same order, as the stream
    in one piece, and the same engine state."""
    ref, ref_state = _reference_answers()
    assert len(ref) == STREAM.count(b"\n") + 1 and ref[-1].startswith("ERR|12|unterminated")
    assert ref[2] == "ACK|003" and ref[6].startswith("ERR|7|bad_plan")

    fresh = Sorter.from_files(PLAN, CHUTES).state_dict()

    async def one(pieces):
        svc = Service(Sorter.from_state(fresh), deadline_ms=3_600_000)
        svc.attach(asyncio.get_running_loop())
        conn = Connection(svc)
        conn.connection_made(FakeTransport())
        for p in pieces:
            svc.feed(conn, p)
            await asyncio.sleep(0)
        conn.eof_received()
        t0 = time.monotonic()
        while len(conn.transport.lines()) < len(ref) or conn.held is not None:
            assert time.monotonic() - t0 < WAIT, conn.transport.lines()
            await asyncio.sleep(0.0002)
        return conn.transport.lines(), svc.engine.state_dict()

    async def all_cuts():
        out = [await one([STREAM[i:i + 1] for i in range(len(STREAM))])]
        for k in range(1, len(STREAM)):
            out.append(await one([STREAM[:k], STREAM[k:]]))
        return out

    for lines, state in asyncio.run(all_cuts()):
        assert lines == ref
        assert state == ref_state


# -- the journal falls behind: reading pauses --------------------------------------------------

class _StuckJournal(ListJournal):
    """A journal whose writer commits only when told (``on_commit`` by hand)."""
    kicks = 0

    def kick(self):
        self.kicks += 1


def test_reading_pauses_while_the_journal_lags_the_backlog_bound_regression():
    """Under an overload (4 clients as fast as answers come, 2 cores) the journal's writer
    thread got ever further behind: 235,000 acknowledged decisions uncommitted after 2 s
    (STATUS pending), memory growing, and a SIGKILL then lost them all (the docs promise
    about one commit interval). Now once more than MAX_BACKLOG rows wait, the service stops
    reading from every client until the journal is down to half of it; a client that does
    not read its answers stays paused."""
    svc = Service(Sorter.from_files(PLAN, CHUTES), journal=_StuckJournal(), deadline_ms=60_000)
    assert svc.max_backlog == MAX_BACKLOG == 10_000          # as docs/service.md says
    svc.max_backlog = 100
    a, b = Connection(svc), Connection(svc)
    a.connection_made(FakeTransport())
    b.connection_made(FakeTransport())
    b.pause_writing()                          # b does not read its answers
    svc.feed(a, b"".join(b"SCAN|%d|P%d|01422|0|1\n" % (i, i) for i in range(1, 101)))
    assert not svc.throttled and not a.transport.paused
    svc.feed(a, b"SCAN|101|P101|01422|0|1\nHB|102\n")
    assert svc.throttled and a.transport.paused and b.transport.paused
    assert svc.journal.kicks >= 1
    assert len(a.transport.lines()) == 102      # what was read is answered all the same
    c = Connection(svc)
    c.connection_made(FakeTransport())         # a new client waits too
    assert c.transport.paused
    b.resume_writing()
    assert b.transport.paused                  # ... until the journal catches up
    svc.on_commit(40)                          # 61 rows behind: still more than half
    assert svc.throttled and a.transport.paused
    svc.on_commit(101)
    assert not svc.throttled
    assert not a.transport.paused and not b.transport.paused and not c.transport.paused
    # a client that stopped reading its answers is not resumed by the journal
    b.pause_writing()
    svc.feed(a, b"".join(b"SCAN|%d|Q%d|01422|0|1\n" % (i, i) for i in range(200, 302)))
    assert svc.throttled
    svc.on_commit(svc.next_id - 1)
    assert not a.transport.paused and b.transport.paused
    # no journal: nothing to wait for
    free = Service(Sorter.from_files(PLAN, CHUTES), deadline_ms=60_000)
    free.max_backlog = 10
    d = Connection(free)
    d.connection_made(FakeTransport())
    free.feed(d, b"".join(b"SCAN|%d|P%d|01422|0|1\n" % (i, i) for i in range(1, 50)))
    assert not free.throttled and not d.transport.paused


# -- SIGKILL under an overload, restart ---------------------------------------------------------

def _start_serve(db, *extra):
    p = subprocess.Popen([sys.executable, "-m", "sorter", "serve", "--port", "0", "--journal",
                          str(db), "--deadline-ms", "60000", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("line", p.stdout.readline()), daemon=True)
    t.start()
    t.join(WAIT * 2)
    line = box.get("line", "")
    if "listening on " not in line:
        p.kill()
        raise AssertionError(f"serve did not start: {line!r} {p.stderr.read()[-2000:]!r}")
    return p, int(line.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1])


def _pump(port, k, stop, answers, sent):
    """Client ``k``: HELLO, then windows of 20 telegrams (scans, chute events, discharges,
    container changes) as fast as the answers come, until ``stop`` or the service dies."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        s.sendall(f"HELLO|0|k{k}\n".encode())
        buf, got, seq = b"", [], 1
        while not stop.is_set():
            lines = []
            for _ in range(20):
                ch = f"C00{1 + seq % 3}"
                if seq % 9 == 0:
                    lines.append(f"DISCHARGED|{seq}|X|{ch}\n")
                elif seq % 13 == 0:
                    lines.append(f"CONTAINER|{seq}|{ch}\n")
                elif seq % 17 == 0:
                    lines.append(f"CHUTE|{seq}|{ch}|{['full', 'open', 'blocked', 'open'][seq % 4]}\n")
                else:
                    lines.append(f"SCAN|{seq}|k{k}p{seq}|{['01422', '02194', '', 'x'][seq % 4]}|0|1\n")
                sent[seq] = lines[-1]
                seq += 1
            s.sendall("".join(lines).encode())
            want = len(got) + 20 + (1 if not got else 0)
            while len(got) < want:
                c = s.recv(65536)
                if not c:
                    raise ConnectionError
                buf += c
                *full, buf = buf.split(b"\n")
                got.extend(x.decode() for x in full)
                answers[:] = got
    except (OSError, ConnectionError):
        pass


@pytest.mark.parametrize("durability", ["batch", "sync"])
def test_sigkill_under_overload_then_restart(tmp_path, durability):
    """Four clients drive the service as fast as it answers; SIGKILL; restart on the journal.
    sync: every answered telegram is in the journal with the answer given. batch: at most
    the backlog bound of answered telegrams is missing (it was every one the writer had not
    reached: 235,000 in one run before the fix), and those in the journal were answered as
    journalled. Then: the journal's snapshots agree with a replay of every row from the
    start; HELLO reports the last journalled seq; a re-sent telegram gets its original answer,
    not applied twice; a new scan is decided."""
    db = tmp_path / "j.db"
    p, port = _start_serve(db, "--plan", PLAN, "--chutes", CHUTES, "--durability", durability,
                           "--snapshot-every", "5000")
    stop = threading.Event()
    answers = [[] for _ in range(4)]
    sent = [{} for _ in range(4)]
    ts = [threading.Thread(target=_pump, args=(port, k, stop, answers[k], sent[k]), daemon=True)
          for k in range(4)]
    try:
        for t in ts:
            t.start()
        t0 = time.monotonic()
        while sum(len(a) for a in answers) < 60_000 and time.monotonic() - t0 < 4.0:
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(WAIT)
    finally:
        stop.set()
        if p.poll() is None:
            p.kill()
        p.stdout.close()
        p.stderr.close()
    for t in ts:
        t.join(WAIT)

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = {(c, s): (k, ch, d) for c, s, k, ch, d in
            con.execute("SELECT client, seq, kind, chute, detail FROM journal")}
    records = con.execute("SELECT kind, destination, recirculation, sortable, chute, detail, "
                          "data FROM journal ORDER BY id").fetchall()
    con.close()
    lost = 0
    for k in range(4):
        for a in answers[k]:
            f = a.split("|")
            if f[0] == "HELLO":
                continue
            r = rows.get((f"k{k}", int(f[1])))
            if r is None:
                lost += 1
            elif f[0] == "DEST":
                assert (r[0], r[1], r[2]) == ("scan", f[3], f[4]), (a, r)
    answered = sum(len(a) - 1 for a in answers)
    assert answered > 1000, answered           # the load did run
    if durability == "sync":
        assert lost == 0
    else:
        assert lost <= 10_000 + 4 * 20, (lost, answered, len(rows))    # bound + windows

    # the snapshots agree with every row replayed from the start
    restored = restore(db)
    full = Sorter.from_files(PLAN, CHUTES)
    for rec in records:
        apply_record(full, *rec)
    assert comparable(full.state_dict()) == comparable(restored.sorter.state_dict())

    p, port = _start_serve(db)                 # the short restart command
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            f = s.makefile("rwb")
            last = max(seq for (c, seq) in rows if c == "k0")
            line = sent[0][last]
            f.write(b"HELLO|900|k0\n" + line.encode() + b"SCAN|99999999|NEW|01422|0|1\nSTATUS|5\n")
            f.flush()
            got = [f.readline().decode() for _ in range(4)]
        assert got[0] == f"HELLO|900|k0|{last}\n"
        if line.startswith("SCAN"):
            ch, reason = rows[("k0", last)][1:]
            assert got[1].startswith(f"DEST|{last}|") and got[1].endswith(f"|{ch}|{reason}\n")
        else:
            assert got[1] == f"ACK|{last}\n"
        assert got[2].startswith("DEST|99999999|NEW|")
        assert "replayed=1;" in got[3] and "scans=1;" in got[3]
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.communicate(timeout=WAIT)
    assert p.returncode == 0


# -- damaged journals --------------------------------------------------------------------------

def _journal(path, n=60):
    svc, _ = open_service(PLAN, CHUTES, journal=str(path), deadline_ms=60_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.feed(conn, b"HELLO|0|plc\n" + b"".join(
        b"SCAN|%d|P%d|%s|%d|1\n" % (i, i, [b"01422", b"", b"02194"][i % 3], i % 2)
        for i in range(1, n)) + b"CHUTE|900|C002|blocked\nDISCHARGED|901|P1|C001\n")
    svc.shutdown()


@pytest.mark.parametrize("update, column", [
    ("t = 1e300", "t"),                         # fromtimestamp: OverflowError
    ("t = 'yesterday'", "t"),                   # parquet: TypeError
    ("seq = 'x12'", "seq"),                     # parquet: ArrowTypeError
    ("recirculation = 1099511627776", "recirculation"),   # int32 column: OverflowError
    ("parcel = x'00ff'", "parcel"),             # a blob where text belongs
])
@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_export_of_a_row_damaged_in_type_is_one_line_regression(tmp_path, capsys, update,
                                                                  column, ext):
    """A damaged page can read back as a row of the wrong types (random bit flips found
    these): `sorter journal export` ended in a Python traceback (OverflowError, TypeError,
    ArrowTypeError). Now one line naming the journal, the row and the column, and no file."""
    db = tmp_path / "j.db"
    _journal(db)
    con = sqlite3.connect(db)
    con.execute(f"UPDATE journal SET {update} WHERE id = 7")
    con.commit()
    con.close()
    out = tmp_path / f"audit.{ext}"
    code = main(["journal", "export", str(db), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    assert err.startswith("sorter journal: error: ") and len(err.splitlines()) == 1
    assert str(db) in err and "journal row 7" in err and f"{column} reads as" in err
    assert not out.exists() and not list(tmp_path.glob(".audit*"))


def test_random_damage_to_a_journal_never_ends_in_a_traceback(tmp_path, capsys):
    """Bit flips, truncation and zeroed stretches of a closed journal: `journal show` and
    both exports either work or fail with one error line (exit 2), never anything else."""
    db = tmp_path / "j.db"
    _journal(db, 150)
    orig = db.read_bytes()
    rng = random.Random(1313)
    dmg = tmp_path / "d.db"
    for trial in range(40):
        b = bytearray(orig)
        what = trial % 3
        if what == 0:
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(100, len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif what == 1:
            b = b[:rng.randrange(0, len(b))]
        else:
            i = rng.randrange(0, len(b))
            b[i:i + 256] = bytes(len(b[i:i + 256]))
        dmg.write_bytes(bytes(b))
        for argv in (["journal", "show", str(dmg)],
                     ["journal", "export", str(dmg), "--out", str(tmp_path / "o.csv")],
                     ["journal", "export", str(dmg), "--out", str(tmp_path / "o.parquet")]):
            code = main(argv)
            err = capsys.readouterr().err.strip()
            assert "Traceback" not in err
            if code != 0:
                assert code == 2, (trial, argv, err)
                assert err.splitlines()[-1].startswith("sorter journal: error: "), err


# =========================================================================================
# (b) capacity sweeps
# =========================================================================================

SHORT = ["--set", "scenario.shift_hours=0.05", "--no-progress"]


def _error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("sorter sweep: error: "), err
    return err


def test_a_bad_value_for_a_key_the_file_does_not_set_is_a_bad_value_regression(tmp_path,
                                                                                capsys):
    """`--vary containers.capacity=20,0.5` on small.toml (which sets no [containers]
    capacity; the docs name it as a key a sweep may add): the error said "unknown key
    'containers.capacity'" with a list of other keys, sending the planner hunting for the
    right spelling. Now it says what is wrong with the value; a misspelt key is still an
    unknown key with the nearest ones. Before any run, no output."""
    out = tmp_path / "out"
    err = _error_line(capsys, ["sweep", SMALL, "--vary", "containers.capacity=20,0.5",
                               "--out", str(out), *SHORT])
    assert "field 'containers.capacity'" in err and "bad value 0.5" in err
    assert "unknown key" not in err and "integer" in err
    err = _error_line(capsys, ["sweep", SMALL, "--vary", "scenario.shift_start=7h", *SHORT])
    assert "bad clock time '7h'" in err and "unknown key" not in err
    err = _error_line(capsys, ["sweep", SMALL, "--vary", "containers.capacty=20", *SHORT])
    assert "unknown key 'containers.capacty'" in err and "nearest valid keys" in err
    with pytest.raises(InputError) as e:
        capacity_sweep(SMALL, {"containers.capacity": [10, 0]}, seeds=1, n_workers=1,
                       overrides={"scenario.shift_hours": 0.05})
    assert e.value.field == "containers.capacity" and "bad value 0" in str(e.value)
    assert not out.exists()
    res = capacity_sweep(SMALL, {"containers.capacity": [10, 30]}, seeds=1, n_workers=1,
                         overrides={"scenario.shift_hours": 0.05})   # a good value still runs
    assert [r["containers.capacity"] for r in res.rows] == [10, 30]


def _fail_at_3(task):
    if task[0] == 3:
        raise ValueError("the simulation went wrong")
    return _REAL_RUN_POINT(task)


def _die_at_3(task):
    if task[0] == 3:
        os._exit(9)                  # a worker killed (the OOM killer, kill -9)
    return _REAL_RUN_POINT(task)


_REAL_RUN_POINT = sweep_mod._run_point


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_that_fails_part_way_names_its_point_regression(tmp_path, capsys, monkeypatch,
                                                              workers):
    """A run raising a ValueError after the up-front checks (run 3 = point 1, seed 12): the
    one error line lost the "while running point ..." note the sweep added, so nobody could
    tell which setting failed. Now the line names the point, its values and the seed; no
    output is written."""
    monkeypatch.setattr(sweep_mod, "_run_point", _fail_at_3)
    out = tmp_path / "out"
    err = _error_line(capsys, ["sweep", SMALL, "--vary", "loop.speed_mps=2.0,2.5", "--seeds",
                               "2", "--workers", workers, "--out", str(out), *SHORT])
    assert "the simulation went wrong" in err
    assert "point 1 (loop.speed_mps=2.5), seed 12" in err
    assert not out.exists() or not any(out.iterdir())


def test_a_worker_killed_part_way_is_one_line_regression(tmp_path, capsys, monkeypatch):
    """A worker process killed mid-sweep (out of memory, kill -9): a BrokenProcessPool
    traceback. Now one line saying a worker died, a run that was in flight, and how to see
    the run's own error."""
    monkeypatch.setattr(sweep_mod, "_run_point", _die_at_3)
    err = _error_line(capsys, ["sweep", SMALL, "--vary", "loop.speed_mps=2.0,2.5", "--seeds",
                               "2", "--workers", "2", *SHORT])
    assert "a worker process died part-way" in err and "--workers 1" in err
    assert "loop.speed_mps=" in err and "seed 1" in err


def _children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig, group", [("SIGTERM", False), ("SIGTERM", True), ("SIGINT", True),
                                        ("SIGINT", False), ("SIGKILL", False)])
def test_kill_pid_stops_the_sweep_and_its_workers_regression(tmp_path, sig, group):
    """`kill PID` (SIGTERM: a batch scheduler's time limit, systemd) on a running sweep
    ended the parent at once and left its worker processes orphaned, blocked for ever on
    the pool's queue (or running on); `kill -9` did the same. Ctrl-C (SIGINT to the whole
    group, or to the parent) could hang the exit for ever when it landed while the pool's
    bookkeeping held a lock (KeyboardInterrupt raised inside a queue's lock). Now SIGTERM
    and SIGINT stop the sweep at a safe point: exit code 130, no traceback, the workers
    stopped, no output written; after SIGKILL of the parent its workers die with it."""
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "sorter", "sweep", SMALL, "--vary",
                          "wave.0.rate_per_hour=4000:12000:1000", "--seeds", "2000",
                          "--set", "scenario.shift_hours=8", "--workers", "2", "--no-progress",
                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         # a test run started in the background (`cmd &` in a script) ignores
                         # SIGINT, and so would the sweep (it keeps an ignored SIGINT ignored,
                         # as under nohup): the sweep gets Ctrl-C's default here
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kids = []
    try:
        t0 = time.monotonic()
        while len(kids) < 2 and time.monotonic() - t0 < WAIT * 2:
            time.sleep(0.1)
            kids = _children(p.pid)
        assert len(kids) == 2 and p.poll() is None, p.stderr.read() if p.poll() else kids
        time.sleep(0.3)                           # runs are being submitted and run
        (os.killpg if group else os.kill)(p.pid, getattr(signal, sig))
        _, err = p.communicate(timeout=WAIT)
        assert p.returncode == (-9 if sig == "SIGKILL" else 130), err
        assert "Traceback" not in err and "error" not in err
        t0 = time.monotonic()
        while any(_alive(k) for k in kids) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        assert not any(_alive(k) for k in kids)
        assert not out.exists() or not any(out.iterdir())
    finally:
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate(timeout=WAIT)


def test_vary_forms_and_the_files_on_every_backend(tmp_path, capsys):
    """A float range, a range in TOML's 1e3 and 4_000 spellings, bare words and a list value,
    run serially, on the local pool and on `--dask local`: the same rows, bit for bit, in
    the documented files (sweep.parquet one row per run: point, the varied keys as given,
    seed, KPIs; summary.csv per point: n_seeds, <kpi>_mean, <kpi>_ci95; sweep.png)."""
    import pyarrow.parquet as pq

    from sorter.sweep import parse_values
    assert parse_values("2:3:0.5") == [2.0, 2.5, 3.0]
    assert parse_values("4e3:6e3:1e3") == [4000.0, 5000.0, 6000.0]
    assert parse_values("4_000:6_000:1_000") == [4000, 5000, 6000]
    argv = ["sweep", SMALL, "--vary", "loop.speed_mps=2:2.5:0.5",
            "--vary", "destinations.mix=zipf,uniform", "--seeds", "2", *SHORT]
    tables, summaries = [], []
    for k, backend in enumerate([["--workers", "1"], ["--workers", "2"],
                                 ["--dask", "local", "--workers", "1"]]):
        out = tmp_path / f"o{k}"
        assert main(argv + backend + ["--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert f"wrote {out / 'sweep.parquet'}, {out / 'summary.csv'}, {out / 'sweep.png'}" in text
        assert ("serial" if k == 0 else "processes" if k == 1 else "dask") in text.splitlines()[0]
        assert (out / "sweep.png").stat().st_size > 1000
        t = pq.read_table(out / "sweep.parquet")
        tables.append(t)
        summaries.append((out / "summary.csv").read_text())
    t = tables[0]
    assert t.column_names[:4] == ["point", "loop.speed_mps", "destinations.mix", "seed"]
    assert t.num_rows == 2 * 2 * 2
    assert t.column("point").to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert t.column("seed").to_pylist() == [11, 12] * 4
    assert t.column("loop.speed_mps").to_pylist() == [2.0] * 4 + [2.5] * 4
    assert t.column("destinations.mix").to_pylist() == ["zipf", "zipf", "uniform", "uniform"] * 2
    for col in ("sorted_per_hour", "offered", "recirculation_pct", "induct_to_chute_s_p95"):
        assert col in t.column_names
    assert any(c.startswith("rejected_") for c in t.column_names)
    assert t.equals(tables[1]) and t.equals(tables[2])
    assert summaries[0] == summaries[1] == summaries[2]
    header = summaries[0].splitlines()[0].replace('"', "").split(",")
    assert header[:4] == ["point", "loop.speed_mps", "destinations.mix", "n_seeds"]
    assert "sorted_per_hour_mean" in header and "sorted_per_hour_ci95" in header


def test_hub_loops_whose_names_slug_alike_keep_their_own_columns_regression():
    """A hub with loops named "A-1" and "A_1" (both are slugged to A_1 in column names):
    the second loop's figures silently overwrote the first's in every sweep row. Now each
    loop keeps its own columns (the later one gets its index appended)."""
    import tomllib

    from sorter.sweep import kpi_row
    doc = tomllib.loads(Path(seed_path("scenarios/hub.toml")).read_text())
    doc["loop"][0]["name"], doc["loop"][1]["name"] = "A-1", "A_1"
    res = capacity_sweep(doc, {"wave.0.rate_per_hour": [20000]}, seeds=1, n_workers=1,
                         base_dir=Path(seed_path("scenarios/hub.toml")).parent,
                         overrides={"scenario.shift_hours": 0.02})
    row = res.rows[0]
    per_loop = sorted(k for k in row if k.startswith("loop_") and k.endswith("_sorted_per_hour"))
    assert len(per_loop) == 3, per_loop
    assert math.isclose(sum(row[k] for k in per_loop), row["sorted_per_hour"], rel_tol=1e-9)
    loops = [{"name": n, "sorted_per_hour": v, "recirculation_pct": 1.0,
              "induct_blocking_pct": 2.0, "carrier_fill_pct": 3.0}
             for n, v in (("A-1", 10.0), ("A_1", 20.0), ("A 1", 30.0))]
    r = kpi_row({"loops": loops})
    assert sorted(v for k, v in r.items() if k.endswith("_sorted_per_hour")) == [10.0, 20.0, 30.0]
