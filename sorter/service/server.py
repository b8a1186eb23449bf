"""The scan-decision service: one chute engine behind a TCP line-telegram server.

A :class:`Service` owns the engine (one per sorter: one plan, shared by every
connection), the journal, the replay de-duplication table and the counters. Every
connection is a :class:`Connection` (an :class:`asyncio.Protocol`); its bytes go to
:meth:`Service.feed`, which splits lines, answers each (:meth:`Service.handle_line`)
and writes all the answers of one read in one ``transport.write``.

The per-scan hot path: dedupe lookup, :func:`~sorter.service.protocol.parse_line`,
deadline check, ``engine.assign``, format, one journal append (a list append under a
lock). Everything slow (SQLite, fsync, JSON snapshots) runs in the journal's writer
thread.

Design decisions (see ``docs/service.md``):

* Deadline: measured from the moment the service read the chunk holding the line
  (``time.perf_counter`` at ``data_received``). A scan still unanswered when the deadline
  has passed gets ``engine.reject("late")`` (the late reject chute, counted) instead of a
  decision nobody will act on. In ``sync`` mode the check is made when the decision is
  made; the group commit adds to the answer time (answers that leave after the deadline
  are counted as ``late_answers``).
* Idempotent replays: a telegram that is byte-for-byte the same as one already applied
  for the same client (the ``HELLO`` name, or the anonymous client) within the last
  ``dedupe_window`` journalled telegrams gets the original answer again and is not
  re-applied. A retransmission repeats the same seq and fields, so (client, seq, fields)
  identifies it; a recirculated parcel is scanned again with a higher recirculation
  count, so it is a new telegram.
* Recovery replays the journal through the engine (see :mod:`sorter.service.journal`).
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import signal
import sys
import time
from collections import deque
from pathlib import Path

from sorter.constants import STATES
from sorter.engine import _STATE_VERSION
from sorter.errors import InputError
from sorter.service.journal import Journal, _plan_to_json, restore
from sorter.service.protocol import (MAX_LINE, ChuteState, Container, Discharged, Heartbeat,
                                     Hello, PlanSwitch, Scan, Status, TelegramError,
                                     echo_seq, format_ack, format_err, format_hello,
                                     format_status, parse_line)

__all__ = ["Service", "Connection", "start_server", "run_server", "open_service", "MAX_BACKLOG"]

log = logging.getLogger(__name__)

_perf = time.perf_counter
_now = time.time

#: The parts of ``Sorter.state_dict()`` a decision or chute event changes (the rest only
#: changes with the plan in force): see :meth:`Service._state_json`.
_SNAP_DYNAMIC = ("rr_cursor", "state", "fill", "assigned", "discharged", "reason_count")

#: Journal rows applied and not yet committed beyond which the service stops reading from
#: its clients until the journal catches up (half of it): under an overload the writer
#: thread falls behind, and without a bound a crash in ``batch`` mode lost every
#: acknowledged row it had not reached (seconds of decisions) while memory grew.
MAX_BACKLOG = 10_000


class Connection(asyncio.Protocol):
    """One client connection. Its state: the client name, the partial line, the answers
    held back until their journal batch is committed (``sync`` mode)."""

    def __init__(self, service):
        self.service = service
        self.transport = None
        self.client = ""
        self.dedupe, self.dedupe_rid = service._dedupe_table("")
        self.buf = b""
        self.discarding = False       # inside an over-long line: drop bytes up to its newline
        self.long_prefix = b""
        self.need = 0                 # highest journal id an answer of ours waits for
        self.pending = deque()        # (need, payload, t_read) held until committed
        self.held = None              # while our PLAN loads: (bytes, t_read) read after it
        self.write_paused = False
        self.closing = False
        self.eof = False              # the client closed its side (no more bytes will come)

    # asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.service.conns.add(self)
        if self.service.throttled:    # the journal is catching up: read once it has
            transport.pause_reading()

    def data_received(self, data):
        self.service.feed(self, data)

    def eof_received(self):
        self.eof = True
        self.service.end_of_input(self)   # a last line without its newline gets its answer
        if self.pending or self.held is not None:   # keep the socket to answer, then close
            self.closing = True
            return True
        return None

    def connection_lost(self, exc):
        self.service.conns.discard(self)
        self.service._waiting.discard(self)
        self.pending.clear()

    def pause_writing(self):          # the client does not read: stop reading from it
        self.write_paused = True
        self.transport.pause_reading()

    def resume_writing(self):
        self.write_paused = False
        if self.held is None and not self.service.throttled:   # (a PLAN still loading, or
            self.transport.resume_reading()                    # the journal, resumes it)

    # output -------------------------------------------------------------------------
    def send(self, payload, t_read):
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        tr.write(payload)
        if _perf() - t_read > self.service.deadline:
            # the deadline is a scan's: only DEST lines count (no field holds '|', so a
            # line starting "DEST|" is a decision)
            self.service.n_late_answers += (payload.startswith(b"DEST|")
                                            + payload.count(b"\nDEST|"))


class Service:
    """Engine + journal + de-duplication + counters; protocol-independent of sockets.

    Parameters
    ----------
    engine : Sorter
        The chute engine (restored or fresh).
    journal : Journal, optional
        Without one, nothing is durable (decisions still de-duplicate in memory).
    deadline_ms : float
        Scan answer deadline, from the moment the line was read.
    snapshot_every : int
        Journal rows between two engine snapshots.
    dedupe_window : int
        How many journalled telegrams are remembered for replay de-duplication.
    restored : RestoreResult, optional
        Where the journal stands after :func:`~sorter.service.journal.restore`.
    """

    def __init__(self, engine, *, journal=None, deadline_ms=50.0, snapshot_every=10_000,
                 dedupe_window=100_000, restored=None):
        if not deadline_ms > 0:
            raise InputError(f"bad deadline {deadline_ms!r}", field="deadline_ms",
                             expected="a number of milliseconds > 0")
        if int(snapshot_every) < 1:
            raise InputError(f"bad snapshot interval {snapshot_every!r}", field="snapshot_every",
                             expected="journal rows between snapshots, an integer >= 1")
        if int(dedupe_window) < 0:
            raise InputError(f"bad de-duplication window {dedupe_window!r}", field="dedupe_window",
                             expected="telegrams remembered, an integer >= 0")
        self.engine = engine
        self.journal = journal
        self.sync = journal is not None and journal.sync
        self.deadline = float(deadline_ms) / 1000.0
        self.snapshot_every = int(snapshot_every)
        self.dedupe_window = int(dedupe_window)
        last = restored.last_id if restored is not None else 0
        if journal is not None:
            last = max(last, journal.committed)
        self.next_id = last + 1
        self.committed = last
        self._snap_id = last
        self._snap_cache = None        # (plan key, its encoded state head, zero cursors)
        self._plan_json = None         # (SortPlan, its JSON): made off the loop for a PLAN
        self.last_seq = dict(restored.last_seq) if restored is not None else {}
        self._dedupe = {}
        self._dd_order = deque()
        self.conns = set()
        self._waiting = set()
        self._loop = None
        self.stopped = None            # a Future set when the service must stop
        self.failure = None
        self.n_telegrams = 0
        self.n_scans = 0
        self.n_late = 0
        self.n_late_answers = 0
        self.n_errors = 0
        self.n_replayed = 0
        self.n_events = 0
        self.t_started = _now()
        self.max_backlog = MAX_BACKLOG
        self.throttled = False         # reading paused until the journal catches up
        self.journal_fresh = False     # open_service created the journal file (nothing restored)
        if restored is not None:
            for rid, client, seq, kind, parcel, chute, detail, telegram in restored.recent:
                if isinstance(telegram, str):
                    telegram = telegram.encode("ascii", "replace")
                seq = echo_seq(telegram) or seq           # the answer echoes seq as received
                ans = (f"DEST|{seq}|{parcel}|{chute}|{detail}\n".encode() if kind == "scan"
                       else format_ack(seq))
                self._dedupe_table(client)
                self._remember(client, bytes(telegram), ans, rid)

    # de-duplication ----------------------------------------------------------------------
    def _dedupe_table(self, client):
        # two dicts, line -> answer bytes and line -> journal id: atomic values only, so
        # the garbage collector never tracks (and never walks) these large tables
        t = self._dedupe.get(client)
        if t is None:
            t = self._dedupe[client] = ({}, {})
        return t

    def _remember(self, client, line, answer, rid):
        if self.dedupe_window == 0:
            return
        answers, rids = self._dedupe[client]
        answers[line] = answer
        rids[line] = rid
        order = self._dd_order
        order.append((client, line))
        if len(order) > self.dedupe_window:
            self._forget(*order.popleft())

    def _forget(self, client, line):
        answers, rids = self._dedupe[client]
        answers.pop(line, None)
        rids.pop(line, None)

    # the hot path -------------------------------------------------------------------------
    def feed(self, conn, data, t=None):
        """Answer every complete line in ``data`` (bytes read from ``conn``).

        ``t`` is when the bytes were read (default: now); the deadline counts from it.
        """
        if t is None:
            t = _perf()
        if conn.held is not None:     # a PLAN of this connection is loading: after it, in order
            conn.held.append((data, t))
            return
        out = []
        if conn.discarding:
            i = data.find(b"\n")
            if i < 0:
                return
            self.n_telegrams += 1
            self.n_errors += 1
            out.append(format_err(echo_seq(conn.long_prefix, cut=True), "too_long",
                                  f"line longer than {MAX_LINE} bytes"))
            conn.discarding = False
            data = data[i + 1:]
        if conn.buf:
            data = conn.buf + data
        lines = data.split(b"\n")
        tail = lines.pop()
        handle = self.handle_line
        for i, line in enumerate(lines):
            answer = handle(conn, line, t)
            if answer is None:        # a PLAN went to a worker thread: the rest waits for it
                conn.held.append((b"\n".join(lines[i + 1:] + [tail]), t))
                conn.buf = b""
                break
            out.append(answer)
        else:
            if len(tail) - (tail[-1:] == b"\r") > MAX_LINE:   # (a CRLF's \r is no part of it)
                conn.discarding = True
                conn.long_prefix = tail[:64]
                conn.buf = b""
            else:
                conn.buf = tail
        if out:
            self._deliver(conn, b"".join(out), t)
        if self.next_id - 1 - self._snap_id >= self.snapshot_every and self.journal is not None:
            self.snapshot()
        if self.next_id - 1 - self.committed > self.max_backlog and self.journal is not None:
            self._throttle()

    def end_of_input(self, conn, t=None):
        """The client closed its side: answer what is left after the last newline.

        A line cut off by the end of the input may be a truncated telegram (``...|0|`` for
        ``...|0|0``), so it is not applied; it is answered ``ERR|seq|unterminated|...``
        (``seq`` only when the field is complete, i.e. followed by ``|``, else ``-``) and
        logged. An over-long line still being dropped gets its ``too_long`` answer. Nothing
        or a lone ``\\r`` after the last newline is no telegram. While a ``PLAN`` of this
        connection loads, this waits for the telegrams held behind it.
        """
        if conn.held is not None:    # _plan_read calls again once the held bytes are answered
            return
        if t is None:
            t = _perf()
        tail, conn.buf = conn.buf, b""
        if conn.discarding:
            conn.discarding = False
            answer = format_err(echo_seq(conn.long_prefix, cut=True), "too_long",
                                f"line longer than {MAX_LINE} bytes")
        elif tail and tail != b"\r":
            log.warning("client closed its side after a line without a newline, not applied: %r",
                        tail[:80])
            answer = format_err(echo_seq(tail, cut=True), "unterminated",
                                "no newline before the client closed its side: the line may be "
                                "cut off and was not applied")
        else:
            return
        self.n_telegrams += 1
        self.n_errors += 1
        self._deliver(conn, answer, t)

    def _deliver(self, conn, payload, t):
        """Send answers now, or (``sync``) once the journal rows they answer are committed."""
        if self.sync and (conn.need > self.committed or conn.pending):
            conn.pending.append((conn.need, payload, t))
            self._waiting.add(conn)
            self.journal.kick()
        else:
            conn.send(payload, t)

    def handle_line(self, conn, line, t):
        """The answer (bytes, one line) to one telegram line read at time ``t``."""
        self.n_telegrams += 1
        raw = line                       # parse_line drops ONE trailing \r itself: a second is a bad_char
        if line[-1:] == b"\r":
            line = line[:-1]
        hit = conn.dedupe.get(line)
        if hit is not None:
            self.n_replayed += 1
            rid = conn.dedupe_rid[line]
            if rid > conn.need:
                conn.need = rid
            return hit
        try:
            tg = parse_line(raw)
        except TelegramError as e:
            self.n_errors += 1
            return format_err(None if e.seq is None else echo_seq(raw) or e.seq, e.code, e.text)
        try:
            if tg.__class__ is Scan:
                self.n_scans += 1
                if _perf() - t > self.deadline:
                    d = self.engine.reject("late")
                    self.n_late += 1
                else:
                    d = self.engine.assign(tg[2], tg[3], tg[4])
                seq = tg[0]
                # the answer echoes seq as received: its text if it has leading zeros
                st = seq if line[5] != 48 else echo_seq(line)     # (line = b"SCAN|seq|...")
                answer = f"DEST|{st}|{tg[1]}|{d[0]}|{d[1]}\n".encode()
                rid = self.next_id
                self.next_id = rid + 1
                if self.journal is not None:
                    self.journal.append((rid, _now(), conn.client, seq, "scan", tg[1], tg[2], tg[3],
                                         1 if tg[4] else 0, str(d[0]), d[1], line, None))
            else:
                if tg.__class__ is PlanSwitch and self._loop is not None:
                    self._load_plan(conn, tg, line, t)
                    return None           # answered when the plan file is read (off the loop)
                kind, rec, answer = self._other(conn, tg, _seq_echo(line, tg.seq))
                if kind is None:
                    return answer
                return self._applied(conn, tg.seq, kind, rec, line, answer)
        except Exception as exc:          # never let one telegram take the service down
            log.exception("telegram %r", line[:80])
            self.n_errors += 1
            return format_err(_seq_echo(line, tg.seq), "internal", f"{type(exc).__name__}: {exc}")
        self._remember_answer(conn, line, seq, rid, answer)
        return answer

    def _applied(self, conn, seq, kind, rec, line, answer):
        """Journal an applied chute event or plan switch; returns its answer."""
        self.n_events += 1
        rid = self.next_id
        self.next_id = rid + 1
        if self.journal is not None:
            self.journal.append((rid, _now(), conn.client, seq, kind) + rec[:6] + (line, rec[6]))
        self._remember_answer(conn, line, seq, rid, answer)
        return answer

    def _remember_answer(self, conn, line, seq, rid, answer):
        """Keep the answer for replays, the client's last seq, what the answer waits for."""
        if self.dedupe_window:
            conn.dedupe[line] = answer
            conn.dedupe_rid[line] = rid
            order = self._dd_order
            order.append((conn.client, line))     # atomic contents: the GC stops tracking it
            if len(order) > self.dedupe_window:
                self._forget(*order.popleft())
        ls = self.last_seq
        if seq > ls.get(conn.client, -1):
            ls[conn.client] = seq
        conn.need = rid

    # plan switches: the file is read in a worker thread ----------------------------------
    def _load_plan(self, conn, tg, line, t):
        """Read ``PLAN``'s file off the event loop. Other connections go on deciding under
        the plan in force; this connection's later telegrams wait for the switch (answers
        stay in order; their deadlines still count from when they were read)."""
        fut = self._loop.run_in_executor(None, _prepare_plan, self.engine, tg.path)
        conn.held = deque()
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.pause_reading()
        fut.add_done_callback(lambda f: self._plan_read(conn, tg, line, t, f))

    def _plan_read(self, conn, tg, line, t, fut):
        """Back on the loop: put the plan in force, answer, then the telegrams held back."""
        if self.stopped is not None and self.stopped.done():
            return                    # shutting down: unanswered, so the client re-sends it
        st = _seq_echo(line, tg.seq)
        try:
            prepared, plan_json = fut.result()
            self.engine.switch_plan(prepared)
            if self.engine.sort_plan is prepared.plan:     # (not a copy with other settings)
                self._plan_json = (prepared.plan, plan_json)   # the next snapshot's plan part
        except (ValueError, OSError, TypeError) as exc:
            self.n_errors += 1
            answer = format_err(st, "bad_plan", str(exc))
        except Exception as exc:      # never let one telegram take the service down
            log.exception("telegram %r", line[:80])
            self.n_errors += 1
            answer = format_err(st, "internal", f"{type(exc).__name__}: {exc}")
        else:
            answer = self._applied(conn, tg.seq, "plan", (None, None, None, None, None, tg.path,
                                                          plan_json), line, format_ack(st))
        self._deliver(conn, answer, t)
        held, conn.held = conn.held, None
        while held:
            data, t_read = held.popleft()
            self.feed(conn, data, t_read)
            if conn.held is not None:          # another PLAN: the rest waits behind it
                conn.held.extend(held)
                return
        if conn.eof:                           # the client's side closed meanwhile
            self.end_of_input(conn)
        tr = conn.transport
        if tr is None or tr.is_closing():
            return
        if conn.closing and not conn.pending:
            tr.close()
        elif not conn.write_paused and not self.throttled:
            tr.resume_reading()

    def _other(self, conn, tg, st):
        """Everything but scans: ``(kind, record fields, answer)``; kind None = not journalled.
        ``st``: the seq as received, for the answer."""
        cls = tg.__class__
        eng = self.engine
        if cls is Heartbeat:
            return None, None, format_ack(st)
        if cls in (ChuteState, Discharged, Container):
            try:
                if cls is ChuteState:
                    eng.set_state(tg.chute, tg.state)
                elif cls is Discharged:
                    eng.discharged(tg.chute)
                else:
                    eng.container_changed(tg.chute)
            except InputError:
                self.n_errors += 1
                return None, None, format_err(st, "unknown_chute",
                                              f"chute {tg.chute!r} is not in the chute table")
            if cls is ChuteState:
                return "chute", (None, None, None, None, tg.chute, tg.state, None), format_ack(st)
            if cls is Discharged:
                return ("discharged", (tg.parcel or None, None, None, None, tg.chute, None, None),
                        format_ack(st))
            return "container", (None, None, None, None, tg.chute, None, None), format_ack(st)
        if cls is PlanSwitch:
            try:
                eng.switch_plan(tg.path)
            except (ValueError, OSError, TypeError) as exc:
                self.n_errors += 1
                return None, None, format_err(st, "bad_plan", str(exc))
            return ("plan", (None, None, None, None, None, tg.path, _plan_to_json(eng.sort_plan)),
                    format_ack(st))
        if cls is Hello:
            conn.client = tg.client
            conn.dedupe, conn.dedupe_rid = self._dedupe_table(tg.client)
            if self.sync and self.next_id - 1 > conn.need:
                # `last` acknowledges every telegram up to it: in sync mode the answer waits
                # until the rows applied so far are committed (a reconnecting client told
                # of a row still in flight would never re-send it if the service crashed)
                conn.need = self.next_id - 1
            return None, None, format_hello(st, tg.client, self.last_seq.get(tg.client))
        if cls is Status:
            return None, None, format_status(st, self.stats())
        raise TypeError(f"no handler for {cls.__name__}")   # pragma: no cover

    # journal callbacks (loop thread) --------------------------------------------------------
    def _throttle(self):
        """Too many rows wait for the journal: stop reading from every client."""
        if self.throttled:
            return
        self.throttled = True
        for conn in self.conns:
            tr = conn.transport
            if tr is not None and not tr.is_closing():
                tr.pause_reading()
        self.journal.kick()

    def on_commit(self, upto):
        """The journal committed every row up to ``upto``: send the answers that waited."""
        if upto > self.committed:
            self.committed = upto
        if self.throttled and self.next_id - 1 - self.committed <= self.max_backlog // 2:
            self.throttled = False
            for conn in self.conns:
                tr = conn.transport
                if (tr is not None and not tr.is_closing() and not conn.write_paused
                        and conn.held is None):
                    tr.resume_reading()
        if not self._waiting:
            return
        for conn in list(self._waiting):
            pend = conn.pending
            while pend and pend[0][0] <= upto:
                _, payload, t = pend.popleft()
                conn.send(payload, t)
            if not pend:
                self._waiting.discard(conn)
                if conn.closing and conn.held is None and conn.transport is not None:
                    conn.transport.close()

    def on_journal_failure(self, exc):
        self.failure = exc
        log.error("journal failed (%s): stopping the service", exc)
        if self.stopped is not None and not self.stopped.done():
            self.stopped.set_result("journal failure")

    def snapshot(self):
        """Queue a snapshot of the engine state as of the last journal row."""
        if self.journal is None:
            return
        upto = self.next_id - 1
        self.journal.append_snapshot(upto, self._state_json())
        self._snap_id = upto
        if self.sync:
            self.journal.kick()

    def _state_json(self) -> str:
        """``json.dumps(engine.state_dict())``, without re-encoding what only a plan switch
        changes. The chute table, plan and destination codes are encoded once per plan in
        force (a 100,000-destination plan: 0.35 s of the event loop and of the GIL at every
        snapshot, 4.7 s at 1,000,000); a snapshot then encodes only the per-chute arrays
        and the round-robin positions."""
        eng = self.engine
        plan = eng.plan_in_force          # a new object at every switch (and every intern)
        cursor = plan.arrays()["rr_cursor"]
        key = (plan, eng.sort_plan, eng.chute_table, len(cursor))
        c = self._snap_cache
        if c is None or any(a is not b for a, b in zip(c[0][:3], key)) or c[0][3] != key[3]:
            pj = self._plan_json
            if pj is not None and pj[0] is eng.sort_plan:
                # after a PLAN: the plan's JSON was made in the worker thread (the slow part
                # of state_dict() and of its encoding); the same text as the dict would give
                head = (f'{{"version": {_STATE_VERSION}, '
                        f'"chutes": {json.dumps(eng.chute_table.as_dicts())}, "plan": {pj[1]}, '
                        f'"destinations": {json.dumps(eng._dest_codes())}')
            else:
                st = eng.state_dict()
                head = json.dumps({k: v for k, v in st.items() if k not in _SNAP_DYNAMIC})[:-1]
            self._plan_json = None
            c = self._snap_cache = (key, head, "[" + ", ".join(["0"] * len(cursor)) + "]")
        a = eng._arrays()
        rest = json.dumps({"state": [STATES[int(s)] for s in a["state"]],
                           "fill": a["fill"].tolist(), "assigned": a["assigned"].tolist(),
                           "discharged": a["discharged"].tolist(),
                           "reason_count": a["reason_count"].tolist()})
        cur = json.dumps(cursor.tolist()) if cursor.any() else c[2]
        return f'{c[1]}, "rr_cursor": {cur}, {rest[1:]}'

    def stats(self) -> dict:
        """Counters (what ``STATUS`` answers)."""
        j = self.journal
        return {
            "telegrams": self.n_telegrams, "scans": self.n_scans, "late": self.n_late,
            "late_answers": self.n_late_answers, "events": self.n_events,
            "errors": self.n_errors, "replayed": self.n_replayed,
            "connections": len(self.conns), "journal_id": self.next_id - 1,
            "committed": self.committed if j is not None else 0,
            "pending": j.pending if j is not None else 0,
            "durability": (j.durability if j is not None else "none"),
            "plan": self.engine.plan_name,
        }

    # lifecycle -----------------------------------------------------------------------------
    def attach(self, loop):
        """Bind to the running event loop (journal callbacks arrive through it)."""
        self._loop = loop
        self.stopped = loop.create_future()
        if self.journal is not None:
            def _commit(upto, _loop=loop, _cb=self.on_commit):
                try:
                    _loop.call_soon_threadsafe(_cb, upto)
                except RuntimeError:        # loop closed while shutting down
                    pass

            def _fail(exc, _loop=loop, _cb=self.on_journal_failure):
                try:
                    _loop.call_soon_threadsafe(_cb, exc)
                except RuntimeError:
                    pass
            self.journal.on_commit = _commit
            self.journal.on_failure = _fail

    def shutdown(self):
        """Stop reading, commit the journal, send held answers, snapshot, close."""
        for conn in list(self.conns):
            if conn.transport is not None and not conn.transport.is_closing():
                try:
                    conn.transport.pause_reading()
                except Exception:
                    pass
        self.throttled = False         # (so that on_commit below resumes no reading)
        if self.journal is not None:
            if self.failure is None:
                self.snapshot()
                self.journal.flush(30.0)
            self.on_commit(self.journal.committed)
            self.journal.close()
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()


def _seq_echo(line, seq):
    """The seq of a parsed telegram ``line`` as the answer echoes it: ``seq`` itself, or its
    text as received when that has leading zeros (``HB|007`` -> ``'007'``)."""
    return seq if line[line.index(b"|") + 1] != 48 else echo_seq(line)


def _prepare_plan(engine, path):
    """Worker thread: the plan file read, checked and laid out, and its journal JSON."""
    prepared = engine.prepare_plan(path)
    return prepared, _plan_to_json(prepared.plan)


def _check_chute_ids(engine, chutes_path):
    """Every chute id must fit a telegram field, or a DEST answer would break the framing."""
    from sorter.service.protocol import MAX_FIELD
    for cid in engine.chute_ids:
        text = str(cid)
        if not (0 < len(text) <= MAX_FIELD and text.isascii() and text.isprintable()
                and "|" not in text):
            raise InputError(f"chute id {text!r} cannot be sent in a telegram", path=chutes_path,
                             field="chute.id",
                             expected=f"1..{MAX_FIELD} printable ASCII characters without '|'")


def unscannable_destinations(engine) -> list:
    """The plan's destinations no ``SCAN`` telegram can carry (longer than a field, not
    printable ASCII, holding ``|``, or with spaces around, which a telegram field drops):
    scans meant for them can only come out ``unknown_destination`` or ``ERR``."""
    from sorter.service.protocol import MAX_FIELD
    bad = []
    for d in engine.sort_plan.routes:
        t = str(d)
        if not (0 < len(t) <= MAX_FIELD and t.isascii() and t.isprintable() and "|" not in t
                and t == t.strip(" ")):
            bad.append(t)
    return bad


def open_service(plan=None, chutes=None, *, journal=None, durability=None, commit_ms=10.0,
                 deadline_ms=50.0, snapshot_every=10_000, dedupe_window=100_000):
    """Build a :class:`Service`: restore from ``journal`` if it holds a state, else load
    ``plan`` and ``chutes``. Returns ``(service, message)``; ``message`` says which.

    ``durability`` (``'batch'`` / ``'sync'``): None = the mode the journal was last written
    with (the journal keeps it, so a restart with the short command stays ``sync``), else
    ``'batch'``."""
    from sorter.engine import Sorter

    # every setting is checked before the journal is touched (no file made for a typo)
    for name, value, hi, form in (("deadline_ms", deadline_ms, 3_600_000, "milliseconds"),
                                  ("commit_ms", commit_ms, 60_000, "milliseconds")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (math.isfinite(value) and 0 < value <= hi):
            raise InputError(f"bad value {value!r}", field=name.replace("_", "-"),
                             expected=f"{form} > 0, at most {hi:,}")
    for name, value, lo, hi in (("snapshot_every", snapshot_every, 1, 10**9),
                                ("dedupe_window", dedupe_window, 0, 10**8)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InputError(f"bad value {value!r}", field=name.replace("_", "-"),
                             expected=f"an integer from {lo} to {hi:,}")
    if durability not in (None, "batch", "sync"):
        raise InputError(f"bad durability {durability!r}", field="durability", expected="batch | sync")
    if journal is not None and Path(journal).is_dir():
        raise InputError("is a folder", path=journal, field="journal",
                         expected="a SQLite journal file (created if absent)")

    restored = None
    fresh = journal is not None and not Path(journal).exists()
    if journal is not None and Path(journal).exists() and Path(journal).stat().st_size > 0:
        restored = restore(journal, recent=dedupe_window)
    if restored is not None:
        engine = restored.sorter
        msg = (f"restored from journal {journal}: snapshot at row {restored.snapshot_upto}, "
               f"{restored.replayed} rows replayed, plan {engine.plan_name!r}")
        if plan is not None or chutes is not None:
            msg += " (--plan/--chutes ignored: the journal's state wins; send PLAN to switch)"
    else:
        if plan is None or chutes is None:
            raise InputError("no journal state to restore: --plan and --chutes are required",
                             field="plan", expected="--plan PLAN.csv --chutes CHUTES.toml")
        engine = Sorter.from_files(plan, chutes)
        msg = f"plan {engine.plan_name!r} from {plan}"
        _check_chute_ids(engine, chutes)
    jr = None
    if journal is not None:
        if durability is None:
            from sorter.service.journal import journal_durability
            durability = journal_durability(journal) or "batch"
        jr = Journal(journal, durability, commit_ms=commit_ms)
    svc = Service(engine, journal=jr, deadline_ms=deadline_ms, snapshot_every=snapshot_every,
                  dedupe_window=dedupe_window, restored=restored)
    svc.journal_fresh = fresh
    bad = unscannable_destinations(engine)
    if bad:
        from sorter.service.protocol import MAX_FIELD
        msg += (f"; warning: {len(bad)} destination(s) of the plan cannot be sent in a SCAN "
                f"telegram (1..{MAX_FIELD} printable ASCII characters without '|' or spaces around), "
                "e.g. " + ", ".join(repr(b) for b in bad[:3]))
    if jr is not None:                 # a base snapshot, so the next restart is quick
        svc.snapshot()
        if not jr.flush(30.0):
            raise OSError(f"cannot write the journal {journal}: {jr.failed}")
    return svc, msg


async def start_server(service, host="127.0.0.1", port=7070):
    """Start listening; returns the :class:`asyncio.Server` (the service attached).

    With ``port`` 0 and a host name with several addresses (``localhost``: IPv4 and IPv6)
    every address listens on the same free port, the one announced (each used to get a
    port of its own, and only the first was printed)."""
    loop = asyncio.get_running_loop()
    service.attach(loop)
    server = await loop.create_server(lambda: Connection(service), host, port,
                                      reuse_address=True, backlog=128)
    ports = {sock.getsockname()[1] for sock in server.sockets}
    if port == 0 and len(ports) > 1:
        first = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        try:
            server = await loop.create_server(lambda: Connection(service), host, first,
                                              reuse_address=True, backlog=128)
        except OSError:             # taken meanwhile on another address: ports of their own
            server = await loop.create_server(lambda: Connection(service), host, 0,
                                              reuse_address=True, backlog=128)
    return server


def _remove_journal(path):
    """Delete a SQLite journal and its WAL side files (best effort)."""
    for p in (Path(path), *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))):
        try:
            p.unlink()
        except OSError:
            pass


def run_server(service, host="127.0.0.1", port=7070, *, announce=None) -> int:
    """Serve until SIGINT/SIGTERM/SIGHUP (or a journal failure); returns an exit code.

    ``announce(host, port)`` is called once listening (the port may have been 0).
    """
    async def main():
        loop = asyncio.get_running_loop()
        try:
            server = await start_server(service, host, port)
        except (OSError, OverflowError) as exc:     # port taken, unknown host, no permission
            try:
                service.shutdown()                   # commit and close the journal cleanly
            except Exception:                        # pragma: no cover - best effort
                pass
            if service.journal_fresh:
                # a journal made for this start holds only the base snapshot of --plan: left
                # behind, the next start would restore it and ignore a corrected --plan
                _remove_journal(service.journal.path)
            raise InputError(f"cannot listen on {host}:{port}: "
                             f"{getattr(exc, 'strerror', None) or exc}", field="--host/--port",
                             expected="a free port (or --port 0) on an address of this "
                                      "machine") from None
        # SIGHUP too: closing the terminal that started the service stops it cleanly (journal
        # committed) instead of ending it like a crash
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is None:             # pragma: no cover - not POSIX
                continue
            try:
                loop.add_signal_handler(sig, lambda s=sig: service.stopped.done()
                                        or service.stopped.set_result(s.name))
            except (NotImplementedError, RuntimeError):    # pragma: no cover - non-POSIX
                pass
        addr = server.sockets[0].getsockname()
        if announce is not None:
            announce(addr[0], addr[1])
        reason = await service.stopped
        server.close()
        service.shutdown()
        await server.wait_closed()
        return reason

    # Latency: move everything allocated so far (imports, plan, restored tables) out of the
    # collector's reach, so a full collection walks only what the service made since.
    gc.collect()
    gc.freeze()
    # The journal's writer thread shares the GIL with the event loop: a short switch
    # interval bounds how long the loop can wait for it (default 5 ms).
    sys.setswitchinterval(0.0005)
    try:
        import uvloop                  # optional: faster event loop where installed
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    reason = runner(main())
    return 1 if reason == "journal failure" else 0
