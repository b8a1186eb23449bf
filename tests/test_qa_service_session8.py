"""QA session 8: the scan-decision service (`sorter serve`, `sorter loadgen`, `sorter journal`)
driven like a warehouse-control engineer would: a second service on the same journal, a
damaged journal, an export onto the journal, a load run against the wrong port or a service
that stops part-way.

Each test pins one problem found by the sweep (input -> what went wrong) and failed before
its fix. In-process where possible; live sockets only on ephemeral localhost ports.
"""
from __future__ import annotations

import math
import socket
import sqlite3
import threading

import pytest

from sorter.cli import main
from sorter.errors import InputError
from sorter.resources import seed_path
from sorter.service.journal import JournalError, restore
from sorter.service.server import Connection, open_service
from service_fakes import FakeTransport
from test_qa_regressions import one_error_line

PLAN = str(seed_path("plan/demo_plan.csv"))
CHUTES = str(seed_path("plan/demo_chutes.toml"))




def journal_with_scans(path, n=5):
    """A closed journal holding ``n`` decisions (and the base and final snapshots)."""
    svc, _ = open_service(PLAN, CHUTES, journal=str(path), deadline_ms=60_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.feed(conn, b"".join(b"SCAN|%d|P%d|01422|0|1\n" % (i, i) for i in range(1, n + 1)))
    svc.shutdown()
    return svc


# -- sorter serve: one service per journal ------------------------------------------------

def test_second_service_on_a_journal_in_use_is_refused(tmp_path):
    """`sorter serve --journal j.db` started twice (a second terminal, systemd plus a manual
    start): the second restored the same state and both appended rows with the same ids;
    the first commit of the slower one failed (`UNIQUE constraint failed: journal.id`) and
    stopped it after it had acknowledged a decision that was never journalled. Now the
    second start is refused, naming the journal, before it writes anything."""
    db = tmp_path / "j.db"
    first, _ = open_service(PLAN, CHUTES, journal=str(db), deadline_ms=60_000)
    conn = Connection(first)
    conn.connection_made(FakeTransport())
    first.feed(conn, b"SCAN|1|P1|01422|0|1\n")
    assert first.journal.flush(30.0)
    with pytest.raises(InputError) as exc:
        open_service(None, None, journal=str(db))
    assert exc.value.field == "journal" and "in use" in str(exc.value) and str(db) in str(exc.value)
    first.feed(conn, b"SCAN|2|P2|01422|0|1\n")        # the first service carries on
    first.shutdown()
    assert first.journal.failed is None
    again, msg = open_service(None, None, journal=str(db))    # stopped: the journal is free
    assert msg.startswith("restored") and again.next_id == 3
    again.shutdown()


@pytest.mark.parametrize("name", ["shift#2.db", "a?b.db"])
def test_journal_name_with_uri_characters_restores(tmp_path, capsys, name):
    """`sorter serve --journal 'shift#2.db'` wrote its journal, but the restart (and `sorter
    journal show`) opened it as a SQLite URI cut at '#' or '?': "not a sorter journal", and
    an empty file 'shift' appeared next to it. Now the name is escaped."""
    db = tmp_path / name
    live = journal_with_scans(db).engine.state_dict()
    again, msg = open_service(None, None, journal=str(db))
    assert msg.startswith("restored") and again.engine.state_dict() == live
    again.shutdown()
    assert main(["journal", "show", str(db)]) == 0
    assert "5 rows" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} <= {name, name + "-wal", name + "-shm"}


def test_journal_show_on_a_pipe_fails_instead_of_hanging(tmp_path, capsys):
    """`sorter journal show jfifo` (a named pipe where the journal was expected) blocked for
    ever in SQLite's open(). Now refused like a folder: one line naming it."""
    import os
    fifo = tmp_path / "j.db"
    os.mkfifo(fifo)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("code", main(["journal", "show", str(fifo)])),
                         daemon=True)
    t.start()
    t.join(20.0)
    if t.is_alive():                      # the old code: unblock its open() so the test ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5.0)
        pytest.fail("`sorter journal show` on a pipe blocked")
    err = capsys.readouterr().err
    assert box["code"] == 2 and "Traceback" not in err and str(fifo) in err, err
    assert "regular file" in err


# -- a damaged journal: one line, not a traceback ------------------------------------------

def _tamper_decision(db):
    con = sqlite3.connect(db)
    con.execute("UPDATE journal SET chute = 'C299' WHERE id = 3")
    con.execute("DELETE FROM snapshot WHERE upto > 0")      # so row 3 is replayed
    con.commit()
    con.close()


def _bad_snapshot(db):
    con = sqlite3.connect(db)
    con.execute("UPDATE snapshot SET state = '{\"chutes\": [' WHERE id = (SELECT MAX(id) FROM snapshot)")
    con.commit()
    con.close()


def _bad_row(db):
    con = sqlite3.connect(db)
    con.execute("UPDATE journal SET kind = 'scam' WHERE id = 2")
    con.execute("DELETE FROM snapshot WHERE upto > 0")
    con.commit()
    con.close()


def _malformed_pages(db):
    data = bytearray(db.read_bytes())
    for page in range(1, len(data) // 4096):   # every page but the header: "malformed"
        data[page * 4096 + 100: page * 4096 + 200] = b"\xff" * 100
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,needle", [
    (_tamper_decision, "row 3"), (_bad_snapshot, "snapshot"), (_bad_row, "row 2"),
    (_malformed_pages, "damaged")])
def test_damaged_journal_is_one_line_naming_it(tmp_path, capsys, damage, needle):
    """A journal whose decision no longer replays (JournalError), whose snapshot is cut off
    (json error without a file name), with an unknown row kind, or with damaged pages
    (sqlite3.DatabaseError after a power cut): `sorter serve --journal` and `sorter journal
    show` printed a Python traceback. Now one line naming the journal and what is wrong."""
    db = tmp_path / "j.db"
    journal_with_scans(db, 300 if damage is _malformed_pages else 5)
    damage(db)
    with pytest.raises(JournalError):
        restore(db)
    assert issubclass(JournalError, ValueError)
    one_error_line(capsys, ["serve", "--journal", str(db), "--port", "0"], str(db), needle)
    one_error_line(capsys, ["journal", "show", str(db)], str(db), needle)


# -- sorter journal export ----------------------------------------------------------------

def test_export_onto_the_journal_itself_is_refused(tmp_path, capsys):
    """`sorter journal export audit.csv --out ./audit.csv` (a journal given a .csv name): the
    output was opened for writing first, which emptied the journal, then the export failed
    with "not a sorter journal": the audit trail was gone. Now refused, journal intact."""
    db = tmp_path / "audit.csv"
    journal_with_scans(db)
    before = restore(db).sorter.state_dict()
    one_error_line(capsys, ["journal", "export", str(db), "--out", str(tmp_path / "." / "audit.csv")],
                   "out", "journal itself")
    assert restore(db).sorter.state_dict() == before
    assert main(["journal", "export", str(db), "--out", str(tmp_path / "d.csv")]) == 0


# -- sorter loadgen -----------------------------------------------------------------------

class _OneShotServer:
    """A localhost TCP server on an ephemeral port: each connection gets ``reply(first_read)``
    once, then is closed."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                c.sendall(self.reply(data))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)     # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5.0)


def test_loadgen_against_something_else_counts_no_answers(capsys):
    """`sorter loadgen --port P` where P is not the service (an HTTP server): every line of its
    reply counted as an answer: "sent 1 answered 13 -> 17,887 scans/s, unanswered -12"; a
    malformed DEST line crashed the reader; `--json` printed `NaN` latencies, which strict JSON
    readers refuse. Now only answers to our telegrams count, and no latency is `null`."""
    junk = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>\n<body>\n</body>\n"
            b"DEST|x|P|C001|ok\nDEST|99999999999|P|C001|ok\nACK|0\n</html>\n")
    srv = _OneShotServer(lambda data: junk)
    try:
        code = main(["loadgen", "--port", str(srv.port), "--rate", "50", "--seconds", "0.2",
                     "--json"])
    finally:
        srv.close()
    import json

    def strict(c):
        raise ValueError(f"{c} is not JSON")
    r = json.loads(capsys.readouterr().out, parse_constant=strict)
    assert code == 1
    assert r["sent"] >= 1 and r["answered"] == 0 and r["unanswered"] == r["sent"]
    assert r["errors"] >= 1 and r["scans_per_s"] == 0
    assert r["p50_us"] is None and r["p99_us"] is None     # nothing timed (was NaN: not JSON)


def test_loadgen_reports_a_service_that_stops_part_way(capsys):
    """The service stopped (SIGTERM) 0.5 s into a 3 s run: loadgen had answers for what it
    sent, printed "1,001 scans/s ... unanswered 0" and exit 0, as if the service had carried
    the load for 3 s. Now the run says it was cut short and exits 1."""
    def answer_then_close(data):
        lines = data.split(b"\n")[:-1]
        return b"".join(b"DEST|%s|%s|C001|ok\n" % tuple(ln.split(b"|")[1:3]) for ln in lines)

    srv = _OneShotServer(answer_then_close)
    try:
        code = main(["loadgen", "--port", str(srv.port), "--rate", "200", "--seconds", "5"])
    finally:
        srv.close()
    out = capsys.readouterr().out
    assert code == 1
    assert "CUT SHORT" in out and "closed 1 connection" in out, out


def test_loadgen_memory_is_bounded_whatever_the_options(capsys):
    """`sorter loadgen --rate 10000000 --seconds 86400` (both within their documented ranges)
    died with a numpy MemoryError traceback (6 TiB of timings); `--rate 0 --connections 1000`
    reserved 2,000,000 scans per connection, ~80 GB, and the OOM killer ended it. Now the
    paced run is refused in one line and a closed-loop run shares a bounded budget."""
    one_error_line(capsys, ["loadgen", "--rate", "10000000", "--seconds", "86400"],
                   "--rate/--seconds", "scans in one run")
    from sorter.service.loadgen import run_load, scans_per_connection

    with pytest.raises(ValueError, match="at most"):
        run_load(rate=1e7, seconds=86_400)
    for conns in (1, 7, 100, 1000):
        total = scans_per_connection(0, 5, conns) * conns
        assert 1 <= total * 16 <= 400e6          # array bytes: two float64 per scan
    assert scans_per_connection(0, 5, 1) == 2_000_000      # one connection: as before
    assert scans_per_connection(1111, 10, 4) == math.ceil(1111 * 10 / 4)   # the count, shared


def test_port_0_on_a_host_with_several_addresses_listens_on_one_port():
    # was: `--host '' --port 0` (or a name with IPv4 and IPv6 addresses) opened each address
    # on a free port of its own and announced only the first
    import asyncio

    from sorter.resources import seed_path
    from sorter.service.server import open_service, start_server
    svc, _ = open_service(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))

    async def ports():
        srv = await start_server(svc, "", 0)
        try:
            return [sock.getsockname()[1] for sock in srv.sockets]
        finally:
            srv.close()
            await srv.wait_closed()

    got = asyncio.run(ports())
    if len(got) < 2:
        pytest.skip("this machine listens on one address family only")
    assert len(set(got)) == 1, got
