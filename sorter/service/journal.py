"""The decision journal: every decision and chute event in SQLite, written off the hot path.

Layout (one SQLite file, WAL mode):

* ``journal``: one row per applied telegram, in the order the engine applied them:
  ``id`` (1, 2, ... in apply order), ``t`` (unix time), ``client`` (the name given by
  ``HELLO``, ``""`` if none), ``seq``, ``kind`` (``scan``, ``chute``, ``discharged``,
  ``container``, ``plan``), ``parcel``, ``destination`` (NULL = no-read),
  ``recirculation``, ``sortable``, ``chute``, ``detail`` (the reason of a scan's decision,
  the state of a ``chute`` event, the path of a plan switch), ``telegram`` (the line as
  received, stored as the received bytes) and ``data`` (the new plan as JSON for a plan switch).
* ``snapshot``: ``Sorter.state_dict()`` as JSON, with ``upto`` = the last journal id it
  includes. The latest three are kept.
* ``clients``: each client's highest journalled ``seq`` (what ``HELLO`` answers after a
  restart), written with the rows. A journal from before this table gets it filled once,
  when a service next opens it for writing (``meta`` key ``clients``); until then readers
  compute it from the rows.

Recovery (:func:`restore`) loads the latest snapshot and re-applies every journal row
after it through the engine, in order: decisions are made again (and checked against the
journalled answer), events re-applied, so round-robin cursors, fill counts, states and
counters come out identical to the engine that wrote the journal.

Durability (:class:`Journal`): a writer thread commits the queued rows in one
transaction per batch. ``sync`` mode (``PRAGMA synchronous=FULL``) fsyncs the WAL at each
commit and the service holds each answer until the batch holding its row is committed
(group commit); ``batch`` mode (``synchronous=NORMAL``) commits every ``commit_ms`` while
answers go out at once.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sorter.errors import InputError, SorterError
from sorter.plan import SortPlan

__all__ = ["Journal", "JournalError", "RestoreResult", "RECORD_COLUMNS", "KINDS",
           "DURABILITY", "restore", "apply_record", "read_records", "export", "journal_info",
           "journal_durability"]

log = logging.getLogger(__name__)

#: Columns of a journal row, in order (a record tuple has exactly these fields).
RECORD_COLUMNS = ("id", "t", "client", "seq", "kind", "parcel", "destination", "recirculation",
                  "sortable", "chute", "detail", "telegram", "data")
#: Kinds of journal rows.
KINDS = ("scan", "chute", "discharged", "container", "plan")
#: Durability modes.
DURABILITY = ("batch", "sync")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, client TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, parcel TEXT, destination TEXT, recirculation INTEGER, sortable INTEGER,
    chute TEXT, detail TEXT, telegram TEXT NOT NULL, data TEXT);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY AUTOINCREMENT, upto INTEGER NOT NULL, t REAL NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS clients (client TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
"""
# each client's highest seq, kept by the writer in the transaction of its rows (a restart
# reads it instead of a GROUP BY over the whole journal: 2.3 s at 2,000,000 rows)
_UPSERT_CLIENTS = ("INSERT INTO clients SELECT client, MAX(seq) FROM journal WHERE id >= ? "
                   "GROUP BY client ON CONFLICT(client) DO UPDATE SET "
                   "last_seq = max(last_seq, excluded.last_seq)")
_INSERT = "INSERT INTO journal VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
_KEEP_SNAPSHOTS = 3


class JournalError(SorterError, ValueError):
    """The journal cannot be read or written, or replaying it does not reproduce its
    decisions. A ``ValueError``, so the command line reports it in one line."""


def _lock_journal(path):
    """An exclusive lock on the journal file, held while a :class:`Journal` writes it.

    Two services on one journal would both append rows with the same ids (and decide from
    two diverging engines): the second is refused at start-up. ``flock`` locks are
    independent of SQLite's own (``fcntl``) locks and are dropped by the kernel when the
    process dies, so a restart after a crash is never blocked. Returns the file
    descriptor to close (None where ``flock`` does not exist).
    """
    if os.path.exists(path) and not os.path.isfile(path):
        # /dev/null "works" as an SQLite file that forgets everything, and SQLite then makes
        # its -wal / -journal files beside it (in /dev); a pipe fails later, less clearly
        raise InputError("not a regular file (a device, pipe or directory)", path=path,
                         field="journal", expected="a writable SQLite file path")
    try:
        import fcntl
    except ImportError:             # pragma: no cover - not POSIX: no lock
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot open journal: {exc.strerror or exc}", path=path, field="journal",
                         expected="a writable SQLite file") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise InputError("in use by another running `sorter serve`", path=path, field="journal",
                         expected="a journal no other service is writing: stop that one first, "
                                  "or give another --journal") from None
    return fd


def _yield_to_event_loop():
    """Run the calling (writer) thread below the event loop's CPU priority.

    SQLite's work happens outside the GIL, so without this the writer competes with the
    event loop for the core and a scan that arrives during a commit waits for it: under a
    real-time policy (``chrt -f``) the writer's whole batch runs first. The writer instead
    drops to the normal policy at a lower priority (nice +10) and uses the loop's idle time;
    a ``sync`` answer still waits for its commit. Best effort: ignored where not allowed.
    """
    tid = threading.get_native_id()
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:    # 0 = this thread on Linux
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + 10, 19))
    except (AttributeError, OSError):
        pass


def _connect(path, durability="batch"):
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=" + ("FULL" if durability == "sync" else "NORMAL"))
    con.executescript(_SCHEMA)
    return con


def _connect_ro(p):
    """A read-only connection to the journal file ``p`` (a Path)."""
    uri = p.absolute().as_uri()
    con = sqlite3.connect(uri + "?mode=ro", uri=True)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return con
    except sqlite3.OperationalError:
        con.close()
        # a WAL journal closed cleanly (no -wal file) in a folder this user cannot write (a
        # read-only mount, a backup, the service account's folder): SQLite cannot make the
        # -shm file it reads through and said "unable to open database file", read as "not a
        # sorter journal". With no -wal file nothing is pending: the file alone is the journal.
        if os.path.exists(str(p) + "-wal") or os.access(p.parent, os.W_OK):
            raise
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)


def _open_existing(path):
    p = Path(path)
    if not p.exists():
        raise InputError("no such journal", path=p, expected="a journal written by `sorter serve`")
    if not p.is_file():                # a folder, device or pipe (opening a pipe would block)
        raise InputError("not a regular file", path=p, expected="a journal written by `sorter serve`")
    try:
        # as_uri() escapes '#', '?' and '%': in a raw "file:" URI they would cut the name short
        # (a journal 'shift#2.db' could not be restored and an empty 'shift' was created)
        con = _connect_ro(p)
        con.execute("SELECT id FROM journal LIMIT 1")
        con.execute("SELECT upto FROM snapshot LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a sorter journal ({exc})", path=p,
                         expected="a journal written by `sorter serve`") from None
    return con


# -- replay ---------------------------------------------------------------------------
_JSON_CHUNK = 10_000      # routes encoded per json.dumps call by _plan_to_json


def _plan_to_json(plan: SortPlan) -> str:
    # the text of json.dumps() of the whole dict, but the routes are encoded _JSON_CHUNK at
    # a time: json.dumps holds the GIL throughout, and a service encodes a PLAN's new plan
    # in a worker thread while the event loop answers (1,000,000 routes in one call held
    # the loop for ~2.5 s)
    head = json.dumps({"name": plan.name, "strategy": plan.strategy,
                       "max_recirculation": int(plan.max_recirculation),
                       "overflow": list(plan.overflow), "reject": dict(plan.reject),
                       "routes": {}})
    items = list(plan.routes.items())
    parts = []
    for i in range(0, len(items), _JSON_CHUNK):
        parts.append(json.dumps({d: list(r) for d, r in items[i:i + _JSON_CHUNK]})[1:-1])
    return head[:-3] + "{" + ", ".join(parts) + "}}"


def _plan_from_json(text) -> SortPlan:
    d = json.loads(text)
    return SortPlan(routes={k: tuple(v) for k, v in d["routes"].items()}, reject=dict(d["reject"]),
                    overflow=tuple(d["overflow"]), strategy=d["strategy"],
                    max_recirculation=d["max_recirculation"], name=d["name"])


def apply_record(engine, kind, destination, recirculation, sortable, chute, detail, data):
    """Re-apply one journal row to ``engine``; returns the Decision for a scan, else None."""
    if kind == "scan":
        if detail == "late":
            return engine.reject("late")
        return engine.assign(destination, recirculation or 0, bool(sortable))
    if kind == "chute":
        engine.set_state(chute, detail)
    elif kind == "discharged":
        engine.discharged(chute)
    elif kind == "container":
        engine.container_changed(chute)
    elif kind == "plan":
        engine.switch_plan(_plan_from_json(data))
    else:
        raise JournalError(f"unknown journal row kind {kind!r}")
    return None


@dataclass
class RestoreResult:
    """What :func:`restore` rebuilt: the engine and where the journal stands."""

    sorter: object
    last_id: int                      # highest journal id (0 if none)
    snapshot_upto: int                # journal id the snapshot included
    replayed: int                     # rows re-applied after the snapshot
    last_seq: dict = field(default_factory=dict)     # client -> highest journalled seq
    recent: list = field(default_factory=list)       # (id, client, seq, kind, parcel, chute, detail, telegram)


def restore(path, *, recent=0):
    """Rebuild the engine from the latest snapshot plus the journal tail.

    Parameters
    ----------
    path : path
        A journal written by :class:`Journal` (``sorter serve --journal``).
    recent : int
        Also return the last ``recent`` rows (for the service's replay de-duplication).

    Returns
    -------
    RestoreResult or None
        None if the journal holds no snapshot yet (a fresh file).

    Raises
    ------
    InputError
        Not a journal.
    JournalError
        Replaying a row does not reproduce the journalled decision (a corrupt journal,
        or an engine whose rules changed since the journal was written).
    """
    from sorter.engine import Sorter

    con = _open_existing(path)
    try:
        row = con.execute("SELECT upto, state FROM snapshot ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        upto, state = row
        try:
            engine = Sorter.from_state(json.loads(state))
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(f"{path}: the snapshot after journal row {upto} cannot be "
                               f"loaded: {exc}") from None
        n = 0
        cur = con.execute("SELECT id, kind, destination, recirculation, sortable, chute, detail, "
                          "data FROM journal WHERE id > ? ORDER BY id", (upto,))
        for rid, kind, dest, rc, so, chute, detail, data in cur:
            try:
                d = apply_record(engine, kind, dest, rc, so, chute, detail, data)
            except (ValueError, KeyError, TypeError) as exc:
                raise JournalError(f"{path}: journal row {rid} cannot be re-applied: {exc}") from None
            if d is not None and (str(d.chute) != chute or d.reason != detail):
                raise JournalError(f"{path}: journal row {rid}: replay gives {d.chute}/{d.reason}, "
                                   f"journal says {chute}/{detail}")
            n += 1
        last_id = con.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0]
        last_id = max(last_id, upto)
        last_seq = _last_seqs(con)
        rows = []
        if recent > 0:
            rows = con.execute("SELECT id, client, seq, kind, parcel, chute, detail, telegram "
                               "FROM journal WHERE id > ? ORDER BY id",
                               (last_id - recent,)).fetchall()
        return RestoreResult(engine, last_id, upto, n, last_seq, rows)
    except sqlite3.DatabaseError as exc:     # a damaged file (power cut, disk fault)
        raise _damaged(path, exc) from None
    finally:
        con.close()


def _last_seqs(con) -> dict:
    """Each client's highest journalled seq: the ``clients`` table where the writer keeps
    it, else (a journal from before it) computed from the rows."""
    try:
        if con.execute("SELECT 1 FROM meta WHERE key = 'clients'").fetchone() is not None:
            return dict(con.execute("SELECT client, last_seq FROM clients"))
    except sqlite3.OperationalError:          # no meta / clients table: an older journal
        pass
    return dict(con.execute("SELECT client, MAX(seq) FROM journal GROUP BY client"))


def _damaged(path, exc):
    return JournalError(f"{path}: the journal cannot be read ({exc}); it is damaged: restore it "
                        "from a backup or start a new journal")


# -- the writer ---------------------------------------------------------------------------
class Journal:
    """Append-only journal with a background writer thread.

    Parameters
    ----------
    path : path
        SQLite file (created if absent).
    durability : {'batch', 'sync'}
        ``sync``: every commit fsyncs the WAL (``synchronous=FULL``); the caller holds its
        answers until :attr:`committed` passes their row id (``on_commit`` tells it when).
        ``batch``: commits every ``commit_ms`` with ``synchronous=NORMAL`` (survives a
        process crash once committed, not necessarily a power cut).
    commit_ms : float
        Batch mode: the commit interval.
    on_commit : callable, optional
        Called from the writer thread as ``on_commit(upto_id)`` after each commit.
    on_failure : callable, optional
        Called from the writer thread as ``on_failure(exc)`` if a commit fails; the
        writer then stops.

    Raises
    ------
    InputError
        The file cannot be opened, or another ``Journal`` (another running service) holds
        it: one writer per journal, locked until :meth:`close`.

    Notes
    -----
    :meth:`append` is the hot path: one lock-protected list append. Rows and snapshots
    are written in the order they were appended, each batch in one transaction, so the
    file always holds a prefix of what the engine applied.
    """

    def __init__(self, path, durability="batch", *, commit_ms=10.0, on_commit=None,
                 on_failure=None):
        if durability not in DURABILITY:
            raise InputError(f"unknown durability {durability!r}", field="durability",
                             expected=" | ".join(DURABILITY))
        if not commit_ms > 0:
            raise InputError(f"bad commit interval {commit_ms!r}", field="commit_ms",
                             expected="a number of milliseconds > 0")
        self.path = Path(path)
        self.durability = durability
        self.sync = durability == "sync"
        self.commit_s = float(commit_ms) / 1000.0
        self.on_commit = on_commit
        self.on_failure = on_failure
        self.committed = 0          # highest row id known committed
        self.commits = 0
        self.rows_written = 0
        self.failed = None
        self._items = []
        self._snaps = []
        self._appended = 0          # items queued so far (rows and snapshots)
        self._done = 0              # items written so far
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done_cond = threading.Condition()
        self._stopping = False
        self._lock_fd = _lock_journal(self.path)      # before anything is written
        try:
            con = _connect(self.path, durability)
        except sqlite3.DatabaseError as exc:
            self._unlock()
            raise InputError(f"cannot open journal ({exc})", path=self.path,
                             expected="a writable SQLite file") from None
        with con:
            con.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
            con.execute("INSERT OR REPLACE INTO meta VALUES ('format', '1')")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('durability', ?)", (durability,))
        if con.execute("SELECT 1 FROM meta WHERE key = 'clients'").fetchone() is None:
            con.execute("BEGIN")             # a journal from before the clients table: fill it
            con.execute("DELETE FROM clients")
            con.execute("INSERT INTO clients SELECT client, MAX(seq) FROM journal GROUP BY client")
            con.execute("INSERT INTO meta VALUES ('clients', '1')")
            con.execute("COMMIT")
        self.committed = con.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0]
        con.close()
        self._thread = threading.Thread(target=self._run, name="sorter-journal", daemon=True)
        self._thread.start()

    # hot path ---------------------------------------------------------------------
    def append(self, record):
        """Queue one record tuple (see :data:`RECORD_COLUMNS`; ``telegram`` is the line as
        received, bytes)."""
        with self._lock:
            self._items.append(record)
            self._appended += 1

    def kick(self):
        """Sync mode: ask the writer to commit what is queued now."""
        self._wake.set()

    def append_snapshot(self, upto, state):
        """Queue a snapshot of ``Sorter.state_dict()`` taken after journal row ``upto``
        (the dict, or its JSON text).

        It is committed in the same transaction as the rows queued before it (rows and
        snapshots of one batch commit together, so a snapshot never refers to a row
        that is not in the file)."""
        with self._lock:
            self._snaps.append((upto, time.time(), state))
            self._appended += 1

    @property
    def pending(self):
        """Items queued and not yet written."""
        return self._appended - self._done

    # writer -------------------------------------------------------------------------
    def _run(self):
        _yield_to_event_loop()
        try:
            con = _connect(self.path, self.durability)
        except Exception as exc:      # pragma: no cover - disk trouble
            self._fail(exc)
            return
        try:
            while True:
                if self.sync:
                    self._wake.wait()
                else:
                    self._wake.wait(self.commit_s)
                self._wake.clear()
                with self._lock:
                    items, self._items = self._items, []
                    snaps, self._snaps = self._snaps, []
                    stopping = self._stopping
                if items or snaps:
                    try:
                        self._write(con, items, snaps)
                    except Exception as exc:
                        self._fail(exc)
                        return
                with self._done_cond:
                    self._done += len(items) + len(snaps)
                    self._done_cond.notify_all()
                if stopping and not items and not snaps:
                    return
        finally:
            con.close()

    def _write(self, con, recs, snaps):
        # rows go to executemany as they are (no per-row Python work in this thread:
        # the telegram is stored as the bytes received)
        upto = recs[-1][0] if recs else self.committed
        snaps = [(u, t, state if isinstance(state, str) else json.dumps(state))
                 for u, t, state in snaps]
        con.execute("BEGIN")
        try:
            if recs:
                con.executemany(_INSERT, recs)
                con.execute(_UPSERT_CLIENTS, (recs[0][0],))
            if snaps:
                con.executemany("INSERT INTO snapshot (upto, t, state) VALUES (?,?,?)", snaps)
                con.execute("DELETE FROM snapshot WHERE id NOT IN "
                            f"(SELECT id FROM snapshot ORDER BY id DESC LIMIT {_KEEP_SNAPSHOTS})")
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        self.rows_written += len(recs)
        self.commits += 1
        if upto > self.committed:
            self.committed = upto
        if self.on_commit is not None:
            self.on_commit(self.committed)

    def _fail(self, exc):
        self.failed = exc
        log.error("journal %s: writer stopped: %s", self.path, exc)
        with self._done_cond:
            self._done_cond.notify_all()
        if self.on_failure is not None:
            self.on_failure(exc)

    # control ---------------------------------------------------------------------------
    def flush(self, timeout=10.0) -> bool:
        """Commit everything queued so far; True when it is committed within ``timeout`` s."""
        with self._lock:
            target = self._appended
        self._wake.set()
        with self._done_cond:
            ok = self._done_cond.wait_for(
                lambda: self._done >= target or self.failed is not None
                or not self._thread.is_alive(), timeout)
        return bool(ok) and self._done >= target and self.failed is None

    def close(self, timeout=10.0) -> bool:
        """Commit what is queued and stop the writer thread; True if all was committed."""
        ok = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._unlock()
        return ok

    def _unlock(self):
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


# -- reading and export ------------------------------------------------------------------
_EXPORT_COLUMNS = ("id", "time", "client", "seq", "kind", "parcel", "destination",
                   "recirculation", "sortable", "chute", "reason", "state", "plan", "telegram")
_EXPORT_SQL = ("SELECT id, t, client, seq, kind, parcel, destination, recirculation, sortable, "
               "chute, CASE kind WHEN 'scan' THEN detail END, CASE kind WHEN 'chute' THEN detail END, "
               "CASE kind WHEN 'plan' THEN detail END, telegram FROM journal")


def read_records(path, kinds=None, *, chunk=50_000):
    """Yield lists of export rows (see ``sorter journal export``), ``chunk`` rows at a time."""
    con = _open_existing(path)
    try:
        sql = _EXPORT_SQL
        args = ()
        if kinds:
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                raise InputError(f"unknown kind {bad[0]!r}", field="kind", expected=" | ".join(KINDS))
            sql += " WHERE kind IN (" + ",".join("?" * len(kinds)) + ")"
            args = tuple(kinds)
        try:
            cur = con.execute(sql + " ORDER BY id", args)
            while True:
                rows = cur.fetchmany(chunk)
                if not rows:
                    break
                for r in rows:
                    bad = _bad_export_field(r)
                    if bad is not None:       # a damaged page can still read as a row
                        raise _damaged(path, f"journal row {r[0]!r}: {bad[0]} reads as "
                                             f"{bad[1]!r:.60}")
                yield rows
        except sqlite3.DatabaseError as exc:
            raise _damaged(path, exc) from None
    finally:
        con.close()


_T_MIN, _T_MAX = 0.0, 253402300799.0            # 1970 .. 9999-12-31: a UTC timestamp in range
_TEXT_OR_NULL = (str, type(None))


def _bad_export_field(r):
    """``(column, value)`` of the first value of an export row that no journal writes (a
    damaged file: a time out of range, text where a number belongs, ...), else None."""
    i, t, client, seq, kind, parcel, dest, rc, so, chute, reason, state, plan, tg = r
    if not isinstance(i, int):
        return "id", i
    if t.__class__ not in (int, float) or not _T_MIN <= t <= _T_MAX:
        return "t", t
    if not isinstance(client, str):
        return "client", client
    if seq.__class__ is not int or not 0 <= seq < 2 ** 63:
        return "seq", seq
    if not isinstance(kind, str):
        return "kind", kind
    for name, v in (("parcel", parcel), ("destination", dest), ("chute", chute),
                    ("detail", reason if reason is not None else state if state is not None
                     else plan)):
        if not isinstance(v, _TEXT_OR_NULL):
            return name, v
    if rc is not None and (rc.__class__ is not int or not 0 <= rc < 2 ** 31):
        return "recirculation", rc
    if so is not None and so.__class__ is not int:
        return "sortable", so
    if not isinstance(tg, (bytes, str)):
        return "telegram", tg
    return None


def _text(x):
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode("ascii", "replace")
    return x


def export(path, out, kinds=None) -> int:
    """Write the journal as Parquet (``.parquet``) or CSV (``.csv``); returns the row count.

    Columns: id, time (UTC), client, seq, kind, parcel, destination (empty = no-read),
    recirculation, sortable, chute, reason (scans), state (chute events), plan (plan
    switches: the path), telegram (as received).

    The file is written beside ``out`` and renamed into place once complete: an export
    that fails part-way (a journal damaged in later pages: :class:`JournalError`) leaves
    no partial file, and a file already at ``out`` stays as it was.
    """
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv"):
        raise InputError(f"unknown output format {out.suffix!r}", path=out, field="out",
                         expected="a .parquet or .csv file name")
    _open_existing(path).close()       # a bad journal fails before the output is created
    if out.exists() and os.path.samefile(out, path):    # opening --out for writing empties it
        raise InputError("is the journal itself", path=out, field="out",
                         expected="an output file other than the journal")
    if kinds:
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise InputError(f"unknown kind {bad[0]!r}", field="kind", expected=" | ".join(KINDS))
    from sorter.report import check_out_file, written_whole
    check_out_file(out, field="out")
    # a journal found damaged part-way leaves no half-written export (and an earlier export
    # at --out stays as it was)
    with written_whole(out, field="out") as tmp:
        n = _write_export(path, tmp, ext, kinds)
    return n


def _write_export(path, out, ext, kinds) -> int:
    n = 0
    if ext == ".csv":
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(_EXPORT_COLUMNS)
            for rows in read_records(path, kinds):
                for r in rows:
                    t = _dt.datetime.fromtimestamp(r[1], _dt.timezone.utc).isoformat(
                        timespec="microseconds")
                    w.writerow((r[0], t) + tuple("" if x is None else x for x in r[2:-1])
                               + (_text(r[-1]),))
                n += len(rows)
        return n
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.int64()), ("time", pa.timestamp("us", tz="UTC")),
                        ("client", pa.string()), ("seq", pa.int64()), ("kind", pa.string()),
                        ("parcel", pa.string()), ("destination", pa.string()),
                        ("recirculation", pa.int32()), ("sortable", pa.bool_()),
                        ("chute", pa.string()), ("reason", pa.string()), ("state", pa.string()),
                        ("plan", pa.string()), ("telegram", pa.string())])
    with pq.ParquetWriter(str(out), schema) as writer:
        for rows in read_records(path, kinds):
            cols = list(zip(*rows))
            arrays = []
            for name, col in zip(_EXPORT_COLUMNS, cols):
                if name == "time":
                    col = [int(round(x * 1e6)) for x in col]
                elif name == "telegram":
                    col = [_text(x) for x in col]
                elif name == "sortable":
                    col = [None if x is None else bool(x) for x in col]
                arrays.append(pa.array(col, type=schema.field(name).type))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            n += len(rows)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


def journal_durability(path):
    """The durability mode the journal at ``path`` was last written with (``'batch'`` /
    ``'sync'``), or None (no such file, or written before the mode was kept)."""
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        return None
    try:
        con = _open_existing(path)
    except (JournalError, InputError, sqlite3.DatabaseError):
        return None
    try:
        row = con.execute("SELECT value FROM meta WHERE key='durability'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    finally:
        con.close()
    return row[0] if row and row[0] in DURABILITY else None


def journal_info(path) -> dict:
    """Counts for ``sorter journal show``: rows by kind, decisions by reason, snapshots."""
    con = _open_existing(path)
    try:
        info = {
            "rows": con.execute("SELECT COUNT(*) FROM journal").fetchone()[0],
            "last_id": con.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()[0],
            "by_kind": dict(con.execute("SELECT kind, COUNT(*) FROM journal GROUP BY kind")),
            "by_reason": dict(con.execute("SELECT detail, COUNT(*) FROM journal WHERE kind='scan' "
                                          "GROUP BY detail")),
            "clients": _last_seqs(con),
            "snapshots": [r[0] for r in con.execute("SELECT upto FROM snapshot ORDER BY id")],
        }
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from None
    finally:
        con.close()
    # damaged pages need not make SQLite fail: they may read back as rows of no known kind
    odd = [k for k in (*info["by_kind"], *info["by_reason"]) if not isinstance(k, str)]
    if odd:
        raise _damaged(path, f"a row's kind or reason reads as {odd[0]!r}")
    return info
