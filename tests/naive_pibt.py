"""Plain-Python oracles for the robot planner: BFS distances and a lifelong PIBT.

Written to be obviously correct, not fast: dicts, recursion, no arrays. The deterministic rules
they share with ``sorter.agv.pibt`` (so the same seed gives identical positions):

* robot priority = (elapsed steps without reaching the goal, hash(seed, robot) >> 44, robot),
  highest first; elapsed resets to 0 while the robot stands on its goal (or its goal is done);
* candidate cells = the moves of the robot's cell (east, south, west, north) and waiting, sorted
  by (distance to goal, 1 if another robot stands there now else 0 [plain] or contra-flow +
  w_occ * that [flow guidance], hash(step, robot, cell) >> 40);
* rotation model: a *pushed* robot (one planning by priority inheritance) adds ``turn_weight``
  per quarter turn to a candidate's distance (so it prefers moving on along its heading, which
  frees its cell this step, over turning, which makes its pushers wait); moves off the heading
  become a 90-degree turn (staying); with ``hold_on_turn`` a root robot (planning on its own
  priority) that picks a cell it does not face also reserves its own cell during planning (it
  will stay), released if it has to try another candidate; a robot planning to enter the
  cell of a robot that stays waits (and turns toward its move if off its heading);
* dwell: a robot reaching its goal on a drop cell (type 3) stays ``dwell_chute`` more steps, on
  an induct cell (type 2) ``dwell_induct``; the goal is finished when the dwell ends.
"""
import heapq
from collections import deque

M64 = 0xFFFFFFFFFFFFFFFF
UNREACH = 8388607           # distance cap used for unreachable goals


def mix(x):
    x &= M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def bfs_distances(moves, goal_cells):
    """Distance from every cell to the nearest goal cell along allowed moves (dict cell -> d)."""
    preds = {}
    for c, row in enumerate(moves):
        for t in row:
            if t >= 0:
                preds.setdefault(int(t), []).append(c)
    dist = {int(g): 0 for g in goal_cells}
    q = deque(dist)
    while q:
        v = q.popleft()
        for u in preds.get(v, ()):
            if u not in dist:
                dist[u] = dist[v] + 1
                q.append(u)
    return dist


def dijkstra_distances(moves, costs, goal_cells):
    """Weighted distance (``costs[c][d]`` per move) from every cell to the nearest goal cell."""
    preds = {}
    for c, row in enumerate(moves):
        for d, t in enumerate(row):
            if t >= 0:
                preds.setdefault(int(t), []).append((c, int(costs[c][d])))
    dist = {int(g): 0 for g in goal_cells}
    pq = [(0, g) for g in dist]
    while pq:
        dv, v = heapq.heappop(pq)
        if dv > dist[v]:
            continue
        for u, w in preds.get(v, ()):
            if dv + w < dist.get(u, float("inf")):
                dist[u] = dv + w
                heapq.heappush(pq, (dv + w, u))
    return dist


def turn_toward(h, d):
    """Heading after one 90-degree turn from ``h`` toward direction ``d`` (CW on a U-turn)."""
    return (h + 3) % 4 if (d - h) % 4 == 3 else (h + 1) % 4


class NaivePIBT:
    """Lifelong PIBT over a move table (list of 4-lists), goal = one cell or a set of cells.

    ``costs`` (per-move costs) makes the distances weighted, as the planner's ``"lanes"``.
    """

    def __init__(self, moves, cell_types, starts, seed, dwell_chute=0, dwell_induct=0,
                 flow=False, w_occ=4, flow_halflife=32, costs=None, rotation=False,
                 turn_weight=2, hold_on_turn=True, swap=True, junction_order=False):
        self.moves = [[int(t) for t in row] for row in moves]
        self.types = [int(t) for t in cell_types]
        self.pos = [int(s) for s in starts]
        self.n = len(self.pos)
        self.seedmix = mix(seed)
        self.dwell_chute, self.dwell_induct = dwell_chute, dwell_induct
        self.elapsed = [0] * self.n
        self.dwell = [0] * self.n
        self.done = [False] * self.n
        self.goal = [None] * self.n
        self.dist = [None] * self.n
        self.step_no = 0
        self.flow_on, self.w_occ, self.halflife = flow, w_occ, flow_halflife
        self.flow = {}                    # (cell, direction) -> recent moves
        self.finished = [False] * self.n
        self.costs = costs
        self.rotation = rotation
        self.heading = [0] * self.n
        self.turn_weight = turn_weight
        self.hold = rotation and hold_on_turn
        self.swap = swap
        # junction order (one-way floors): robots on a cell with two or more ways out plan
        # first, those whose best move leaves it before them; straight on before a turn
        self.junction = junction_order
        self.last_dir = [0] * self.n

    # -- the swap of PIBT+ (two robots that must pass each other in a corridor) ----------------
    def ways_on(self, came, v, now):
        """Cells to go on to from ``v`` (entered from ``came``), leaving out ``came`` and any
        dead-end cell (one move out) with a robot in it."""
        out = []
        for u in self.moves[v]:
            if u < 0 or u == came:
                continue
            if u in now and sum(1 for x in self.moves[u] if x >= 0) == 1:
                continue
            out.append(u)
        return out

    def swap_required(self, i, j, vi, vj, now):
        if vi not in self.moves[vj] or self.d(j, vi) >= self.d(j, vj):
            return False                          # j does not want i's cell
        vp, vq = vi, vj
        while self.d(i, vq) < self.d(i, vp):
            ways = self.ways_on(vp, vq, now)
            if len(ways) >= 2:
                return False                      # they can pass at a branching cell
            if not ways:
                return True                       # a dead end ahead of i
            vp, vq = vq, ways[-1]
        return False

    def swap_possible(self, vp0, vq0, now):
        vp, vq = vp0, vq0
        for _ in range(self.n + 8):
            ways = self.ways_on(vp, vq, now)
            if len(ways) >= 2:
                return True
            if not ways:
                return False
            vp, vq = vq, ways[-1]
            if vq == vp0:
                return False
        return False

    def d(self, i, c):
        return self.dist[i].get(c, UNREACH)

    def set_goal(self, i, key, cells):
        if self.done[i] and self.goal[i] == key:       # finished: the same goal again is a new task
            self.done[i] = False
            self.elapsed[i] = 0
        elif self.goal[i] != key:
            self.goal[i] = key
            self.dist[i] = (bfs_distances(self.moves, cells) if self.costs is None
                            else dijkstra_distances(self.moves, self.costs, cells))
            self.done[i] = False
            self.elapsed[i] = 0
            self.dwell[i] = 0

    def rotate(self, nxt):
        """Rotation action model: off-heading moves become turns; blocked followers wait."""
        staying = set()
        for i in range(self.n):
            if nxt[i] != self.pos[i]:
                d = self.moves[self.pos[i]].index(nxt[i])
                if d != self.heading[i]:
                    self.heading[i] = turn_toward(self.heading[i], d)
                    nxt[i] = self.pos[i]
                    staying.add(i)
        changed = True
        while changed:                       # a robot may not enter the cell of one that stays
            changed = False
            for i in range(self.n):
                if nxt[i] != self.pos[i]:
                    for j in range(self.n):
                        if j != i and nxt[j] == self.pos[j] == nxt[i]:
                            d = self.moves[self.pos[i]].index(nxt[i])
                            if d != self.heading[i]:
                                self.heading[i] = turn_toward(self.heading[i], d)
                            nxt[i] = self.pos[i]
                            changed = True
                            break

    def step(self):
        n = self.n
        now = {c: i for i, c in enumerate(self.pos)}
        nxt = [None] * n
        reserved = {}
        self.finished = [False] * n
        for i in range(n):
            if self.dwell[i] > 0:
                nxt[i] = self.pos[i]
                reserved[self.pos[i]] = i
            if self.done[i] or self.d(i, self.pos[i]) == 0:
                self.elapsed[i] = 0
            else:
                self.elapsed[i] += 1
        order = sorted(range(n), reverse=True,
                       key=lambda i: (self.elapsed[i], mix(self.seedmix + i) >> 44, i))
        if self.junction:
            def ways(c):
                return sum(1 for u in self.moves[c] if u >= 0)

            def group(i):
                v = self.pos[i]
                if ways(v) < 2:
                    return 0
                best = min((d for d in range(4) if self.moves[v][d] >= 0),
                           key=lambda d: (self.d(i, self.moves[v][d]), d))
                return 2 if ways(self.moves[v][best]) < 2 else 1
            order = [i for g in (2, 1, 0) for i in order if group(i) == g]
        stepmix = mix(self.seedmix ^ mix(self.step_no + 0x9E3779B97F4A7C15))

        def candidates(i, pushed):
            v = self.pos[i]
            base = mix(stepmix + i)
            cands = []
            for d, u in enumerate(self.moves[v] + [v]):
                if u < 0:
                    continue
                occ = 1 if (u in now and now[u] != i) else 0
                if self.flow_on:
                    contra = min(self.flow.get((u, (d + 2) % 4), 0), 4095) if d < 4 else 0
                    aux = min(contra + occ * self.w_occ, 16383)
                else:
                    aux = occ
                if self.junction:
                    aux = 2 * aux + (1 if d < 4 and d != self.last_dir[i] else 0)
                if d < 4 and self.d(i, u) >= UNREACH and self.d(i, v) < UNREACH:
                    continue                    # a one-way trap for this robot: never entered
                dist = min(self.d(i, u), UNREACH)
                if self.rotation and d < 4:
                    turns = (d - self.heading[i]) % 4
                    turns = 1 if turns == 3 else turns
                    aux += 16384 * turns
                    if pushed and dist < UNREACH:
                        dist += self.turn_weight * turns
                cands.append(((dist, aux, mix(base + u) >> 40), u))
            return sorted(cands)

        def pibt(i, parent):
            ranked = candidates(i, parent is not None)
            cands = [u for _, u in ranked]
            w = None
            v0 = self.pos[i]
            if self.swap and cands[0] != v0:
                j = now.get(cands[0])
                if (j is not None and j != i and nxt[j] is None
                        and self.swap_required(i, j, v0, cands[0], now)
                        and self.swap_possible(cands[0], v0, now)):
                    w = j                       # i backs off, pulling j after it
                    m = sum(1 for key, _ in ranked if key[0] < UNREACH)
                    # farthest first; equal distances keep their order (fewest turns first)
                    back = sorted(range(m), key=lambda x: (-ranked[x][0][0], x))
                    cands[:m] = [cands[x] for x in back]
            for idx, u in enumerate(cands):
                if u in reserved:
                    continue
                if parent is not None and u == self.pos[parent]:
                    continue
                v = self.pos[i]
                held = (self.hold and parent is None and u != v
                        and self.moves[v][self.heading[i]] != u)
                if held:
                    reserved[v] = i                 # it will only turn: keep its cell
                reserved[u] = i
                nxt[i] = u
                k = now.get(u)
                if k is not None and k != i and nxt[k] is None:
                    if not pibt(k, i):
                        if held and reserved.get(v) == i:
                            del reserved[v]
                        continue
                if w is not None and idx == 0 and nxt[w] is None and u != v and v not in reserved:
                    nxt[w] = v
                    reserved[v] = w
                return True
            reserved[self.pos[i]] = i
            nxt[i] = self.pos[i]
            return False

        for i in order:
            if nxt[i] is None:
                pibt(i, None)
        if self.rotation:
            self.rotate(nxt)
        for i in range(n):
            if nxt[i] != self.pos[i]:
                d = self.moves[self.pos[i]].index(nxt[i])
                self.last_dir[i] = d
                if self.flow_on:
                    self.flow[(self.pos[i], d)] = self.flow.get((self.pos[i], d), 0) + 1
        self.pos = nxt
        for i in range(n):
            if self.dwell[i] > 0:
                self.dwell[i] -= 1
                if self.dwell[i] == 0:
                    self.finished[i] = self.done[i] = True
            elif not self.done[i] and self.d(i, nxt[i]) == 0:
                t = self.types[nxt[i]]
                k = self.dwell_chute if t == 3 else (self.dwell_induct if t == 2 else 0)
                if k <= 0:
                    self.finished[i] = self.done[i] = True
                else:
                    self.dwell[i] = k
        self.step_no += 1
        if self.flow_on and self.halflife and self.step_no % self.halflife == 0:
            self.flow = {k: v >> 1 for k, v in self.flow.items()}
        return list(self.pos)
