"""Plain-Python reference implementations (the test oracles).

Each is small and obviously correct, written from the rules in the issue, not from the
compiled code. Other oracles live beside this file: ``naive_mapf.py`` (plan checks),
``naive_pibt.py`` (PIBT), ``simpy_loop.py`` (the loop sorter as a SimPy model).
"""
from __future__ import annotations

import csv
from pathlib import Path

REASONS = ["ok", "overflow", "no_read", "unknown_destination", "max_recirculation",
           "no_chute_available", "not_sortable", "late"]


class NaiveSorter:
    """The chute-assignment rules, one dict lookup and one loop at a time.

    routes: {destination: [chute, ...]}; chutes: {chute: (kind, capacity)};
    reject: {reason: chute}; overflow: [chute, ...].
    """

    def __init__(self, routes, chutes, reject, overflow, strategy, max_recirculation):
        self.routes = {d: list(r) for d, r in routes.items()}
        self.kind = {c: k for c, (k, cap) in chutes.items()}
        self.capacity = {c: cap for c, (k, cap) in chutes.items()}
        self.reject = dict(reject)
        self.overflow = list(overflow)
        self.strategy = strategy
        self.max_recirculation = max_recirculation
        self.state = {c: "open" for c in chutes}
        self.fill = {c: 0 for c in chutes}
        self.cursor = {}
        self.by_reason = {r: 0 for r in REASONS}

    def is_open(self, chute):
        return self.state[chute] == "open"

    def pick(self, dest):
        route = self.routes[dest]
        if self.strategy == "fill_first":
            for c in route:
                if self.is_open(c):
                    return c
            return None
        if self.strategy == "round_robin":
            start = self.cursor.get(dest, 0)
            for k in range(len(route)):
                j = (start + k) % len(route)
                if self.is_open(route[j]):
                    self.cursor[dest] = (j + 1) % len(route)
                    return route[j]
            return None
        # least_loaded: fewest items in the container, ties to plan order
        open_chutes = [c for c in route if self.is_open(c)]
        if not open_chutes:
            return None
        return min(open_chutes, key=lambda c: (self.fill[c], route.index(c)))

    def assign(self, destination, recirculation=0, sortable=True):
        chute = None
        if not sortable:
            reason = "not_sortable"
        elif destination is None or destination == "":
            reason = "no_read"
        elif recirculation > self.max_recirculation:
            reason = "max_recirculation"
        elif destination not in self.routes:
            reason = "unknown_destination"
        else:
            chute = self.pick(destination)
            if chute is not None:
                reason = "ok"
            else:
                chute = next((c for c in self.overflow if self.is_open(c)), None)
                reason = "overflow" if chute is not None else "no_chute_available"
        if chute is None:
            chute = self.reject_chute(reason)
        self.by_reason[reason] += 1
        return chute, reason

    def reject_chute(self, reason):
        """The reason's reject chute if open; else the plan's first open reject chute, the
        reasons taken in REASONS order; else (none open) the reason's own chute anyway."""
        own = self.reject[reason]
        if self.is_open(own):
            return own
        for r in REASONS[2:]:
            if self.is_open(self.reject[r]):
                return self.reject[r]
        return own

    def reject_decision(self, reason):
        """A parcel sent to reject for ``reason`` without a decision (``late``)."""
        self.by_reason[reason] += 1
        return self.reject_chute(reason), reason

    def discharged(self, chute, n=1):
        self.fill[chute] += n
        if self.fill[chute] >= self.capacity[chute] and self.state[chute] == "open":
            self.state[chute] = "full"

    def set_state(self, chute, state):
        self.state[chute] = state

    def container_changed(self, chute):
        self.fill[chute] = 0
        self.state[chute] = "open"

    def switch_plan(self, routes):
        self.routes = {d: list(r) for d, r in routes.items()}
        self.cursor = {}


def read_plan_csv(path):
    """{destination: [chutes]} from a plan CSV (no validation: test inputs are valid)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return {r[0].strip(): [c.strip() for c in r[1].split(";") if c.strip()]
            for r in rows[1:] if r and r[0].strip()}


def replay(naive, events_csv):
    """Apply an events CSV to a NaiveSorter; returns [(parcel, chute, reason), ...]."""
    out = []
    base = Path(events_csv).parent
    with open(events_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            ev = row["event"]
            if ev == "scan":
                dest = row["destination"] or None
                rc = int(row["recirculation"] or 0)
                sortable = row["sortable"] != "0"
                chute, reason = naive.assign(dest, rc, sortable)
                out.append((row["parcel"], chute, reason))
            elif ev == "discharged":
                naive.discharged(row["chute"])
            elif ev == "container_changed":
                naive.container_changed(row["chute"])
            elif ev == "switch_plan":
                naive.switch_plan(read_plan_csv(base / row["plan"]))
            else:
                naive.set_state(row["chute"], ev)
    return out


class NaiveNearestTasks:
    """The LoRR 2024 Start-Kit-style scheduler ("nearest"), one robot and one task at a time.

    ``tasks``: list of tasks, each a list of errand cells. At the start ``ceil(reveal * n)`` tasks
    of the file are revealed (cycling), but no more than the file holds and no fewer than n; each finished task reveals the next one. A
    free robot (robots of one step in index order) takes the revealed, unassigned task with the
    least Manhattan distance from its cell to the task's first errand plus the Manhattan lengths
    between the task's consecutive errands; the earliest revealed wins ties.
    """

    def __init__(self, tasks, n, width, reveal=1.0):
        import math
        self.tasks, self.n, self.w = [list(t) for t in tasks], n, width
        self.pool, self.next = [], 0
        self.task, self.step = [None] * n, [0] * n
        self.queued = [None] * n                        # next task, taken ahead
        self.finished = 0
        self._reveal(max(n, min(math.ceil(reveal * n), len(self.tasks))))

    def _reveal(self, k):
        for _ in range(k):
            self.pool.append(self.next % len(self.tasks))
            self.next += 1

    def _dist(self, a, b):
        return abs(a // self.w - b // self.w) + abs(a % self.w - b % self.w)

    def _cost(self, cell, t):
        e = self.tasks[t]
        return self._dist(cell, e[0]) + sum(self._dist(e[i], e[i + 1]) for i in range(len(e) - 1))

    def _take(self, robot, cell):
        best = min(range(len(self.pool)), key=lambda j: (self._cost(cell, self.pool[j]), j))
        self.task[robot], self.step[robot] = self.pool.pop(best), 0

    def start(self, cells):
        for i in range(self.n):
            self._take(i, cells[i])
        return self.goals()

    def goals(self):
        return [self.tasks[self.task[i]][self.step[i]] for i in range(self.n)]

    def update(self, finished_robots, cells, near=()):
        """``finished_robots``: robots that reached their current errand (standing on ``cells``).

        ``near``: robots now close to their errand (pick-ahead). Each of them, in index order,
        whose errand is its task's last, whose goal did not change in this update and who has
        no next task yet, takes its next task now, as if standing on that errand, while the pool
        has tasks; on finishing its task it starts that one instead of choosing.
        """
        before = self.goals()
        done = []
        for i in sorted(finished_robots):
            self.step[i] += 1
            if self.step[i] == len(self.tasks[self.task[i]]):
                done.append(i)
        self.finished += len(done)
        self._reveal(len(done))
        for i in done:
            if self.queued[i] is not None:
                self.task[i], self.step[i], self.queued[i] = self.queued[i], 0, None
            else:
                self._take(i, cells[i])
        after = self.goals()
        for i in sorted(near):
            t = self.tasks[self.task[i]]
            if (self.step[i] == len(t) - 1 and before[i] == after[i] and self.queued[i] is None
                    and self.pool):
                best = min(range(len(self.pool)), key=lambda j: (self._cost(t[-1], self.pool[j]), j))
                self.queued[i] = self.pool.pop(best)
        return after
