"""QA session 17 (files): how the commands that read and write files treat what a real file
system holds -- FIFOs with a reader, journals on read-only storage, dangling links, and
``kill PID`` / Ctrl-C while outputs are written."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sorter.cli import main
from sorter.resources import seed_path
from sorter.service.server import Connection, open_service

from service_fakes import FakeTransport

PLAN = seed_path("plan/demo_plan.csv")
CHUTES = seed_path("plan/demo_chutes.toml")
EVENTS = seed_path("plan/demo_events.csv")
SMALL = seed_path("scenarios/small.toml")
TIMEOUT = 120.0          # generous: a hang fails the test, a loaded machine does not

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def _cli(*argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def _journal(path, scans=30):
    """A small journal written by the service, closed cleanly (no -wal file left)."""
    svc, _ = open_service(PLAN, CHUTES, journal=path, deadline_ms=60_000)
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    svc.feed(conn, b"".join(b"SCAN|%d|P%d|01422|0|1\n" % (i, i) for i in range(1, scans + 1)))
    svc.journal.close()
    assert path.is_file() and not Path(str(path) + "-wal").exists()
    return path


# -- a FIFO at --out with a reader that reads to the end ---------------------------------------
# cat reads at once, as gzip or a shell loop would (a slower reader can miss the early close)
_READER = (["cat"] if shutil.which("cat") else
           [sys.executable, "-c", "import sys; sys.stdout.write(open(sys.argv[1]).read())"])


def _through_a_fifo(tmp_path, argv):
    """Run ``sorter ARGV`` (its --out is the FIFO ``tmp_path/out.csv``) with a reader process
    on the FIFO, as ``mkfifo p; gzip < p > d.gz & sorter ... --out p`` has. Returns
    (command's returncode, stderr, what the reader got)."""
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    reader = subprocess.Popen([*_READER, str(fifo)],
                              stdout=subprocess.PIPE, text=True)
    try:
        p = subprocess.run([sys.executable, "-m", "sorter.cli", *map(str, argv), "--out", str(fifo)],
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
        got, _ = reader.communicate(timeout=TIMEOUT)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert os.path.exists(fifo) and not fifo.is_file()        # still a FIFO
    return p.returncode, p.stderr, got


@needs_fifo
def test_assign_out_onto_a_fifo_whose_reader_reads_to_the_end(tmp_path):
    """The check of --out opened the FIFO and closed it: its reader saw the end of the file and
    left, and the decisions then waited for ever for a reader (the command hung; whether the
    reader sees that first close is a race, which
    test_checking_a_fifo_at_out_does_not_connect_to_its_reader_regression pins down)."""
    rc, err, got = _through_a_fifo(tmp_path, ["assign", "--plan", PLAN, "--chutes", CHUTES,
                                              "--events", EVENTS])
    assert rc == 0, err
    lines = got.splitlines()
    assert lines[0] == "parcel,chute,reason" and len(lines) > 100


@needs_fifo
def test_checking_a_fifo_at_out_does_not_connect_to_its_reader_regression(tmp_path):
    """The check itself: it must not open the FIFO (each open and close of the writing end
    is an end of file to the reader)."""
    import threading

    from sorter.report import check_out_file, written_whole

    fifo = tmp_path / "d.csv"
    os.mkfifo(fifo)
    connected = threading.Event()
    got = []

    def reader():
        fd = os.open(fifo, os.O_RDONLY)         # blocks until a writer opens it
        connected.set()
        with os.fdopen(fd, "rb") as fh:
            got.append(fh.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert check_out_file(fifo) == fifo
    # (a wait that is over at once when the check connects; with no connection, 2 s)
    assert not connected.wait(2.0), "the check opened the FIFO: its reader saw an end"
    with written_whole(fifo) as tmp:            # the one real write (unblocks the reader)
        tmp.write_text("parcel,chute,reason\n")
    t.join(TIMEOUT)
    assert got == [b"parcel,chute,reason\n"] and not fifo.is_file()


@needs_fifo
def test_journal_export_onto_a_fifo_whose_reader_reads_to_the_end(tmp_path):
    db = _journal(tmp_path / "j.db")
    rc, err, got = _through_a_fifo(tmp_path, ["journal", "export", db])
    assert rc == 0, err
    assert got.splitlines()[0].startswith("id,time,") and len(got.splitlines()) == 31


# -- a journal on read-only storage --------------------------------------------------------------
@pytest.fixture
def read_only_dir(tmp_path):
    """A folder with a journal in it that nobody may write to, root included (chattr +i),
    or a skip."""
    d = tmp_path / "ro"
    d.mkdir()
    _journal(d / "j.db")
    d.chmod(0o555)
    immutable = False
    try:
        (d / "probe").touch()
        (d / "probe").unlink()
        writable = True
    except OSError:
        writable = False
    if writable:                                   # root: permissions do not stop it
        try:
            r = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
            immutable = r.returncode == 0
        except OSError:
            immutable = False
        if not immutable:
            d.chmod(0o755)
            pytest.skip("no way to make a read-only folder here (root without chattr)")
    yield d
    if immutable:
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)
    d.chmod(0o755)


def test_journal_in_a_read_only_folder_is_shown_and_exported_regression(read_only_dir, tmp_path,
                                                                         capsys):
    """A cleanly closed journal in a folder the reader cannot write (a read-only mount, a
    backup, the service account's folder) was "not a sorter journal (unable to open database
    file)": SQLite could not make the -shm file beside it."""
    db = read_only_dir / "j.db"
    rc, out, err = _cli("journal", "show", db, capsys=capsys)
    assert rc == 0, err
    assert "30 rows" in out and "restored state" in out
    rc, out, err = _cli("journal", "export", db, "--out", tmp_path / "d.csv", capsys=capsys)
    assert rc == 0, err
    assert len((tmp_path / "d.csv").read_text().splitlines()) == 31
    # a service cannot append to it: said so, not "not a sorter journal"
    rc, out, err = _cli("serve", "--journal", db, "--port", "0", capsys=capsys)
    _one_line_error(rc, err, "j.db", "cannot open journal")
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["j.db"]


def test_a_file_that_is_no_journal_is_still_named_so(tmp_path, capsys):
    (tmp_path / "x.db").write_text("hello\n")
    rc, out, err = _cli("journal", "show", tmp_path / "x.db", capsys=capsys)
    _one_line_error(rc, err, "x.db", "not a sorter journal")


# -- a dangling link at --out ----------------------------------------------------------------------
@pytest.mark.parametrize("argv, sub", [
    (["run", SMALL, "--json"], ""),
    (["run", SMALL, "--json"], "sub/deeper"),
    (["sweep", SMALL, "--vary", "loop.speed_mps=2.0,2.5", "--seeds", "1", "--workers", "1",
      "--no-progress"], "sub"),
])
def test_out_through_a_link_to_a_missing_folder_fails_before_the_run_regression(
        tmp_path, capsys, monkeypatch, argv, sub):
    """Was checked as a folder it could make, then, after the whole run, "cannot create the
    folder: File exists"."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    out = link / sub if sub else link
    import sorter.sim.loop
    import sorter.sweep

    def never(*a, **k):
        raise AssertionError("ran before refusing --out")
    monkeypatch.setattr(sorter.sim.loop, "simulate", never)
    monkeypatch.setattr(sorter.sweep, "capacity_sweep", never)
    rc, _, err = _cli(*argv, "--out", out, capsys=capsys)
    _one_line_error(rc, err, "symbolic link", "gone", "does not exist")
    assert not (tmp_path / "gone").exists()


def test_out_through_a_link_to_a_folder_is_written(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")
    rc, _, err = _cli("run", SMALL, "--json", "--out", tmp_path / "out" / "a b ü", capsys=capsys)
    assert rc == 0, err
    assert (tmp_path / "real" / "a b ü" / "report.html").is_file()


# -- kill PID / Ctrl-C while the outputs are written ------------------------------------------------
_KILLED_WRITING = textwrap.dedent("""
    import os, signal, sys
    from sorter.report import written_whole, written_together
    out = sys.argv[1]
    if sys.argv[2] == "whole":
        with written_whole(os.path.join(out, "d.csv")) as tmp:
            with open(tmp, "w") as fh:
                fh.write("parcel,chute,reason\\nP1,C1,ok\\n")
                fh.flush()
                os.kill(os.getpid(), signal.SIGTERM)
                fh.write("P2,C2,ok\\n")
    else:
        with written_together(out, ["a.txt", "b.txt"]) as tmp:
            tmp["a.txt"].write_text("new")
            os.kill(os.getpid(), signal.SIGTERM)
            tmp["b.txt"].write_text("new")
    print("not killed")
""")


@pytest.mark.parametrize("how", ["whole", "together"])
def test_sigterm_while_writing_leaves_no_temporary_files_regression(tmp_path, how):
    """`kill PID` part-way through a write: the earlier outputs stay as they were and this
    run's half-written temporary files go (was: a hidden `.d.csv.PID.tmp`, or a
    `.sorter-writing-PID` folder, left beside them); the process still ends by SIGTERM."""
    for name in ("d.csv", "a.txt", "b.txt"):
        (tmp_path / name).write_text("old")
    p = subprocess.run([sys.executable, "-c", _KILLED_WRITING, str(tmp_path), how],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == -signal.SIGTERM, p.stderr
    assert "not killed" not in p.stdout and "Traceback" not in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt", "b.txt", "d.csv"]
    assert all((tmp_path / n).read_text() == "old" for n in ("d.csv", "a.txt", "b.txt"))


_CTRL_C_RENAMING = textwrap.dedent("""
    import os, signal, sys
    import sorter.report as report
    # Ctrl-C live, as in a terminal (a shell starts a background job, and so CI, ignoring it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = sys.argv[1]
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)     # Ctrl-C after the first rename starts
        return real(src, dst)
    report.os.replace = replace
    try:
        with report.written_together(out, ["a.txt", "b.txt", "c.txt"]) as tmp:
            for t in tmp.values():
                t.write_text("new")
    except KeyboardInterrupt:
        print("interrupted after", len(calls), "renames;",
              signal.getsignal(signal.SIGINT) is signal.default_int_handler)
""")


def test_ctrl_c_between_two_renames_puts_the_whole_set_in_place_regression(tmp_path):
    """Ctrl-C while a run's files were renamed into place left this run's first files beside
    the earlier run's others (kpis.json of one run, report.html of another). The signal now
    waits for the set to be in place, then stops the command. (In a process of its own: a
    pytest-xdist worker's signal handling is not a command's.)"""
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text("old")
    p = subprocess.run([sys.executable, "-c", _CTRL_C_RENAMING, str(tmp_path)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.stdout.strip() == "interrupted after 3 renames; True", (p.stdout, p.stderr)
    assert [(tmp_path / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["new"] * 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt"]
