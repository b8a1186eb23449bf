"""The journal: SIGKILL recovery of `sorter serve`, snapshot + tail replay, export.

The SIGKILL tests start `sorter serve` as a subprocess on a free loopback port (port 0,
read back from its first stdout line), stream the demo event file as telegrams, kill the
service with SIGKILL part-way, restart it on the same journal, re-send from the client's
last acknowledged seq (a little earlier, to exercise de-duplication) and compare with an
uninterrupted run of the same stream through an in-process engine.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sorter import Sorter
from sorter.resources import seed_path
from sorter.service.journal import Journal, JournalError, export, restore
from sorter.service.protocol import format_telegram
from sorter.service.server import Connection, open_service
from service_fakes import FakeTransport

PLAN = seed_path("plan/demo_plan.csv")
CHUTES = seed_path("plan/demo_chutes.toml")
EVENTS = seed_path("plan/demo_events.csv")
TIMEOUT = 60.0      # generous: a loaded 2-core machine


# -- the stream and an independent reference ------------------------------------------
def demo_stream():
    """The demo event file as telegrams: [(seq, line_bytes, op)] with seq 1, 2, ..., n."""
    ops = []
    with open(EVENTS, newline="") as fh:
        for k, row in enumerate(csv.DictReader(fh)):
            ev = row["event"]
            if ev == "scan":
                ops.append(("scan", row["parcel"], row["destination"] or None,
                            int(row["recirculation"] or 0), row["sortable"] != "0"))
            elif ev == "discharged":
                ops.append(("discharged", row["chute"]))
            elif ev == "container_changed":
                ops.append(("container", row["chute"]))
            elif ev == "switch_plan":
                ops.append(("plan", str(Path(EVENTS).parent / row["plan"])))
            else:
                ops.append(("chute", row["chute"], ev))
            if (k + 1) % 250 == 0:                   # heartbeats: answered, not journalled
                ops.append(("hb",))
    out = []
    for seq, op in enumerate(ops, 1):
        kind = op[0]
        if kind == "scan":
            line = format_telegram("SCAN", seq, op[1], op[2], op[3], int(op[4]))
        elif kind == "discharged":
            line = format_telegram("DISCHARGED", seq, "", op[1])
        elif kind == "container":
            line = format_telegram("CONTAINER", seq, op[1])
        elif kind == "plan":
            line = format_telegram("PLAN", seq, op[1])
        elif kind == "chute":
            line = format_telegram("CHUTE", seq, op[1], op[2])
        else:
            line = format_telegram("HB", seq)
        out.append((seq, line, op))
    return out


def reference_run(stream, chutes_toml):
    """Uninterrupted run: the expected answer of every seq and the final engine."""
    eng = Sorter.from_files(PLAN, chutes_toml)
    answers = {}
    for seq, line, op in stream:
        if op[0] == "scan":
            d = eng.assign(op[2], op[3], op[4])
            answers[seq] = f"DEST|{seq}|{op[1]}|{d.chute}|{d.reason}"
            continue
        if op[0] == "discharged":
            eng.discharged(op[1])
        elif op[0] == "container":
            eng.container_changed(op[1])
        elif op[0] == "plan":
            eng.switch_plan(op[1])
        elif op[0] == "chute":
            eng.set_state(op[1], op[2])
        answers[seq] = f"ACK|{seq}"
    return answers, eng


def comparable(state):
    """A state_dict as JSON would carry it (tuples -> lists)."""
    return json.loads(json.dumps(state))


# -- a blocking pipelining client ------------------------------------------------------
class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def lines(self):
        """Answer lines received so far (blocks for at least one); [] when the peer closed."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout, OSError):
                return []
            if not chunk:
                return []
            self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [x.decode() for x in done]

    def request(self, line):
        self.send(line)
        got = []
        while not got:
            got = self.lines()
            if not got and self.buf == b"":
                raise ConnectionError("service closed the connection")
        assert len(got) == 1
        return got[0]

    def close(self):
        self.sock.close()


def run_stream(client, stream, *, window=64, stop_after=None, on_stop=None):
    """Send ``stream`` with up to ``window`` telegrams in flight; returns {seq: answer}.

    When ``stop_after`` answers have arrived, call ``on_stop()`` (the kill) and return what
    was acknowledged until then.
    """
    acked = {}
    i = 0
    sent = 0
    while len(acked) < len(stream):
        if sent < len(stream) and sent - len(acked) < window:
            upto = min(len(stream), len(acked) + window)
            client.send(b"".join(line for _, line, _ in stream[sent:upto]))
            sent = upto
        got = client.lines()
        if not got:
            break
        for ans in got:
            seq = int(ans.split("|")[1])
            assert seq == stream[i][0], f"answers out of order: {ans} for {stream[i][0]}"
            acked[seq] = ans
            i += 1
        if stop_after is not None and len(acked) >= stop_after:
            on_stop()
            # anything already in our buffer was acknowledged before the kill
            if b"\n" in client.buf:
                *done, client.buf = client.buf.split(b"\n")
                for ans in done:
                    acked[int(ans.decode().split("|")[1])] = ans.decode()
            break
    return acked


def start_service(tmp_path, journal, chutes, durability, extra=()):
    cmd = [sys.executable, "-c", "import sys; from sorter.cli import main; sys.exit(main())",
           "serve", "--plan", str(PLAN), "--chutes", str(chutes), "--port", "0",
           "--journal", str(journal), "--durability", durability, "--deadline-ms", "60000",
           "--snapshot-every", "500", *extra]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"sorter serve did not start: {line!r} {proc.stderr.read()}")
    port = int(line.split("listening on ")[1].split(",")[0].rsplit(":", 1)[1])
    return proc, port


@contextlib.contextmanager
def service(tmp_path, journal, chutes, durability, extra=()):
    """A `sorter serve` subprocess for the block: ``(proc, port)``, killed if still running
    at the block's end."""
    proc, port = start_service(tmp_path, journal, chutes, durability, extra)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)


def stop_service(proc, sig=signal.SIGTERM):
    """Send ``sig`` and wait: the service's exit code."""
    proc.send_signal(sig)
    return proc.wait(TIMEOUT)


def chutes_with(tmp_path, strategy):
    text = Path(CHUTES).read_text().replace('strategy = "least_loaded"', f'strategy = "{strategy}"')
    p = tmp_path / f"chutes_{strategy}.toml"
    p.write_text(text)
    return p


def journal_rows(db, client):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT seq, kind, parcel, chute, detail FROM journal WHERE client = ? "
                       "ORDER BY id", (client,)).fetchall()
    con.close()
    return rows


@pytest.mark.parametrize("durability,strategy", [("sync", "round_robin"), ("batch", "least_loaded")])
def test_sigkill_mid_stream_then_replay(tmp_path, durability, strategy):
    """SIGKILL part-way through a stream, restart on the same journal, replay from the
    client's last acknowledged seq: every acknowledged decision is in the journal once,
    and answers and final chute fill counts equal an uninterrupted run.

    ``sync``: nothing acknowledged may be lost. ``batch``: the journal is a gap-free
    prefix of what was applied (the acknowledged telegrams of the last commit interval
    may be missing); HELLO tells the client where the journal ends, and re-sending from
    there restores everything (one client: the engine is deterministic, so the re-made
    decisions equal the lost answers).
    """
    chutes = chutes_with(tmp_path, strategy)
    db = tmp_path / "sorter.db"
    stream = demo_stream()
    expected, ref = reference_run(stream, chutes)
    journalled = {seq for seq, _, op in stream if op[0] != "hb"}

    with service(tmp_path, db, chutes, durability) as (proc, port):
        cl = Client(port)
        assert cl.request(b"HELLO|0|plc\n") == "HELLO|0|plc|-"
        kill_at = len(stream) * 2 // 5

        def kill():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(TIMEOUT)

        acked = run_stream(cl, stream, stop_after=kill_at, on_stop=kill)
        cl.close()
    assert proc.returncode == -signal.SIGKILL
    assert kill_at <= len(acked) < len(stream)
    # acknowledged answers are those of the uninterrupted run
    assert all(expected[s] == a for s, a in acked.items())
    last_acked = max(acked)

    # what survived the crash
    rows = journal_rows(db, "plc")
    seqs = [r[0] for r in rows]
    assert len(seqs) == len(set(seqs)), "a telegram was journalled twice"
    in_journal = set(seqs)
    # always a gap-free prefix of the applied stream
    top = max(in_journal) if in_journal else -1
    assert in_journal == {s for s in journalled if s <= top}
    lost = {s for s in acked if s in journalled and s not in in_journal}
    if durability == "sync":
        assert not lost, f"sync mode lost acknowledged telegrams {sorted(lost)[:5]}"
    print(f"\n{durability}: killed after {len(acked)} acks (last acked seq {last_acked}); journal "
          f"holds {len(in_journal)} rows (seqs up to {top}); acknowledged but lost: {len(lost)}")

    with service(tmp_path, db, chutes, durability) as (proc, port):
        cl = Client(port)
        hello = cl.request(b"HELLO|0|plc\n").split("|")
        last = -1 if hello[3] == "-" else int(hello[3])
        assert last == top
        resume = min(last, last_acked)
        start = max(1, resume - 20)                 # a few already-acknowledged ones again
        rest = [x for x in stream if x[0] >= start]
        answers = run_stream(cl, rest)
        assert len(answers) == len(rest)
        assert all(answers[s] == expected[s] for s, _, _ in rest), "answers differ from an uninterrupted run"
        status = cl.request(b"STATUS|0\n")
        replayed = int(status.split("replayed=")[1].split(";")[0])
        assert replayed >= len([s for s, _, o in rest if s <= top and o[0] != "hb"])
        cl.close()
        assert stop_service(proc) == 0

    # every telegram exactly once, every acknowledged decision as acknowledged
    rows = journal_rows(db, "plc")
    seqs = [r[0] for r in rows]
    assert sorted(seqs) == sorted(journalled)
    by_seq = {r[0]: r for r in rows}
    for s, ans in acked.items():
        if ans.startswith("DEST"):
            _, _, parcel, chute, reason = ans.split("|")
            assert by_seq[s][1:] == ("scan", parcel, chute, reason)
    # the journal restores to the uninterrupted run's engine: fill, states, counters, cursors
    res = restore(db)
    got = res.sorter.counters()["by_chute"]
    want = ref.counters()["by_chute"]
    assert {c: v["fill"] for c, v in got.items()} == {c: v["fill"] for c, v in want.items()}
    assert comparable(res.sorter.state_dict()) == comparable(ref.state_dict())


# -- in-process journal tests ---------------------------------------------------------------
def feed_all(svc, stream, chunk=37):
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    data = b"".join(line for _, line, _ in stream)
    for i in range(0, len(data), chunk):
        svc.feed(conn, data[i:i + chunk])
    return conn


@pytest.mark.parametrize("snapshot_every", [3, 97, 100_000])
def test_restore_equals_live_engine(tmp_path, snapshot_every):
    """Snapshot + tail replay rebuilds exactly the engine that wrote the journal."""
    db = tmp_path / "j.db"
    chutes = chutes_with(tmp_path, "round_robin")
    svc, _ = open_service(PLAN, chutes, journal=db, snapshot_every=snapshot_every,
                          deadline_ms=60_000)
    stream = demo_stream()
    feed_all(svc, stream)
    assert svc.journal.flush(TIMEOUT)
    live = comparable(svc.engine.state_dict())
    svc.journal.close()
    res = restore(db, recent=10)
    assert comparable(res.sorter.state_dict()) == live
    _, ref = reference_run(stream, chutes)
    assert live == comparable(ref.state_dict())
    assert res.last_id == len([x for x in stream if x[2][0] != "hb"])
    assert res.replayed <= max(snapshot_every, 1) + 1 or snapshot_every == 100_000
    assert len(res.recent) == 10


def test_restart_dedupes_and_continues(tmp_path):
    """A restarted service answers a re-sent telegram from the journal, without re-applying."""
    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=db, deadline_ms=60_000)
    conn = feed_all(svc, [(1, b"HELLO|1|a\n", None), (2, b"SCAN|2|P1|01422|0|1\n", None),
                          (3, b"DISCHARGED|3|P1|C001\n", None)])
    first = bytes(conn.transport.out)
    svc.journal.close()
    svc2, msg = open_service(None, None, journal=db)
    assert "restored" in msg
    conn2 = feed_all(svc2, [(1, b"HELLO|1|a\n", None), (2, b"SCAN|2|P1|01422|0|1\n", None),
                            (3, b"DISCHARGED|3|P1|C001\n", None)])
    assert bytes(conn2.transport.out).split(b"\n")[1:] == first.split(b"\n")[1:]
    assert bytes(conn2.transport.out).startswith(b"HELLO|1|a|3\n")
    assert svc2.engine.chute_fill("C001") == 1          # not discharged twice
    assert svc2.n_replayed == 2
    svc2.journal.close()


def test_restore_detects_a_tampered_journal(tmp_path):
    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=db, deadline_ms=60_000)
    feed_all(svc, [(1, b"SCAN|1|P1|01422|0|1\n", None)])
    svc.journal.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE journal SET chute = 'C999' WHERE seq = 1")
    con.execute("DELETE FROM snapshot WHERE upto > 0")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="row 1"):
        restore(db)


def test_not_a_journal(tmp_path):
    p = tmp_path / "x.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a sorter journal"):
        restore(p)
    with pytest.raises(ValueError, match="no such journal"):
        restore(tmp_path / "absent.db")


def test_sync_answers_wait_for_commit(tmp_path):
    """In sync mode an answer leaves only once its row is committed, in order per connection."""
    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=db, durability="sync", deadline_ms=60_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.feed(conn, b"SCAN|1|P1|01422|0|1\n")
    svc.feed(conn, b"HB|2\n")                     # not journalled, but queued behind seq 1
    assert conn.transport.out == b""               # nothing leaves before the commit
    assert svc.journal.flush(TIMEOUT)
    svc.on_commit(svc.journal.committed)          # what the loop callback does
    assert bytes(conn.transport.out) == b"DEST|1|P1|C001|ok\nACK|2\n"
    svc.journal.close()


def test_export_csv_and_parquet(tmp_path):
    import pyarrow.parquet as pq

    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=db, deadline_ms=60_000)
    stream = demo_stream()[:300]
    feed_all(svc, stream)
    svc.journal.close()
    n_rows = len([x for x in stream if x[2][0] != "hb"])
    n_scans = len([x for x in stream if x[2][0] == "scan"])
    assert export(db, tmp_path / "all.csv") == n_rows
    with open(tmp_path / "all.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_rows
    assert {r["kind"] for r in rows} <= {"scan", "chute", "discharged", "container", "plan"}
    scans = [r for r in rows if r["kind"] == "scan"]
    assert all(r["reason"] and r["chute"] for r in scans)
    assert export(db, tmp_path / "d.parquet", kinds=["scan"]) == n_scans
    t = pq.read_table(tmp_path / "d.parquet")
    assert t.num_rows == n_scans
    assert t.column("parcel").to_pylist() == [r["parcel"] for r in scans]
    assert t.column("reason").to_pylist() == [r["reason"] for r in scans]
    with pytest.raises(ValueError, match="parquet or .csv"):
        export(db, tmp_path / "x.json")


def test_journal_cli(tmp_path, capsys):
    from sorter.cli import main

    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=db, deadline_ms=60_000)
    feed_all(svc, demo_stream()[:100])
    svc.journal.close()
    assert main(["journal", "export", str(db), "--out", str(tmp_path / "d.csv"), "--kind", "scan"]) == 0
    assert "rows ->" in capsys.readouterr().out
    assert main(["journal", "show", str(db)]) == 0
    out = capsys.readouterr().out
    assert "scan" in out and "restored state" in out
    assert main(["journal", "export", str(tmp_path / "missing.db"), "--out", "x.csv"]) == 2


def test_journal_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        Journal(tmp_path / "j.db", "fast")
    with pytest.raises(ValueError, match="commit"):
        Journal(tmp_path / "j.db", "batch", commit_ms=0)
    with pytest.raises(ValueError, match="--plan and --chutes"):
        open_service(None, None, journal=tmp_path / "fresh.db")


def test_restart_keeps_the_journals_durability_unless_told(tmp_path):
    """`sorter serve --journal J` after a `--durability sync` run stays sync (was: batch)."""
    from sorter.service.journal import journal_durability
    db = tmp_path / "j.db"
    assert journal_durability(db) is None
    svc, _ = open_service(PLAN, CHUTES, journal=db, durability="sync")
    svc.journal.close()
    assert journal_durability(db) == "sync"
    svc, _ = open_service(None, None, journal=db)             # the short restart command
    assert svc.journal.durability == "sync"
    svc.journal.close()
    svc, _ = open_service(None, None, journal=db, durability="batch")   # told otherwise
    assert svc.journal.durability == "batch"
    svc.journal.close()
    assert journal_durability(db) == "batch"
    db2 = tmp_path / "fresh.db"
    svc, _ = open_service(PLAN, CHUTES, journal=db2)           # a new journal: batch
    assert svc.journal.durability == "batch"
    svc.journal.close()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_stops_the_service_cleanly_with_the_journal_committed(tmp_path):
    # was: SIGHUP (the terminal that started `sorter serve` closed) ended it like a crash,
    # without the final commit of a batch-durability journal
    db = tmp_path / "hup.db"
    with service(tmp_path, db, CHUTES, "batch", extra=("--commit-ms", "60000")) as (proc, port):
        cl = Client(port)
        assert cl.request(b"HELLO|1|plc\n").startswith("HELLO|1|plc")
        answer = cl.request(b"SCAN|2|P1|01422|0|1\n")
        assert answer.startswith("DEST|2|P1|")
        cl.close()
        assert stop_service(proc, signal.SIGHUP) == 0
    rows = journal_rows(db, "plc")
    assert [r[0] for r in rows] == [2] and rows[0][1] == "scan"


def test_a_journal_that_is_a_pipe_or_device_is_refused_before_sqlite_touches_it(tmp_path):
    """SQLite takes /dev/null as an empty database that forgets every write and puts its -wal /
    -journal files beside it (in /dev); a pipe fails later as a disk I/O error. Both are
    refused up front, naming the path and the field, and nothing is made beside them."""
    from sorter.errors import InputError
    fifo = tmp_path / "journal.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file") as e:
        open_service(PLAN, CHUTES, journal=fifo)
    assert e.value.field == "journal" and str(fifo) in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.fifo"]
