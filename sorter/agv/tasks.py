"""Lifelong task streams: which goal each robot heads for next.

A task stream hands every robot a goal cell, and a new one each time the planner reports the goal
done (``Planner.finished``). One call per timestep::

    goals = tasks.start(planner)
    for t in range(steps):
        planner.step(goals)
        goals = tasks.update(planner)

Streams
-------
* :class:`ErrandTasks` -- League of Robot Runners task files (``roundrobin``: robot *i* gets
  errands *i*, *i + n*, *i + 2n*, ... of the file, cycling; ``greedy``: the next errand of the
  file goes to the next free robot; ``nearest``: a free robot takes the revealed task it can
  finish soonest, as the 2024 Start-Kit's default scheduler does); an errand is done when the
  robot stands on its cell.
* :class:`SortingTasks` -- a sorting floor: induct -> drop cell of the chute of the parcel's
  destination -> induct ... Destinations are drawn from a skewed mix (:class:`DestinationMix`:
  Zipf, the TMO "721" split, or uniform) and mapped to a chute by a router (:class:`ChuteTable`,
  a plain destination -> chutes table; the chute engine ``sorter.Sorter`` can stand in through
  the same two-method interface). The goal at a chute is the chute itself (the planner's
  station goal: its nearest drop cell, any drop cell completes). RHCR's SORTING scenario is
  ``SortingTasks(..., mix="uniform")`` with every eject station a destination.
* :class:`RandomTasks` -- goals drawn uniformly from free cells (MovingAI maps without roles),
  from the robot's own connected part of the floor where walls split it.

Induct choice (``induct_choice``): ``"balanced"`` (the default) -- the induct with the least
``distance + balance_weight * robots already heading there`` (one table per induct) -- or
``"nearest"``. With a skewed destination mix the robots leaving the busiest chutes all make for
the same few inducts under ``"nearest"``; ``"balanced"`` spreads them (``bench/RESULTS.md``: +30%
to +116% parcels on the 33x57 sorting floor at 200-500 robots, 7.43 -> 10.14 parcels per step on
the TMO-sized floor with 600 robots).

Counting: ``completed`` counts every goal completed (each induct visit and each drop, as LoRR
errands and RHCR tasks are counted); ``delivered`` counts parcels tipped into chutes.
"""
from __future__ import annotations

import numpy as np

from numba import njit

from sorter.errors import InputError
from sorter.layout.lorr import MAX_TASKS_REVEAL, STRATEGIES as ERRAND_STRATEGIES

__all__ = ["ErrandTasks", "SortingTasks", "RandomTasks", "DestinationMix", "ChuteTable", "QueueWatch",
           "MIXES", "INDUCT_CHOICES", "ERRAND_STRATEGIES", "connected_parts",
           "strongly_connected_parts"]

MIXES = ("zipf", "721", "uniform")
INDUCT_CHOICES = ("nearest", "balanced")




_SEQ_BITS = 40             # a pool key is (task length << _SEQ_BITS) | reveal number


def _generator(rng):
    """``rng`` as a Generator: a Generator as is, an integer as its seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)) and rng >= 0:
        return np.random.default_rng(rng)       # (a negative seed: NumPy's error names no field)
    raise InputError(f"rng={rng!r}", field="rng",
                     expected="a numpy.random.Generator (np.random.default_rng(seed)) or an integer "
                              "seed >= 0")


def _team(n_robots):
    """The team size as an int, checked (an integer >= 1)."""
    if (isinstance(n_robots, (bool, np.bool_)) or not isinstance(n_robots, (int, np.integer))
            or n_robots < 1):
        raise InputError(f"n_robots={n_robots!r}", field="robots", expected="an integer >= 1")
    return int(n_robots)


def _count(value, field, lo=1):
    """An integer count ``>= lo`` (int or NumPy integer; bools, floats and text refused: a
    float was truncated, ``True`` read as 1)."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or value < lo):
        raise InputError(f"{field}={value!r}", field=field, expected=f"an integer >= {lo}")
    return int(value)


def _check_team(stream, planner):
    """A task stream for ``n`` robots started with a planner of another team size."""
    n = getattr(planner, "n_robots", None)          # (duck-typed planners may not say)
    if n is not None and n != stream.n:
        raise InputError(f"a task stream for {stream.n} robots, a planner of {n}",
                         field="n_robots", expected="the planner's n_robots")


@njit(cache=True)
def _assign_nearest(rr, rc, pool_key, pool_task, task_r, task_c, taken, out):
    """For each free robot in order (cell row ``rr[i]``, col ``rc[i]``) take the untaken pool
    task of least ``|dr| + |dc| + length`` (first errand's row/col ``task_r``/``task_c``), the
    earliest revealed on ties; writes pool indices to ``out`` (-1 when none is left).

    The pool is sorted by ``pool_key`` = (length, reveal number): a task's cost is at least its
    length, so the scan stops at the first length above the best cost found."""
    m = pool_key.shape[0]
    seq = (np.int64(1) << _SEQ_BITS) - 1
    for i in range(rr.shape[0]):
        best = -1
        bc = np.int64(0)
        for j in range(m):
            if best >= 0 and (pool_key[j] >> _SEQ_BITS) > bc:
                break
            if taken[j]:
                continue
            t = pool_task[j]
            c = (abs(np.int64(task_r[t]) - rr[i]) + abs(np.int64(task_c[t]) - rc[i])
                 + (pool_key[j] >> _SEQ_BITS))
            if best < 0 or c < bc or (c == bc and (pool_key[j] & seq) < (pool_key[best] & seq)):
                best = j
                bc = c
        out[i] = best
        if best >= 0:
            taken[best] = True


class ErrandTasks:
    """LoRR errand stream, assigned as the problem's ``taskAssignmentStrategy`` says.

    Parameters
    ----------
    errands : int array
        Errand cells in file order (the task file; a multi-errand task's errands in a row).
    n_robots : int
        Team size *n*.
    strategy : {"roundrobin", "roundrobin_fixed", "greedy", "nearest"}
        ``"roundrobin"``: robot *i*'s *k*-th task is task ``(i + k * n) % n_tasks`` of the file.
        ``"roundrobin_fixed"`` (the LoRR 2023 start-kit's fixed assignment): robot *i* gets
        tasks *i*, *i + n*, *i + 2n*, ... of the file while there are any, then none: it
        parks at its last errand cell (or its start; where it stands after others pushed it
        off) and completes nothing more.
        ``"greedy"`` (the LoRR 2023 start-kit's queue): the tasks are handed out in file order
        (cycling) to whichever robots are free, robots of one step in index order; each robot
        holds ``ceil(reveal)`` revealed tasks (``numTasksReveal``) and does them in the order
        it got them: at the start robot 0 gets tasks 0 .. r-1, robot 1 the next r, ...; a
        robot that finishes its first task gets the file's next one at the back of its list
        (with ``reveal = 1``: robot *i* starts on task *i*).
        ``"nearest"`` (the LoRR 2024 start-kit's default scheduler, with Manhattan instead of
        exact distances): ``ceil(reveal * n)`` tasks of the file are revealed at the start (but
        not more than the file holds, and at least ``n``) and one more (the next of the file,
        cycling) each time a task is finished; each free robot,
        in index order, takes the revealed task it would finish soonest: least Manhattan
        distance from its cell to the first errand plus along the task's errands (the earliest
        revealed on ties). Needs ``width``. With ``prefetch``, a robot takes its next task
        already when it is within ``pick_ahead`` (default 2, table distance) of its task's
        last errand, chosen as from that errand, so that the table of the new task's first
        errand is computed ahead as well; the choice differs from one made on arrival only by
        the tasks revealed or taken in between (``pick_ahead = -1``: choose on arrival).
    offsets : int array (n_tasks + 1,), optional
        Multi-errand tasks (the LoRR 2024 files): task *j* is
        ``errands[offsets[j]:offsets[j + 1]]``, visited in order. Default: every errand is a
        task of its own.
    prefetch : bool
        When a robot comes within ``prefetch_ahead`` (in its table's distance) of its errand,
        have the planner compute the table of the errand after it in a background thread
        (:meth:`sorter.agv.pibt.Planner.prefetch`) where that one is known; plans are the same
        either way. Asked shortly before it is needed, the thread works on the tables needed
        soonest, and few computed tables wait for their robot (memory).
    width : int, optional
        Grid width (cell id = ``row * width + col``); needed by ``"nearest"``.
    reveal : float
        ``"nearest"``: revealed tasks per robot (the LoRR 2024 ``numTasksReveal``), at least 1;
        ``"greedy"``: tasks each robot holds (the LoRR 2023 ``numTasksReveal``; rounded up).
        The round-robin strategies give every robot its own tasks in a fixed order, so what
        is revealed ahead changes nothing there.

    Attributes
    ----------
    completed : int
        Errands reached (the LoRR 2023 score; every goal counts).
    idle : int
        ``"roundrobin_fixed"``: robots whose tasks have run out (0 for the other strategies).
    tasks_finished : int
        Tasks whose last errand was reached (the LoRR 2024 score; = ``completed`` for
        single-errand tasks).
    prefetch_ahead : int
        With ``prefetch``: the next errand's table is asked for within this table distance
        of the current errand (default 48).
    pick_ahead : int
        ``"nearest"`` with ``prefetch``: a robot takes its next task within this table
        distance of its task's last errand (default 2; -1: on arrival).

    Raises
    ------
    InputError
        On an empty or non-integer errand list, bad offsets, a team size below 1 or an unknown
        strategy.

    Examples
    --------
    >>> t = ErrandTasks([5, 6, 7], 2)
    >>> t.goal_of(np.array([0, 1]), np.array([0, 0])).tolist(), t.goal_of(np.array([0]), np.array([1])).tolist()
    ([5, 6], [7])
    """

    def __init__(self, errands, n_robots, strategy="roundrobin", offsets=None, prefetch=True,
                 width=None, reveal=1.0):
        e = np.asarray(errands)
        if e.ndim != 1 or e.size == 0 or not np.issubdtype(e.dtype, np.integer):
            raise InputError("errands must be a non-empty list of cell ids", field="tasks",
                             expected="a 1-D integer array")
        if e.min() < 0 or e.max() > np.iinfo(np.int32).max:    # (cast to int32 below: 2**32 + 3
            bad = int(e[(e < 0) | (e > np.iinfo(np.int32).max)][0])   # became cell 3)
            raise InputError(f"errand cell {bad} is outside the grid", field="tasks",
                             expected="cell ids >= 0 (row * width + col)")
        if strategy not in ERRAND_STRATEGIES:
            raise InputError(f"strategy {strategy!r}", field="taskAssignmentStrategy",
                             expected=" or ".join(repr(x) for x in ERRAND_STRATEGIES))
        if offsets is None:
            off = np.arange(e.size + 1, dtype=np.int64)
        else:
            off = np.asarray(offsets)
            if (off.ndim != 1 or off.size < 2 or not np.issubdtype(off.dtype, np.integer)
                    or off[0] != 0 or off[-1] != e.size or (np.diff(off) < 1).any()):
                raise InputError("offsets do not split the errands into tasks", field="offsets",
                                 expected=f"0 = offsets[0] < offsets[1] < ... < offsets[-1] = {e.size}")
            off = off.astype(np.int64)
        self.errands = e.astype(np.int32)
        self.offsets = off
        self.n_tasks = int(off.size - 1)
        self.n = _team(n_robots)
        self.strategy = strategy
        self.k = np.zeros(self.n, np.int64)            # tasks finished per robot
        self.task = np.zeros(self.n, np.int64)         # current task of each robot
        self.step_in_task = np.zeros(self.n, np.int64)
        self.completed = 0
        self.tasks_finished = 0
        self.delivered = 0
        self._next = 0                      # greedy / nearest: index of the next task of the file
        self._goals = None
        self.prefetch = bool(prefetch)
        self.prefetch_ahead = 48
        self._asked = np.zeros(self.n, np.bool_)       # the next errand's table was asked for
        self.pick_ahead = 2
        self._queued = np.full(self.n, -1, np.int64)   # "nearest": next task, taken ahead
        self._park = np.zeros(self.n, np.int64)        # "roundrobin_fixed": goal of an idle robot
        self._hold = None                              # "greedy": each robot's revealed tasks
        self._starting = False
        if strategy in ("nearest", "greedy"):
            if isinstance(reveal, bool) or not isinstance(reveal, (int, float, np.integer, np.floating)) \
                    or not 1 <= reveal < MAX_TASKS_REVEAL:
                raise InputError(f"reveal={reveal!r}", field="numTasksReveal",
                                 expected="revealed tasks per robot, a number from 1")
        if strategy == "greedy":
            self._r = int(np.ceil(reveal))
            if self._r * self.n > 1 << 26:
                raise InputError(f"{self._r} revealed tasks for each of {self.n} robots",
                                 field="numTasksReveal",
                                 expected=f"at most {(1 << 26) // self.n} tasks per robot")
        if strategy == "nearest":
            if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
                raise InputError(f"width={width!r}", field="width",
                                 expected="the grid width (a positive integer) for 'nearest'")
            self.width = int(width)
            self.reveal = float(reveal)
            r, c = self.errands // self.width, self.errands % self.width
            hop = np.abs(np.diff(r.astype(np.int64))) + np.abs(np.diff(c.astype(np.int64)))
            inside = np.ones(e.size - 1, bool)
            inside[off[1:-1] - 1] = False               # no hop from a task's last errand
            csum = np.concatenate([[0], np.cumsum(np.where(inside, hop, 0))])
            self._task_len = csum[off[1:] - 1] - csum[off[:-1]]   # Manhattan along each task
            if self._task_len.max() >= 1 << (62 - _SEQ_BITS):
                raise InputError(f"a task of Manhattan length {int(self._task_len.max())}",
                                 field="tasks", expected=f"tasks shorter than {1 << (62 - _SEQ_BITS)}")
            self._task_r = r[off[:-1]].astype(np.int32)
            self._task_c = c[off[:-1]].astype(np.int32)
            # revealed, unassigned tasks, sorted by (length, reveal number) = _pool_key
            self._pool = np.zeros(0, np.int64)
            self._pool_key = np.zeros(0, np.int64)
            self._revealed = 0

    def goal_of(self, robots, k):
        """Round-robin, single-errand tasks: cell of robot's ``k``-th errand (vectorised)."""
        return self.errands[(robots + k * self.n) % self.errands.size]

    def _reveal(self, count):
        ids = (self._next + np.arange(count, dtype=np.int64)) % self.n_tasks
        self._next = int((self._next + count) % self.n_tasks)
        key = ((self._task_len[ids].astype(np.int64) << _SEQ_BITS)
               | (self._revealed + np.arange(count, dtype=np.int64)))
        self._revealed += count
        order = np.argsort(key)
        ids, key = ids[order], key[order]
        at = np.searchsorted(self._pool_key, key)       # both ascending: stays sorted
        self._pool = np.insert(self._pool, at, ids)
        self._pool_key = np.insert(self._pool_key, at, key)

    def _new_tasks(self, robots, planner):
        """Give ``robots`` (ascending) their next task; returns the task indices."""
        if self.strategy == "nearest":
            idx = self._queued[robots]
            self._queued[robots] = -1
            free = idx < 0                              # not taken ahead: choose now
            if free.any():
                idx[free] = self._pick(planner.positions[robots[free]])
        elif self.strategy == "greedy":
            # the file's next tasks to the back of each robot's list (robots in index order;
            # at the start each robot takes r of them), the front of its list is its task
            r = self._r
            if self._hold is None:
                self._hold = np.empty((self.n, r), np.int64)
                self._head = np.zeros(self.n, np.int64)
            if self._starting:
                new = (self._next + np.arange(robots.size * r, dtype=np.int64)) % self.n_tasks
                self._next = int((self._next + robots.size * r) % self.n_tasks)
                self._hold[robots] = new.reshape(robots.size, r)
                self._head[robots] = 0
            else:
                new = (self._next + np.arange(robots.size, dtype=np.int64)) % self.n_tasks
                self._next = int((self._next + robots.size) % self.n_tasks)
                self._hold[robots, self._head[robots]] = new     # the finished task's slot
                self._head[robots] = (self._head[robots] + 1) % r
            idx = self._hold[robots, self._head[robots]]
        elif self.strategy == "roundrobin_fixed":
            idx = robots + self.k[robots] * self.n
            out = idx >= self.n_tasks                   # none left: park where it stands
            idx[out] = -1
            self._park[robots[out]] = planner.positions[robots[out]]
        else:
            idx = (robots + self.k[robots] * self.n) % self.n_tasks
        self.task[robots] = idx
        self.step_in_task[robots] = 0
        return idx

    def _pick(self, cells):
        """"nearest": take a pool task for robots standing on ``cells`` (in order)."""
        cells = np.asarray(cells, np.int64)
        taken = np.zeros(self._pool.size, np.bool_)
        pick = np.empty(cells.size, np.int64)
        pt = self._pool
        _assign_nearest(cells // self.width, cells % self.width, self._pool_key, pt,
                        self._task_r, self._task_c, taken, pick)
        self._pool = pt[~taken]
        self._pool_key = self._pool_key[~taken]
        return pt[pick]                                 # the pool holds >= cells.size tasks

    def _goal_cells(self, robots):
        t = self.task[robots]
        out = self.errands[self.offsets[np.maximum(t, 0)] + self.step_in_task[robots]]
        idle = t < 0                                    # "roundrobin_fixed": out of tasks
        if idle.any():
            out = np.where(idle, self._park[robots], out)
        return out

    @property
    def idle(self) -> int:
        """Robots with no task left (``"roundrobin_fixed"`` only)."""
        return int((self.task < 0).sum())

    def start(self, planner):
        _check_team(self, planner)
        self._next = 0
        robots = np.arange(self.n)
        if self.strategy == "nearest":
            self._pool = np.zeros(0, np.int64)
            self._pool_key = np.zeros(0, np.int64)
            self._revealed = 0
            # at most the whole file at once (more would only repeat its tasks), at least a
            # task per robot
            self._reveal(max(self.n, min(int(np.ceil(self.reveal * self.n)), self.n_tasks)))
        self._queued[:] = -1
        self._starting = True
        self._hold = None
        self._new_tasks(robots, planner)
        self._starting = False
        self._goals = self._goal_cells(robots).astype(np.int32)
        self._asked[:] = False
        return self._goals

    def _following(self, robots):
        """The errand after the current one of ``robots`` where it is known (-1 where not:
        a greedy strategy hands out the next task only when the robot is free)."""
        t = self.task[robots]
        busy = t >= 0                                   # (idle robots: nothing follows)
        t = np.maximum(t, 0)
        nxt = self.offsets[t] + self.step_in_task[robots] + 1
        out = np.full(robots.size, -1, np.int64)
        inside = (nxt < self.offsets[t + 1]) & busy
        out[inside] = self.errands[nxt[inside]]
        last = robots[~inside & busy]
        if self.strategy == "roundrobin":
            idx = (last + (self.k[last] + 1) * self.n) % self.n_tasks
            out[~inside & busy] = self.errands[self.offsets[idx]]
        elif self.strategy == "roundrobin_fixed":
            idx = last + (self.k[last] + 1) * self.n
            out[~inside & busy] = np.where(idx < self.n_tasks,
                                           self.errands[self.offsets[np.minimum(idx, self.n_tasks - 1)]], -1)
        elif self.strategy == "greedy" and self._r > 1:
            nxt_t = self._hold[last, (self._head[last] + 1) % self._r]
            out[~inside & busy] = self.errands[self.offsets[nxt_t]]
        return out

    def _prefetch(self, planner):
        """Ask for the next errand's table of the robots now near their errand (among those
        whose planner has their current goal: not the ones given a new goal this step)."""
        if not (self.prefetch and hasattr(planner, "prefetch")
                and hasattr(planner, "distance_left")):
            return
        current = planner.goals == self._goals
        if self.strategy == "nearest" and self.pick_ahead >= 0:
            self._pick_ahead(planner, current)
        robots = np.flatnonzero(~self._asked & current)
        if robots.size == 0:
            return
        left = planner.distance_left(robots)
        robots = robots[(left >= 0) & (left <= self.prefetch_ahead)]
        if robots.size == 0:
            return
        self._asked[robots] = True
        nxt = self._following(robots)
        known = nxt >= 0
        if known.any():
            planner.prefetch(nxt[known], near=self._goals[robots[known]])

    def _pick_ahead(self, planner, current):
        """"nearest": robots within ``pick_ahead`` of their task's last errand take their next
        task now (as from that errand; while the pool has tasks: at least one task per robot
        taken on arrival stays), and its first errand's table is asked for first."""
        t = self.task
        last = self.offsets[t] + self.step_in_task + 1 >= self.offsets[t + 1]
        robots = np.flatnonzero(last & current & (self._queued < 0))
        if robots.size == 0 or self._pool.size == 0:
            return
        left = planner.distance_left(robots)
        robots = robots[(left >= 0) & (left <= self.pick_ahead)][:self._pool.size]
        if robots.size == 0:
            return
        at = self._goals[robots]
        self._queued[robots] = q = self._pick(at)
        planner.prefetch(self.errands[self.offsets[q]], near=at, urgent=True)

    def update(self, planner):
        fin = np.flatnonzero(planner.finished)          # ascending robot index
        fin = fin[self.task[fin] >= 0]                  # (a parked robot "finishes" its park)
        if self.strategy == "roundrobin_fixed":
            # a parked robot pushed off its cell parks where it now stands (heading back, two
            # parked on one cell pushed each other to and fro for the rest of the run)
            idle = np.flatnonzero(self.task < 0)
            at = np.asarray(planner.positions)[idle]
            off = at != self._park[idle]
            if off.any():
                self._park[idle[off]] = at[off]
                self._goals = self._goals.copy()
                self._goals[idle[off]] = at[off]
        if fin.size:
            self.completed += fin.size
            self.step_in_task[fin] += 1
            t = self.task[fin]
            done = fin[self.offsets[t] + self.step_in_task[fin] >= self.offsets[t + 1]]
            if done.size:
                self.tasks_finished += done.size
                self.k[done] += 1
                if self.strategy == "nearest":
                    self._reveal(done.size)
                self._new_tasks(done, planner)
            self._goals = self._goals.copy()
            self._goals[fin] = self._goal_cells(fin)
            self._asked[fin] = False
        self._prefetch(planner)
        return self._goals

    def kpis(self, steps):
        """Extra KPIs of a run: LoRR 2024's score (tasks finished) beside the errands."""
        out = {"errands_completed": int(self.completed), "lorr_tasks_finished": int(self.tasks_finished),
               "lorr_tasks_per_step": self.tasks_finished / max(1, int(steps))}
        if self.strategy == "roundrobin_fixed":
            out["robots_out_of_tasks"] = self.idle
        return out


class RandomTasks:
    """Goals drawn uniformly from ``cells`` (default: every free cell) with a seeded generator.

    Parameters
    ----------
    cells : int array
        Cells to draw goals from.
    n_robots : int
    rng : numpy.random.Generator or int
        The generator, or an integer seed of one.
    moves : int array (n_cells, 4), optional
        The floor's move table. Given, and when ``cells`` fall into several connected parts of
        the floor (a MovingAI map with walled-off pockets), each robot's goals are drawn from
        the cells of its own part only: a goal it cannot reach would never be completed and the
        robot would wander for the rest of the run. Parts are strongly connected (cells that
        reach each other along the moves): on a floor with one-way moves a robot is never sent
        into a trap it cannot leave. A floor in one part draws exactly as without ``moves``.

    Notes
    -----
    A goal drawn on the robot's own cell is replaced by the next goal cell of its part (no
    extra draw, so the stream stays that of the seed): reaching it would count a task without
    a move. A robot whose only goal cell is its own (alone in a one-cell pocket) completes
    nothing.
    """

    def __init__(self, cells, n_robots, rng, *, moves=None):
        c = np.asarray(cells)
        if c.ndim != 1 or (c.size and (c.dtype == np.bool_
                                       or not np.issubdtype(c.dtype, np.integer))):
            # (a float was truncated to another cell, None failed inside NumPy)
            raise InputError(f"cells of shape {c.shape}, dtype {c.dtype}", field="cells",
                             expected="a 1-D array of integer cell ids (e.g. floor.free_cells)")
        if c.size and (c.min() < 0 or c.max() > np.iinfo(np.int32).max):
            raise InputError(f"cell {int(c[(c < 0) | (c > np.iinfo(np.int32).max)][0])}",
                             field="cells", expected="cell ids >= 0 (row * width + col)")
        self.cells = c.astype(np.int32)
        if self.cells.size == 0:
            raise InputError("no cells to draw goals from", field="cells", expected="free cells")
        self.n = _team(n_robots)
        self.rng = _generator(rng)
        self.completed = 0
        self.delivered = 0
        self._goals = None
        self._part = None
        if moves is not None:
            part = strongly_connected_parts(np.asarray(moves))
            lab = part[self.cells]
            if np.unique(lab).size > 1:
                order = np.argsort(lab, kind="stable")
                self.cells = self.cells[order]
                lab = lab[order]
                self._part = part
                self._lo = np.searchsorted(lab, np.arange(part.size))
                self._size = np.searchsorted(lab, np.arange(part.size), side="right") - self._lo
        self._order = np.argsort(self.cells, kind="stable")   # cells -> index in ``cells``
        self._sorted = self.cells[self._order]
        self._next = None            # with repeated cells: next index holding another cell
        if np.unique(self.cells).size < self.cells.size:
            self._next = self._next_other()

    def _next_other(self):
        """Per index of ``cells``: the next index of its part (cyclic) holding another cell,
        or an index of its own cell where the part holds no other cell."""
        c = self.cells
        lo, size = self._span(c)
        nxt = np.arange(c.size)
        for i in range(c.size - 1, -1, -1):
            last = lo[i] + size[i] - 1
            if i < last:                 # the next different cell after i, or wrap-around's
                nxt[i] = i + 1 if c[i + 1] != c[i] else nxt[i + 1]
            else:                        # the last index of its part: first other from lo
                other = np.flatnonzero(c[lo[i]:last + 1] != c[i])
                nxt[i] = lo[i] + other[0] if other.size else i
        return nxt

    def _span(self, at):
        """First index in ``cells`` and number of goal cells of the part of each cell ``at``."""
        if self._part is None:
            return np.zeros(at.size, np.int64), np.full(at.size, self.cells.size, np.int64)
        p = self._part[at]
        return self._lo[p], self._size[p]

    def _draw(self, planner, robots):
        at = np.asarray(planner.positions)[robots]
        lo, size = self._span(at)
        if self._part is None:
            out = self.rng.choice(self.cells, robots.size)
        else:
            out = np.empty(robots.size, np.int64)
            own = size > 0
            out[own] = self.cells[lo[own] + self.rng.integers(0, size[own])]
            out[~own] = self.rng.choice(self.cells, int((~own).sum()))
            size = np.where(own, size, 0)
        same = np.flatnonzero((out == at) & (size > 1))
        if same.size:                    # not the own cell: the next one of its part instead
            k = np.searchsorted(self._sorted, out[same])      # position in ``cells``
            k = self._order[k] - lo[same]
            if self._next is None:
                out[same] = self.cells[lo[same] + (k + 1) % size[same]]
            else:                        # repeated cells: skip the copies of its own cell
                out[same] = self.cells[self._next[lo[same] + k]]
        return out

    def start(self, planner):
        _check_team(self, planner)
        self._goals = self._draw(planner, np.arange(self.n)).astype(np.int32)
        at = np.asarray(planner.positions)
        lo, size = self._span(at)
        first = self.cells[np.minimum(lo, self.cells.size - 1)]
        if self._next is None:
            self._alone = (size == 1) & (first == at)
        else:                            # its part holds its own cell only, however often
            self._alone = (size > 0) & (first == at) & (
                self.cells[self._next[np.minimum(lo, self.cells.size - 1)]] == at)
        return self._goals

    def update(self, planner):
        fin = np.flatnonzero(planner.finished)
        if fin.size:
            self.completed += int((~self._alone[fin]).sum())
            self._goals = self._goals.copy()
            self._goals[fin] = self._draw(planner, fin)
        return self._goals


def strongly_connected_parts(moves):
    """Strongly connected part of every cell of a move table.

    Cells in one part can reach each other along the moves (label = the smallest cell id of
    the part). On a two-way floor these are the parts of :func:`connected_parts`; on a floor
    with one-way moves a trap (a cell that can be entered but not left) is a part of its own,
    so goals and starts drawn within one part are always reachable and can always be left.

    Parameters
    ----------
    moves : int array (n_cells, 4)
        A floor's move table (``Floor.moves``: target cell per direction, -1 for none).

    Returns
    -------
    int64 array (n_cells,)
        The part label of every cell (an obstacle is a part of its own).

    Examples
    --------
    Three cells in a row, 0 <-> 1 both ways, 1 -> 2 one way (cell 2 is a trap):

    >>> import numpy as np
    >>> moves = np.array([[1, -1, -1, -1], [2, -1, 0, -1], [-1, -1, -1, -1]])
    >>> strongly_connected_parts(moves).tolist(), connected_parts(moves).tolist()
    ([0, 0, 2], [0, 0, 0])
    """
    moves = np.ascontiguousarray(moves, dtype=np.int64)
    src, d = np.nonzero(moves >= 0)
    back = moves[moves[src, d], (d + 2) % 4]
    if np.array_equal(back, src):                       # every move goes both ways
        return connected_parts(moves)
    return _tarjan(moves)


_strong_parts = strongly_connected_parts     # the old private name (lifelong.py, tests)


@njit(cache=True)
def _tarjan(moves):
    """Tarjan's strongly connected components (iterative), each labelled by its smallest cell."""
    n = moves.shape[0]
    index = np.full(n, -1, np.int64)
    low = np.zeros(n, np.int64)
    onst = np.zeros(n, np.bool_)
    comp = np.full(n, -1, np.int64)
    stack = np.empty(n, np.int64)
    cs_v = np.empty(n, np.int64)
    cs_e = np.empty(n, np.int64)
    sp = 0
    idx = 0
    for s in range(n):
        if index[s] >= 0:
            continue
        top = -1
        w = s                                   # the cell to visit next (-1: none)
        while True:
            if w >= 0:                          # visit w: number it, push it
                index[w] = idx
                low[w] = idx
                idx += 1
                stack[sp] = w
                sp += 1
                onst[w] = True
                top += 1
                cs_v[top] = w
                cs_e[top] = 0
                w = -1
            if top < 0:
                break
            v = cs_v[top]
            e = cs_e[top]
            if e < moves.shape[1]:
                cs_e[top] = e + 1
                x = moves[v, e]
                if x >= 0 and index[x] < 0:
                    w = x
                elif x >= 0 and onst[x] and index[x] < low[v]:
                    low[v] = index[x]
                continue
            if low[v] == index[v]:              # v is the root of a component: pop it
                k = sp
                mn = v
                while True:
                    sp -= 1
                    x = stack[sp]
                    onst[x] = False
                    if x < mn:
                        mn = x
                    if x == v:
                        break
                for t in range(sp, k):
                    comp[stack[t]] = mn
            top -= 1
            if top >= 0:
                u = cs_v[top]
                if low[v] < low[u]:
                    low[u] = low[v]
    return comp


def connected_parts(moves):
    """Connected part of every cell of a move table, moves taken both ways.

    Parameters
    ----------
    moves : int array (n_cells, 4)
        A floor's move table (``Floor.moves``: target cell per direction, -1 for none).

    Returns
    -------
    int64 array (n_cells,)
        The part label of every cell: the smallest cell id of its part (an obstacle is a
        part of its own).

    Examples
    --------
    Cells 0 and 1 joined by a one-way move, cell 2 on its own:

    >>> import numpy as np
    >>> connected_parts(np.array([[1, -1, -1, -1], [-1, -1, -1, -1], [-1] * 4])).tolist()
    [0, 0, 2]
    """
    moves = np.asarray(moves)
    src, d = np.nonzero(moves >= 0)
    dst = moves[src, d].astype(np.int64)
    # a compiled union-find, linear in the moves (the label propagation it replaces took a
    # round per step of a part's diameter: 18 s of preprocessing on a 301 x 301 maze)
    return _union_parts(moves.shape[0], src.astype(np.int64), dst)


@njit(cache=True)
def _union_parts(n, src, dst):
    """Union-find over the edges ``src[k] -- dst[k]``; every root is its part's smallest cell
    (the larger root is hung under the smaller), so ``parent[v] < v`` off the roots."""
    parent = np.arange(n)
    for k in range(src.size):
        a = src[k]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        b = dst[k]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for v in range(n):                   # ascending: parent[v] is already labelled
        parent[v] = parent[parent[v]]
    return parent


_parts = connected_parts     # the old private name (tests)


# Destinations a mix draws from (three float arrays of this size; a sorting floor's generated
# plan has one route each): the plan limit, sorter.plan.MAX_DESTINATIONS, checked before any
# of it is built (--destinations 10^8 was 2.4 GB and 8 s before the chute-count check).
MAX_MIX_DESTINATIONS = 1_000_000


class DestinationMix:
    """A skewed parcel-destination mix.

    Parameters
    ----------
    n_destinations : int
    kind : {"zipf", "721", "uniform"}
        ``"zipf"``: P(rank r) ~ 1 / r**s. ``"721"`` (TMO benchmark): 70% of parcels go to the top
        20% of destinations, 20% to the next 30%, 10% to the last 50% (uniform within a band).
    s : float
        Zipf exponent.

    Examples
    --------
    >>> m = DestinationMix(10, "721")
    >>> round(float(m.p[:2].sum()), 2), round(float(m.p[2:5].sum()), 2)
    (0.7, 0.2)
    """

    def __init__(self, n_destinations, kind="zipf", s=1.0):
        if (isinstance(n_destinations, (bool, np.bool_))
                or not isinstance(n_destinations, (int, np.integer)) or n_destinations < 1):
            raise InputError(f"n_destinations={n_destinations!r}", field="destinations",
                             expected="at least 1 (an integer)")
        n = int(n_destinations)
        if n > MAX_MIX_DESTINATIONS:
            raise InputError(f"n_destinations={n:,}", field="destinations",
                             expected=f"at most {MAX_MIX_DESTINATIONS:,} destinations")
        if (isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.integer,
                                                                   np.floating))
                or not 0 <= s < float("inf")):
            raise InputError(f"s={s!r}", field="s", expected="a Zipf exponent, a finite number >= 0")
        if kind not in MIXES:
            raise InputError(f"mix {kind!r}", field="mix", expected=" or ".join(MIXES))
        if kind == "uniform":
            p = np.ones(n)
        elif kind == "zipf":
            p = 1.0 / np.arange(1, n + 1) ** float(s)
        else:
            a = max(1, round(0.2 * n))
            b = max(a, min(n, round(0.5 * n)))
            p = np.zeros(n)
            bands = [(0, a, 0.7), (a, b, 0.2), (b, n, 0.1)]
            live = [(lo, hi, w) for lo, hi, w in bands if hi > lo]
            tot = sum(w for _, _, w in live)
            for lo, hi, w in live:
                p[lo:hi] = w / tot / (hi - lo)
        self.p = p / p.sum()
        self.cdf = np.cumsum(self.p)
        self.kind = kind

    def draw(self, rng, size=None):
        """``size`` destinations (indices into ``p``) drawn with ``rng`` (a Generator)."""
        if not isinstance(rng, np.random.Generator):
            raise InputError(f"rng={rng!r}", field="rng",
                             expected="a numpy.random.Generator (np.random.default_rng(seed))")
        u = rng.random(size)
        return np.minimum(np.searchsorted(self.cdf, u, side="right"), self.p.size - 1)


class ChuteTable:
    """A plain destination -> chutes table (stand-in for the chute engine).

    ``min(n_chutes, n_destinations * chutes_per_destination)`` chutes spread evenly over the
    chute list are used (shuffled by ``rng`` if given, so that the busiest destinations do not
    all sit in one corner); destination *d* gets every *D*-th of them starting at *d* (``D``
    destinations), and a parcel goes to one of its destination's chutes at random. Any object
    with ``route(destination, rng) -> chute`` and ``dropped(chute)`` can replace it (e.g. an
    adapter over ``sorter.Sorter``, so that closing a full chute re-routes robots).

    Examples
    --------
    >>> t = ChuteTable(10, 2, chutes_per_destination=2)
    >>> [c.tolist() for c in t.per_dest]
    [[0, 6], [3, 9]]
    """

    def __init__(self, n_chutes, n_destinations, chutes_per_destination=2, rng=None):
        n_chutes = _count(n_chutes, "n_chutes")
        n_destinations = _count(n_destinations, "destinations")
        chutes_per_destination = _count(chutes_per_destination, "chutes_per_destination")
        if rng is not None:
            rng = _generator(rng)
        if not 1 <= n_destinations <= n_chutes:
            raise InputError(f"{n_destinations} destinations for {n_chutes} chutes",
                             field="destinations", expected=f"1..{n_chutes}")
        if int(chutes_per_destination) < 1:
            raise InputError(f"chutes_per_destination={chutes_per_destination}",
                             field="chutes_per_destination", expected="an integer >= 1")
        self.n_chutes = int(n_chutes)
        self.n_destinations = D = int(n_destinations)
        used = min(self.n_chutes, D * int(chutes_per_destination))
        chosen = np.unique(np.linspace(0, self.n_chutes - 1, used).round().astype(np.int64))
        if rng is not None:
            chosen = rng.permutation(chosen)     # spread busy destinations over the floor
        self.per_dest = [chosen[d::D] for d in range(D)]
        self.drops = np.zeros(n_chutes, np.int64)

    def route(self, destination, rng):
        """A chute index for a parcel of ``destination`` (0..n_destinations-1)."""
        d = int(destination)
        if not 0 <= d < self.n_destinations or d != destination:
            raise InputError(f"destination {destination!r}", field="destination",
                             expected=f"a destination index in [0, {self.n_destinations})")
        c = self.per_dest[d]
        return int(c[rng.integers(c.size)]) if c.size > 1 else int(c[0])

    def dropped(self, chute):
        """Count a parcel tipped into ``chute`` (0..n_chutes-1)."""
        c = int(chute)
        if not 0 <= c < self.n_chutes or c != chute:
            raise InputError(f"chute {chute!r}", field="chute",
                             expected=f"a chute index in [0, {self.n_chutes})")
        self.drops[c] += 1


class QueueWatch:
    """Robots standing in each induct queue (``Station.queue``), step by step.

    ``observe(positions)`` once per step; :meth:`kpis` gives ``induct_queue_mean`` (robots per
    step) and ``induct_queue_max`` per induct label, for the inducts that have a queue (an
    empty dict on floors without queues).

    Examples
    --------
    >>> from sorter.layout import Floor
    >>> f = Floor.from_ascii("QQI\\n...\\nCD.")
    >>> w = QueueWatch(f)
    >>> w.observe(np.array([0, 3])); w.observe(np.array([0, 1]))
    >>> w.kpis(2)
    {'induct_queue_mean': {'I0': 1.5}, 'induct_queue_max': {'I0': 2}}
    """

    def __init__(self, floor):
        self.floor = floor
        self.queue_of = np.full(floor.n_cells, -1, np.int64)
        for st in floor.inducts:
            self.queue_of[st.queue] = st.index
        self.has_queues = bool((self.queue_of >= 0).any())
        self.robot_steps = np.zeros(len(floor.inducts), np.int64)
        self.most = np.zeros(len(floor.inducts), np.int64)

    def observe(self, positions) -> None:
        if not self.has_queues:
            return
        q = self.queue_of[np.asarray(positions)]
        now = np.bincount(q[q >= 0], minlength=self.robot_steps.size)
        self.robot_steps += now
        np.maximum(self.most, now, out=self.most)

    def kpis(self, steps) -> dict:
        if not self.has_queues:
            return {}
        qs = [st for st in self.floor.inducts if st.queue.size]
        return {"induct_queue_mean": {str(st.label): float(self.robot_steps[st.index] / max(1, int(steps)))
                                      for st in qs},
                "induct_queue_max": {str(st.label): int(self.most[st.index]) for st in qs}}


@njit(cache=True)
def _pick_inducts_kernel(pool, rows, fcs, load, balanced, weight, supply, lam, penalty, avoid,
                         out):
    """:meth:`SortingTasks._pick_inducts` in one compiled loop: robot j (at free cell
    ``fcs[j]``) takes the induct k of least ``pool[rows[k], fcs[j]] (+ weight x load[k] if
    balanced) (+ max(0, load[k] - supply[k] + 1) / lam if supply) + penalty[k]``, skipping
    ``avoid[j, k]`` (if ``avoid`` has rows), first index on ties (``np.argmin``), and counts
    it in ``load`` before the next robot. Float operations in :meth:`_induct_cost`'s order."""
    n_ind = rows.shape[0]
    use_supply = supply.shape[0] > 0
    use_avoid = avoid.shape[0] > 0
    for j in range(fcs.shape[0]):
        fc = fcs[j]
        best = 0
        best_cost = np.inf
        for k in range(n_ind):
            if use_avoid and avoid[j, k]:
                continue
            c = np.float64(pool[rows[k], fc])
            if balanced:
                c = c + weight * load[k]
            if use_supply:
                c = c + max(0, load[k] - supply[k] + 1) / lam
            c = c + penalty[k]
            if c < best_cost:
                best_cost = c
                best = k
        out[j] = best
        load[best] += 1


class SortingTasks:
    """Robots cycle induct -> chute of the parcel's destination -> induct (station goals).

    Parameters
    ----------
    floor : Floor
        With inducts and chutes.
    n_robots : int
    rng : numpy.random.Generator or int
        The generator, or an integer seed of one.
    n_destinations : int, optional
        Default: ``min(100, n_chutes)``; RHCR's scenario uses every chute (``mix="uniform"``).
    mix : {"zipf", "721", "uniform"}
    router : object, optional
        ``route(destination, rng) -> chute index`` and ``dropped(chute)``; default
        :class:`ChuteTable` with ``chutes_per_destination``.
    chutes_per_destination : int
        Chutes per destination of the default table.
    induct_choice : {"balanced", "nearest"}
        Default "balanced" (see the module docstring).
    balance_weight : float
        Cells of detour one robot already heading to an induct is worth (``"balanced"``).

    Notes
    -----
    Needs a planner made with ``station_goals=True``; goals handed out are a representative
    cell of the station (its first cell).
    """

    def __init__(self, floor, n_robots, rng, *, n_destinations=None, mix="zipf", router=None,
                 induct_choice="balanced", balance_weight=2.0, chutes_per_destination=2):
        if not all(hasattr(floor, a) for a in ("inducts", "chutes", "station_of_cell")):
            raise InputError(f"floor is {type(floor).__name__}", field="floor",  # (AttributeError)
                             expected="a sorter.layout.Floor with inducts and chutes")
        if not floor.inducts or not floor.chutes:
            raise InputError(f"floor {floor.name!r} has {len(floor.inducts)} inducts and "
                             f"{len(floor.chutes)} chutes", path=floor.source, field="stations",
                             expected="at least one induct and one chute for sorting tasks")
        if induct_choice not in INDUCT_CHOICES:
            raise InputError(f"induct_choice {induct_choice!r}", field="induct_choice",
                             expected=" or ".join(INDUCT_CHOICES))
        self.floor = floor
        self.n = _team(n_robots)
        self.rng = rng = _generator(rng)
        nd = min(100, len(floor.chutes)) if n_destinations is None else n_destinations
        if (router is None and isinstance(nd, (int, np.integer)) and not isinstance(nd, bool)
                and nd > len(floor.chutes)):
            # the generated plan's own check, before the mix's arrays of nd entries exist
            raise InputError(f"{nd} destinations for {len(floor.chutes)} chutes",
                             field="destinations", expected=f"1..{len(floor.chutes)}")
        self.mix = DestinationMix(nd, mix)
        nd = int(nd)
        if (isinstance(balance_weight, (bool, np.bool_))
                or not isinstance(balance_weight, (int, float, np.integer, np.floating))
                or not 0 <= balance_weight < float("inf")):
            raise InputError(f"balance_weight={balance_weight!r}", field="balance_weight",
                             expected="a finite number >= 0 (cells of detour per robot)")
        self.router = router if router is not None else ChuteTable(
            len(floor.chutes), nd, chutes_per_destination, rng=rng)
        self.induct_choice = induct_choice
        self.balance_weight = float(balance_weight)
        self.induct_rep = np.array([int(s.cells[0]) for s in floor.inducts], np.int32)
        # a representative drop cell per chute; the planner maps it back to the chute through
        # ``floor.station_of_cell`` (an own cell of the chute); a chute whose every drop cell is
        # shared with another chute is represented by its first cell, which the planner takes
        # as that exact cell (was: the lower-numbered chute's station, so the robot tipped the
        # parcel at a cell of the other chute)
        soc = floor.station_of_cell
        self.chute_rep = np.array([int(next((c for c in s.cells if soc[c] == s.index), s.cells[0]))
                                   for s in floor.chutes], np.int32)
        self.heading = np.zeros(self.n, np.int8)        # 0 to an induct, 1 to a chute
        self.target = np.full(self.n, -1, np.int64)     # station index
        self.load = np.zeros(len(floor.inducts), np.int64)
        self.completed = 0
        self.delivered = 0
        self._goals = None
        self._induct_rows = None
        self.queues = QueueWatch(floor)                 # robots in each induct queue

    def _induct_tables(self, planner):
        if self._induct_rows is None:
            tabs = planner.tables
            rows = []
            for s in self.floor.inducts:
                key, cells = planner.goal_key(int(s.cells[0]))
                rows.append(tabs.acquire(key, cells))      # held for the whole run
            self._induct_rows = np.asarray(rows, np.int64)
        return self._induct_rows

    def _induct_cost(self, d):
        """Cost of each induct for an empty robot ``d`` cells from each: the distance, plus
        ``balance_weight`` x robots already heading there (``"balanced"``), plus the terms a
        subclass adds (:meth:`_cost_terms`).

        The formula in NumPy; :meth:`_pick_inducts` evaluates it in a compiled loop (a test
        holds the two equal)."""
        balanced, weight, supply, lam, penalty = self._cost_terms()
        if balanced:
            d = d + weight * self.load
        if supply.size:
            d = d + np.maximum(0, self.load - supply + 1) / lam
        if penalty is not None:
            d = d + penalty
        return d

    def _cost_terms(self):
        """The terms of :meth:`_induct_cost` beside the distance: ``(balanced, weight,
        supply, lam, penalty)``, ``weight`` x robots heading to each induct if ``balanced``;
        ``max(0, robots heading there - supply + 1) / lam`` unless ``supply`` is empty;
        ``penalty`` per induct unless None. Here: the balance only."""
        return (self.induct_choice == "balanced", self.balance_weight,
                np.zeros(0, np.int64), 1.0, None)

    def _pick_inducts(self, planner, robots, pos, avoid=None):
        """The cheapest induct (:meth:`_induct_cost`) for each empty robot at ``pos``, in
        turn: each choice counts in ``load`` before the next robot's. ``avoid[j]``: inducts
        robot j must not take (an index, or a bool row per robot; ignored with one induct)."""
        rows = self._induct_tables(planner)
        n_ind = rows.size
        balanced, weight, supply, lam, penalty = self._cost_terms()
        pen = np.zeros(n_ind) if penalty is None else np.asarray(penalty, np.float64)
        if avoid is None or n_ind <= 1:
            mask = np.zeros((0, 0), np.bool_)
        else:
            avoid = np.asarray(avoid)
            if avoid.dtype == np.bool_:
                mask = np.ascontiguousarray(np.broadcast_to(avoid, (len(robots), n_ind)))
            else:
                mask = np.zeros((len(robots), n_ind), np.bool_)
                mask[np.arange(len(robots)), avoid] = True
        fcs = planner.graph.fidx[np.asarray(pos, np.int64)].astype(np.int64)
        out = np.empty(len(robots), np.int64)
        _pick_inducts_kernel(planner.tables.pool, rows, fcs, self.load, balanced,
                             float(weight), np.asarray(supply, np.int64), float(lam), pen,
                             mask, out)
        return out

    def start(self, planner):
        _check_team(self, planner)
        robots = np.arange(self.n)
        k = self._pick_inducts(planner, robots, planner.positions)
        self.target[:] = k
        self.heading[:] = 0
        self._goals = self.induct_rep[k].astype(np.int32)
        return self._goals

    def kpis(self, steps) -> dict:
        """On floors with induct queues: the robots standing in each (:class:`QueueWatch`)."""
        return self.queues.kpis(steps)

    def update(self, planner):
        self.queues.observe(planner.positions)
        fin = np.flatnonzero(planner.finished)
        if not fin.size:
            return self._goals
        self.completed += fin.size
        goals = self._goals.copy()
        at_induct = fin[self.heading[fin] == 0]
        at_chute = fin[self.heading[fin] == 1]
        if at_induct.size:
            np.subtract.at(self.load, self.target[at_induct], 1)
            dest = self.mix.draw(self.rng, at_induct.size)
            if not (callable(getattr(self.router, "route", None))
                    and callable(getattr(self.router, "dropped", None))):
                # (checked here, where it is used: FloorSim routes through its own engine)
                raise InputError(f"router is a {type(self.router).__name__}", field="router",
                                 expected="an object with route(destination, rng) -> chute "
                                          "index and dropped(chute)")
            chutes = np.array([self.router.route(d, self.rng) for d in dest], np.int64)
            if chutes.size and (chutes.min() < 0 or chutes.max() >= self.chute_rep.size):
                # (a custom router's -1 sent robots to the last chute, a label failed inside)
                raise InputError(f"the router chose chute {int(chutes[(chutes < 0) | (chutes >= self.chute_rep.size)][0])}",
                                 field="router", expected=f"chute indices in [0, {self.chute_rep.size}) "
                                                          "(floor.chutes order)")
            self.target[at_induct] = chutes
            self.heading[at_induct] = 1
            goals[at_induct] = self.chute_rep[chutes]
        if at_chute.size:
            for c in self.target[at_chute]:
                self.router.dropped(int(c))
            self.delivered += at_chute.size
            k = self._pick_inducts(planner, at_chute, planner.positions[at_chute])
            self.target[at_chute] = k
            self.heading[at_chute] = 0
            goals[at_chute] = self.induct_rep[k]
        self._goals = goals
        return goals
