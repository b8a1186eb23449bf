"""Online congestion costs: distance tables re-weighted by where robots have been waiting.

The planner's tables are shortest-path costs over the floor's move costs (unit moves, or the
lanes of :mod:`sorter.agv.guidance`). They say nothing of traffic, so robots bound for the same
part of the floor all take the same shortest ways and queue there. With congestion costs
(``Planner(congestion_period=K)``) the planner watches, every step, which cells hold a robot
that waits (it planned to stay, or could not move, and is not at its goal: turns count as
waits), and turns that into extra move costs:

* ``level[v]`` = the share of recent steps in which a waiting robot stood on ``v``: an
  exponential average with a time constant of ``K`` steps, blended in every ``K // 10`` steps;
* the move into ``v`` costs its usual cost plus ``round(cost * level[v])`` (``cost`` = the
  extra cost of a cell where robots waited every step); each change of these costs is a new
  *version* (:meth:`sorter.agv.distance.DistanceTables.set_weights`);
* the tables of the goals that take these costs are recomputed under the latest version, a
  slice of the goals each step so that each is looked at once every ``K`` steps, and robots
  route around the queues instead of joining them;
* a table is recomputed only where it is stale: where the way it shows some robot bound for
  its goal (down the table from the robot's cell) costs more under the latest costs than the
  table says, by more than ``STALE_RISE`` (25%) of that plus ``STALE_SLACK`` (5)
  (:func:`costlier_way`; at most ``STALE_ROBOTS`` robots priced per goal, evenly spread). Queues
  that moved elsewhere do not matter to robots whose ways do not cross them. On the LoRR main-round floors this keeps 78-96% of the tables, at the same
  or a higher throughput (``bench/RESULTS.md``, "Twelfth round").

This is online guidance in the sense of Zang et al. ("Online Guidance Graph Optimization for
Lifelong Multi-Agent Path Finding", AAAI 2025) with a hand-made update rule in place of their
learned one; measured in ``bench/RESULTS.md`` ("Tenth round").

Which goals: single-cell goals on induct cells (LoRR's ``E`` cells), where the queues of the
LoRR main-round floors form; their tables are complete (never A* bands). Recomputing a table
costs a full weighted search of the floor (~1-2 ms at 54,320 cells), so the new version's
tables are computed by the table pool's background thread (:meth:`DistanceTables.prefetch_many`)
while the robots move: a slice queued at step ``t`` is taken by the robots bound for those
goals at step ``t + 2`` (if the thread is behind, the step computes the slice's remaining tables
itself, alongside the thread, rather than wait idle), and goals taken from
then on use that version. The switch happens at fixed steps and a table's content depends only
on its goal and its version, never on when the thread computed it, so plans stay deterministic
for a seed.

PIBT's guarantee is kept: every table is an exact weighted distance (costs >= 1), strictly
decreasing along a best path, whatever the version.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from numba import njit

from sorter.agv.distance import _at

MAX_COST = 250          # a move's cost, congestion included (uint8 tables of reverse costs)
STALE_RISE = 0.25       # a goal's table is refreshed only where the way it shows some robot
STALE_SLACK = 5         # costs more now than it says: > (1 + STALE_RISE) x its value + STALE_SLACK
STALE_ROBOTS = 64       # robots whose ways are priced per goal at most (evenly spread by index)


@njit(cache=True)
def count_waits(pos, nxt, local, counts):
    """Add one to ``counts[v]`` for every robot on free cell ``v`` that stays this step
    (``nxt == pos``) and is not at its goal (``local[i, 4] != 0``)."""
    for i in range(pos.shape[0]):
        if nxt[i] == pos[i] and local[i, 4] != 0:
            counts[pos[i]] += 1


@njit(cache=True)
def costlier_way(pool, span, slot, pos, robots, fadj, rcost, unreach, rise, slack):
    """Does the way down its table of some robot in ``robots`` cost more under the move costs
    ``rcost`` (``rcost[u, k]``: the move ``radj[u, k] -> u``) than the table says, by more
    than ``rise`` x the table's value + ``slack``? The way: from the robot's cell, each step to
    the neighbour with the lowest table value (the first of equals), to the goal (0). Cells
    outside a row's written ``span`` count as unsettled (a bounded table: never lower)."""
    for j in range(robots.shape[0]):
        i = robots[j]
        row = pool[slot[i]]
        sp = span[slot[i]]
        v = pos[i]
        told = np.int64(_at(row, sp, v, unreach))
        if told >= unreach - 2:             # unreachable or unsettled: no way to price
            continue
        cost = np.int64(0)
        bv = told
        while bv > 0:
            best = -1
            for d in range(4):
                u = fadj[v, d]
                if u >= 0 and np.int64(_at(row, sp, u, unreach)) < bv:
                    bv = np.int64(_at(row, sp, u, unreach))
                    best = d
            if best < 0:                    # (an exact table always has a lower neighbour)
                break
            u = fadj[v, best]
            cost += np.int64(rcost[u, best ^ 2])    # the move v -> u, reversed: radj[u, d^2] = v
            v = u
        if cost > told + np.int64(rise * told) + slack:
            return True
    return False


@njit(cache=True)
def weighted_costs(base, level, cost, out):
    """``out[v, k] = base[v, k] + round(cost * level[v])`` (at most ``MAX_COST``, never below
    ``base``: a pool's own costs may reach 255) for every move into ``v`` (``base[v, k] > 0``);
    0 stays 0 (no move)."""
    for v in range(base.shape[0]):
        extra = np.int64(np.floor(cost * level[v] + 0.5))
        for k in range(4):
            b = np.int64(base[v, k])
            if b > 0:
                out[v, k] = min(b + extra, max(b, MAX_COST))
            else:
                out[v, k] = 0


class CongestionCosts:
    """The state of online congestion costs for one planner (see the module docstring).

    Parameters
    ----------
    planner : sorter.agv.pibt.Planner
    period : int >= 1
        ``K``: the time constant of the wait levels, in steps; every goal's table is looked at
        once per period, a slice of the goals each step, and recomputed if it is stale
        (:func:`costlier_way`).
    cost : float >= 0
        Extra cost of a move into a cell where a waiting robot stood every step.
    lag : int >= 1
        Steps between queuing a refresh and the robots switching to it.
    """

    def __init__(self, planner, period, cost, lag=2):
        tabs = planner.tables
        g = planner.graph
        self.period = int(period)
        self.cost = float(cost)
        self.every = max(1, self.period // 10)      # steps between two blends
        self.keep = (1.0 - 1.0 / self.period) ** self.every     # weight of the old level
        self.lag = int(lag)
        if tabs.rcost is not None:
            self.base = tabs.rcost.copy()
        else:
            self.base = (g.radj >= 0).astype(np.uint8)
        self._costs = self.base                 # costs of the latest version
        self.counts = np.zeros(g.n_free, np.int64)
        self.level = np.zeros(g.n_free, np.float64)
        self.steps = 0                    # steps counted since the last update
        self.version = 0                  # latest costs registered (0 = the pool's own);
        #                                   numbers from the pool (tables.new_version)
        self.versions = 0                 # versions registered so far
        self.table_version = {}           # goal cell -> version its robots' tables have
        self._vcells = {}                 # version -> how many goal cells have it
        self.pending = deque()            # (step due, [(goal cell, version), ...])
        floor = planner.floor
        if floor is not None and not planner.station_goals:
            self.cells = np.flatnonzero(np.asarray(floor.cells) == 2)     # induct cells
        else:                             # (station goals: inducts are stations, no cells)
            self.cells = np.zeros(0, np.int64)
        self.per_step = -(-self.cells.size // self.period)
        self.cursor = 0                   # next goal cell id to refresh, in id order
        self._in_use = np.zeros(g.n_cells, np.bool_)
        self.updates = 0
        self.refreshed = 0                # tables refreshed so far
        self.kept = 0                     # refreshes skipped: the table's ways still cost
        #                                   what it says (STALE_RISE, STALE_SLACK)
        self.stale_rise = STALE_RISE
        self.stale_slack = STALE_SLACK
        self.switched = 0                 # robot table switches so far
        self.waited_s = 0.0               # time the switches waited for the thread

    def key(self, kc):
        """The table key a robot's goal ``(key, cells)`` uses now: the latest refreshed
        version of its goal cell, else the pool's own. Which, depends only on the step, never
        on what the pool has cached."""
        key = kc[0]
        if key[0] == "cell":
            v = self.table_version.get(key[1])
            if v:
                return ("wcell", key[1], v)
        return key

    def observe(self, pos, nxt, local):
        count_waits(pos, nxt, local, self.counts)
        self.steps += 1

    def update(self, planner):
        """Before the step is planned: robots take the tables refreshed ``lag`` steps ago;
        every ``period // 10`` steps the levels and costs; then the next slice of goals in use
        is queued for refreshing under the latest costs."""
        s = planner.step_no
        while self.pending and self.pending[0][0] <= s:
            self._switch(planner, self.pending.popleft()[1])
        if s and s % self.every == 0:
            share = self.counts / max(1, self.steps)
            self.level *= self.keep
            self.level += (1.0 - self.keep) * share
            self.counts[:] = 0
            self.steps = 0
            rc = np.empty_like(self.base)
            weighted_costs(self.base, self.level, self.cost, rc)
            if not np.array_equal(rc, self._costs):     # (unchanged: no new version)
                self._costs = rc
                self.version = planner.tables.new_version()
                self.versions += 1
                planner.tables.set_weights(self.version, rc)
                self._vcells.setdefault(self.version, 0)
                self._drop_unused(planner.tables)
            self.updates += 1
        if not self.version or not self.per_step:   # (no congestion yet: nothing to do)
            return
        goals = planner._goal
        use = self._in_use
        use[goals[goals >= 0]] = True
        live = self.cells[use[self.cells]]
        use[goals[goals >= 0]] = False
        if not live.size:
            return
        j = int(np.searchsorted(live, self.cursor))
        pick = np.take(live, np.arange(j, j + min(self.per_step, live.size)), mode="wrap")
        self.cursor = int(pick[-1]) + 1
        v = self.version
        tabs = planner.tables
        due = []
        for c in pick.tolist():
            had = self.table_version.get(c, 0)
            if had == v:
                continue                        # (its table has the latest costs already)
            bound = np.flatnonzero(goals == c)
            bound = bound[::max(1, -(-bound.size // STALE_ROBOTS))]    # (bounded work per goal)
            if had and not costlier_way(tabs.pool, tabs.span, planner._slot, planner._pos,
                                        bound, planner.graph.fadj,
                                        self._costs, tabs.unreachable, self.stale_rise,
                                        self.stale_slack):
                self.kept += 1                  # the ways it shows cost what it says still
                continue
            due.append(c)
        if not due:
            return
        tabs.prefetch_many([(("wcell", c, v), (c,), None) for c in due], force=True)
        self.pending.append((s + self.lag, [(c, v) for c in due]))
        self.refreshed += len(due)

    def _switch(self, planner, jobs):
        """The refreshed tables are in force: robots bound for their goal cells (not on a
        detour) take them."""
        tabs = planner.tables
        self.waited_s += tabs.wait_forced([("wcell", c, v) for c, v in jobs])
        goals = planner._goal
        for c, v in jobs:
            old_v = self.table_version.get(c, 0)
            self.table_version[c] = v
            self._vcells[v] = self._vcells.get(v, 0) + 1
            if old_v:
                self._vcells[old_v] -= 1
            take = [i for i in np.flatnonzero(goals == c).tolist()
                    if planner._keys[i] is not None and planner._keys[i][0][0] == "cell"
                    and not planner._on_detour[i]]
            if take:
                self._take(planner, np.array(take, np.int64), c, v)
            if old_v and old_v != v:
                tabs.forget(("wcell", c, old_v))       # never asked for again
        self._drop_unused(tabs)

    def _take(self, planner, robots, c, v):
        """Robots ``robots``, bound for goal cell ``c``, take its table of version ``v``; their
        stall watch's best distance is carried over in the new units."""
        tabs = planner.tables
        row = tabs.acquire(("wcell", c, v), (c,), refs=robots.size)
        old = planner._slot[robots]
        at = planner._pos[robots]
        d_old = tabs.pool[old, at].astype(np.int64)
        d_new = tabs.pool[row, at].astype(np.int64)
        tabs.release_many(old.tolist())
        planner._slot[robots] = row
        best = planner._best[robots]
        keep = (best != np.iinfo(np.int64).max) & (np.maximum(d_old, d_new) < tabs.unsettled)
        planner._best[robots[keep]] += (d_new - d_old)[keep]
        self.switched += robots.size

    def _drop_unused(self, tabs):
        """Forget the costs of versions no goal cell has any more (and none pending)."""
        due = {v for _, jobs in self.pending for _, v in jobs}
        for v in [v for v, k in self._vcells.items()
                  if k == 0 and v != self.version and v not in due]:
            del self._vcells[v]
            tabs.drop_weights(v)
