"""QA pass 18 (`mapfout`): `sorter mapf` outputs audited as an outside checker would.

New small instances (hand-written ASCII floors with multi-cell chutes, a shared drop cell and an
induct queue; an RHCR ``.grid`` whose induct and chute stations span several cells; a LoRR
``.map`` whose ``E`` / ``S`` cells make the stations; a LoRR problem with its own map, agents and
tasks files; a MovingAI ``.scen`` with a ``--tasks`` file) go through the CLI, and everything is
checked from ``paths.npz`` alone with the plain-Python oracle below, which imports nothing from
sorter: every move legal (unit moves or waits, no obstacles, no vertex or swap conflicts,
one-way moves, the induct queue's one-way rules, headings under ``--rotation``), starts equal to
the agents file, and ``tasks_completed`` recounted from the positions and the documented task
rules:

- sorting floors: robots cycle induct -> chute; a goal counts when the robot reaches a cell of
  the goal's station and has stayed the dwell (``--dwell-induct`` / ``--dwell-chute``) more
  steps there (on floors with one induct station and one chute station the goal sequence is
  known exactly);
- LoRR errands: ``roundrobin``, ``roundrobin_fixed``, ``greedy`` (each robot holds
  ``ceil(numTasksReveal)`` tasks, refilled in index order) and ``nearest`` (the 2024 start-kit
  scheduler as sorter documents it: Manhattan cost plus the task's length, earliest revealed
  on ties, a robot within 2 of its last errand choosing its next task from there), multi-errand
  tasks, repeated errands, errands on a robot's start, dwell on errands at ``E`` / ``S`` cells.

Earlier passes recounted only round robin on single-station-free maps (test_qa15_mapf_unseen)
and the 2023 greedy goals with a fake planner (test_qa14_mapf); none recounted sorting cycles,
dwell, multi-cell stations, the induct queue rules, the nearest scheduler or per-parcel KPIs.
"""
import hashlib
import json
from collections import deque

import numpy as np
import pytest

from sorter.cli import main

_HEAD = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0)}          # east south west north


# ---------------------------------------------------------------- the oracle (no sorter code)
def _cells(rows, chars):
    w = len(rows[0])
    return {r * w + c for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in chars}


def _queue_rule(rows):
    """Moves allowed around an ASCII induct queue: a line of Q entered at its tail from outside,
    one way up to the I beside its head, which is entered only from the head."""
    w = len(rows[0])
    q = sorted(_cells(rows, "Q"))
    ind = next(c for c in _cells(rows, "I")
               if any(abs(c // w - x // w) + abs(c % w - x % w) == 1 for x in q))
    if abs(q[0] // w - ind // w) + abs(q[0] % w - ind % w) == 1:
        q = q[::-1]                                     # q[0] the tail, q[-1] the head

    def ok(a, b):
        if b in q:
            j = q.index(b)
            return (a not in q and a != ind) if j == 0 else a == q[j - 1]
        if a in q:
            j = q.index(a)
            return b == (q[j + 1] if j + 1 < len(q) else ind)
        return b != ind or a == q[-1]
    return ok


def _arrow_rule(rows):
    """ASCII arrows: no move against the arrow out of or into an arrow cell."""
    h, w = len(rows), len(rows[0])
    step = {">": (0, 1), "v": (1, 0), "<": (0, -1), "^": (-1, 0)}
    banned = set()
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch in step:
                dr, dc = step[ch]
                if 0 <= r - dr < h and 0 <= c - dc < w:
                    banned.add((r * w + c, (r - dr) * w + c - dc))
                if 0 <= r + dr < h and 0 <= c + dc < w:
                    banned.add(((r + dr) * w + c + dc, r * w + c))
    return lambda a, b: (a, b) not in banned


def _problem(P, w, h, free, ok=lambda a, b: True, H=None):
    """The first illegal thing in the plan, as a string, or None."""
    P = np.asarray(P, np.int64)
    T, R = P.shape
    for t in range(T):
        row = P[t].tolist()
        if any(c not in free for c in row):
            return f"t={t}: off the free cells"
        if len(set(row)) != R:
            return f"t={t}: two robots on one cell"
        if H is not None and not ((H[t] >= 0) & (H[t] < 4)).all():
            return f"t={t}: a heading out of 0..3"
        if t == 0:
            continue
        moved = set()
        for i in range(R):
            a, b = int(P[t - 1, i]), int(P[t, i])
            if a == b:
                if H is not None and (int(H[t, i]) - int(H[t - 1, i])) % 4 == 2:
                    return f"t={t}: robot {i} turned 180 degrees"
                continue
            (ra, ca), (rb, cb) = divmod(a, w), divmod(b, w)
            if abs(ra - rb) + abs(ca - cb) != 1:
                return f"t={t}: robot {i} jumped {a} -> {b}"
            if not ok(a, b):
                return f"t={t}: robot {i} broke a one-way rule {a} -> {b}"
            if H is not None and (H[t, i] != H[t - 1, i] or _HEAD[int(H[t, i])] != (rb - ra, cb - ca)):
                return f"t={t}: robot {i} moved off its heading"
            if (b, a) in moved:
                return f"t={t}: robots swapped {a} <-> {b}"
            moved.add((a, b))
    return None


def _cycles(P, induct_cells, chute_cells, dwell_induct, dwell_chute):
    """Sorting floor with one induct station and one chute station: each robot's goals are
    induct, chute, induct, ... A goal is reached at step t >= 1 when the robot stands on a cell
    of its station; with dwell k it stays k more steps and the goal counts then. Returns the
    completions as (step, robot, 0 = induct / 1 = chute), or raises if a robot moves while it
    dwells."""
    sets, dwell = (induct_cells, chute_cells), (dwell_induct, dwell_chute)
    events = []
    for i in range(P.shape[1]):
        kind, left = 0, 0
        for t in range(1, P.shape[0]):
            c = int(P[t, i])
            if left:
                assert c == int(P[t - 1, i]), f"robot {i} moved while dwelling at t={t}"
                left -= 1
            elif c in sets[kind]:
                left = dwell[kind]
            else:
                continue
            if left == 0:
                events.append((t, i, kind))
                kind ^= 1
    return sorted(events)


def _manhattan(a, b, w):
    return abs(a // w - b // w) + abs(a % w - b % w)


def _bfs(free, w, goal):
    dist, todo = {goal: 0}, deque([goal])
    while todo:
        v = todo.popleft()
        for d in (1, -1, w, -w):
            u = v + d
            if u in free and u not in dist and (abs(d) == w or u // w == v // w):
                dist[u] = dist[v] + 1
                todo.append(u)
    return dist


def _errands(P, tasks, strategy, reveal=1, dwell_of=lambda c: 0, w=None, free=None):
    """LoRR errand recount: (errands done, tasks finished). ``tasks``: lists of errand cells, in
    file order, the file read again from the top (``roundrobin_fixed``: once). An errand counts
    when its robot stands on its cell (after its dwell there); one errand per robot per step."""
    T, R = P.shape
    n = len(tasks)
    done = finished = 0
    task, step, left = [0] * R, [0] * R, [0] * R
    nxt, seq, pool, queued, hold = 0, 0, [], [-1] * R, []
    length = [sum(_manhattan(a, b, w) for a, b in zip(t, t[1:])) for t in tasks] if w else None

    def reveal_(k):
        nonlocal nxt, seq
        for _ in range(k):
            pool.append((nxt % n, seq))
            nxt, seq = nxt + 1, seq + 1

    def pick(cell):        # nearest: least Manhattan to the first errand + length, earliest seq
        j = min(range(len(pool)), key=lambda j: (_manhattan(cell, tasks[pool[j][0]][0], w)
                                                 + length[pool[j][0]], pool[j][1]))
        return pool.pop(j)[0]

    if strategy in ("roundrobin", "roundrobin_fixed"):
        task = list(range(R))
    elif strategy == "greedy":
        r = int(np.ceil(reveal))
        hold = [deque(range(i * r, (i + 1) * r)) for i in range(R)]
        nxt = R * r
        task = [q[0] for q in hold]
    else:
        reveal_(max(R, min(int(np.ceil(reveal * R)), n)))
        task = [pick(int(P[0, i])) for i in range(R)]
    dist = {}
    for t in range(1, T):
        before = [tasks[task[i] % n][step[i]] if task[i] < n or strategy != "roundrobin_fixed"
                  else -1 for i in range(R)]
        fin = []
        for i in range(R):
            c = int(P[t, i])
            if before[i] < 0:
                continue
            if left[i]:
                assert c == int(P[t - 1, i]), f"robot {i} moved while dwelling at t={t}"
                left[i] -= 1
                if left[i]:
                    continue
            elif c == before[i]:
                left[i] = dwell_of(c)
                if left[i]:
                    continue
            else:
                continue
            done += 1
            step[i] += 1
            if step[i] == len(tasks[task[i] % n]):
                finished += 1
                step[i] = 0
                fin.append(i)
        if strategy in ("roundrobin", "roundrobin_fixed"):
            for i in fin:
                task[i] += R
        elif strategy == "greedy":
            for i in fin:
                hold[i].popleft()
                hold[i].append(nxt)
                nxt += 1
                task[i] = hold[i][0]
        else:
            reveal_(len(fin))
            for i in fin:
                task[i], queued[i] = (pick(int(P[t, i])), -1) if queued[i] < 0 else (queued[i], -1)
            for i in range(R):                      # pick ahead near a task's last errand
                g = tasks[task[i] % n][step[i]]
                if (pool and g == before[i] and queued[i] < 0 and not left[i]
                        and step[i] + 1 == len(tasks[task[i] % n])):
                    if g not in dist:
                        dist[g] = _bfs(free, w, g)
                    if dist[g].get(int(P[t - 1, i]), 99) <= 2:
                        queued[i] = pick(g)
    return done, finished


# ---------------------------------------------------------------- running the CLI
def _mapf(tmp_path, floor, *args, tag="o"):
    out = tmp_path / tag
    assert main(["mapf", str(floor), *map(str, args), "--out", str(out), "--json"]) == 0
    with np.load(out / "paths.npz") as z:
        files = {k: z[k] for k in z.files}
    k = json.loads((out / "kpis.json").read_text())
    P = files["positions"]
    assert P.dtype == np.int32 and P.shape == (k["steps"] + 1, k["robots"])
    assert ("headings" in files) == ("--rotation" in args) == k["rotation"]
    assert "headings" not in files or files["headings"].shape == P.shape
    assert k["tasks_per_step"] == pytest.approx(k["tasks_completed"] / max(1, k["steps"]))
    return files, k


def _write_map(path, rows):
    path.write_text(f"type octile\nheight {len(rows)}\nwidth {len(rows[0])}\nmap\n"
                    + "\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------- sorting floors
# one induct station and one chute station each: the goal sequence is known exactly
SORT_FLOORS = {
    # a 2-cell chute body with four drop cells: any drop cell of the chute completes the drop
    "ascii_multi_drop": (["..........", ".I........", "..........", "...DCD....", "...DCD....",
                          ".........."], "I", "D"),
    # an induct behind a 3-cell queue (Q): entered at the tail, one way up to the induct
    "ascii_queue": (["...........", ".QQQI......", "...........", "....DCD....", "....DCD....",
                     "..........."], "I", "D"),
    # one drop cell shared by two chutes: both chutes' parcels are tipped there
    "ascii_shared_drop": (["......", ".CDC..", "......", "..I...", "......"], "I", "D"),
    # induct and drop cell side by side
    "ascii_adjacent": (["......", ".IDC..", "......", "......"], "I", "D"),
    # a one-way ring of arrows round the chute, the induct in its corner
    "ascii_one_way_ring": (["I>>>>>v", "^.....v", "^.DCD.v", "^.....v", "^<<<<<<"], "I", "D"),
    # a LoRR map: the E cell is the induct, the S cells around one shelf block one chute
    "lorr_roles": (["E.........", "....S.....", "...S@@S...", "....SS....", "..........",
                    "........@@"], "E", "S"),
}


def _write_floor(tmp_path, name, rows):
    if name.startswith("lorr"):
        return _write_map(tmp_path / f"{name}.map", rows)
    p = tmp_path / f"{name}.txt"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize("name", sorted(SORT_FLOORS))
@pytest.mark.parametrize("extra, dwell", [([], (1, 5)),
                                          (["--dwell-induct", 3, "--dwell-chute", 0], (3, 0)),
                                          (["--rotation", "--dwell-induct", 0, "--dwell-chute", 2],
                                           (0, 2))])
def test_sorting_cycles_recounted_with_dwell(tmp_path, name, extra, dwell):
    """tasks_completed and parcels_delivered equal the recount of induct -> chute cycles with the
    dwell steps, the moves are legal (queue rules, headings) and starts are distinct free cells."""
    rows, ind, chute = SORT_FLOORS[name]
    path = _write_floor(tmp_path, name, rows)
    w, h = len(rows[0]), len(rows)
    free = _cells(rows, ".IDQES><^v")
    ok = _queue_rule(rows) if "Q" in "".join(rows) else _arrow_rule(rows)
    z, k = _mapf(tmp_path, path, "--robots", 4, "--steps", 90, "--seed", 2, *extra)
    P = z["positions"]
    assert (int(z["width"]), int(z["height"])) == (w, h)
    assert _problem(P, w, h, free, ok, z.get("headings")) is None
    ev = _cycles(P, _cells(rows, ind), _cells(rows, chute), *dwell)
    assert k["rescues"] == 0
    assert k["tasks_completed"] == len(ev) > 4
    assert k["parcels_delivered"] == sum(kind for _, _, kind in ev)


@pytest.mark.parametrize("dwell", [(1, 5), (4, 0), (0, 3)])
def test_lone_robot_leaves_the_step_after_its_dwell(tmp_path, dwell):
    """The dwell is exactly the documented number of steps: a lone robot (nothing in its way)
    stands on its station for the dwell steps after arriving, its goal counts, and it moves on
    at the next step (a dwell one step too long or too short fails here, not only in the
    count at the run's end)."""
    rows = SORT_FLOORS["ascii_multi_drop"][0]
    path = _write_floor(tmp_path, "lone", rows)
    z, k = _mapf(tmp_path, path, "--robots", 1, "--steps", 80, "--dwell-induct", dwell[0],
                 "--dwell-chute", dwell[1])
    P = z["positions"][:, 0]
    ev = _cycles(z["positions"], _cells(rows, "I"), _cells(rows, "D"), *dwell)
    assert k["tasks_completed"] == len(ev) > 5
    for t, _, kind in ev:
        assert (P[t - dwell[kind]:t + 1] == P[t]).all()
        assert t - dwell[kind] <= 1 or P[t - dwell[kind] - 1] != P[t]
        assert t + 1 >= P.size or P[t + 1] != P[t], (t, kind)


def test_induct_queue_kpis_recounted(tmp_path):
    """induct_queue_mean / _max: robots standing in the queue, over steps 1..T."""
    rows = SORT_FLOORS["ascii_queue"][0]
    path = _write_floor(tmp_path, "q", rows)
    q = _cells(rows, "Q")
    for n in (3, 8):
        z, k = _mapf(tmp_path, path, "--robots", n, "--steps", 120, "--dwell-induct", 2)
        inq = np.isin(z["positions"][1:], list(q)).sum(axis=1)
        assert k["induct_queue_max"] == {"I0": int(inq.max())}
        assert k["induct_queue_mean"]["I0"] == pytest.approx(inq.mean())


def test_chute_engine_parcel_kpis_recounted(tmp_path):
    """--scenario sorting on the shared-drop floor: drops, per-chute and per-hour figures, and
    induct-to-drop p50/p95 (steps from the induct goal's end to the drop goal's end) agree with
    the recount from the paths."""
    rows = SORT_FLOORS["ascii_shared_drop"][0]
    path = _write_floor(tmp_path, "cdc", rows)
    for extra, dwell in (([], (1, 5)), (["--dwell-chute", 2, "--dwell-induct", 3], (3, 2))):
        z, k = _mapf(tmp_path, path, "--scenario", "sorting", "--robots", 3, "--steps", 100,
                     "--seconds-per-step", 2, *extra)
        ev = _cycles(z["positions"], _cells(rows, "I"), _cells(rows, "D"), *dwell)
        drops = sum(kind for _, _, kind in ev)
        assert k["tasks_completed"] == len(ev)
        assert k["parcels_sorted"] == drops == sum(k["sorted_per_chute"].values())
        assert k["sorted_per_hour"] == pytest.approx(drops * 3600 / (100 * 2))
        last, lat = {}, []
        for t, i, kind in ev:
            if kind == 0:
                last[i] = t
            else:
                lat.append(t - last[i])
        assert [k["induct_to_drop_p50"], k["induct_to_drop_p95"]] == pytest.approx(
            np.percentile(lat, [50, 95]).tolist())
        assert sum(k["robot_utilisation"].values()) == pytest.approx(1.0)


def _rhcr_grid(rows, one_way):
    """RHCR .grid text of rows (y) of . @ I E; every I cell one induct station 'ind', every E
    cell one chute station 'out'; row y in one_way only moves +1 / -1 in x. Returns (text,
    forbidden moves)."""
    H, W = len(rows), len(rows[0])
    banned = set()
    out = ["Grid size (x, y)", f"{W},{H}", "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,"
           "weight_to_SOUTH,weight_to_EAST,weight_for_WAIT"]
    for x in range(W):
        for y in range(H):
            ch = rows[y][x]
            ws = []
            for dx, dy in ((0, 1), (-1, 0), (0, -1), (1, 0)):   # the columns' geometry
                ok = ch != "@" and 0 <= x + dx < W and 0 <= y + dy < H and rows[y + dy][x + dx] != "@"
                if ok and dy == 0 and dx == -one_way.get(y, dx):
                    ok = False
                    banned.add((y * W + x, y * W + x + dx))
                ws.append("1" if ok else "inf")
            typ = {"@": "Obstacle", ".": "Travel", "I": "Induct", "E": "Eject"}[ch]
            st = {"I": "ind", "E": "out"}.get(ch, "None")
            out.append(f"{x * H + y},{typ},{st},{x},{y},{','.join(ws)},{'inf' if ch == '@' else 1}")
    return "\n".join(out) + "\n", banned


def test_rhcr_grid_multi_cell_stations_and_one_way_rows(tmp_path):
    """An RHCR .grid whose induct station has 2 cells and chute station 4 (both sides of a
    shelf), top row east only, bottom row west only: legal moves, exact cycle recount."""
    rows = ["..........", ".II.......", "..........", "....E@E...", "....E@E...", ".........."]
    text, banned = _rhcr_grid(rows, {0: 1, 5: -1})
    p = tmp_path / "g.grid"
    p.write_text(text)
    w, h = len(rows[0]), len(rows)
    for extra, dwell in (([], (1, 5)), (["--rotation", "--dwell-chute", 1, "--dwell-induct", 2], (2, 1))):
        z, k = _mapf(tmp_path, p, "--robots", 6, "--steps", 100, "--seed", 1, *extra)
        P = z["positions"]
        assert _problem(P, w, h, _cells(rows, ".IE"), lambda a, b: (a, b) not in banned,
                        z.get("headings")) is None
        ev = _cycles(P, _cells(rows, "I"), _cells(rows, "E"), *dwell)
        assert k["tasks_completed"] == len(ev) > 6


# ---------------------------------------------------------------- LoRR problems
LMAP = ["..E.......E.", ".@@..@@..@..", ".@@..@@..@.E", "............", "E..@@..SS...",
        "...@@..@@..E", "....E......."]
LW = len(LMAP[0])
LFREE = _cells(LMAP, ".ES")
AGENTS = [34, 58, 35, 15, 73, 0, 83]


def _lorr(tmp_path, tasks, **doc):
    for d in ("maps", "agents", "tasks"):
        (tmp_path / d).mkdir(exist_ok=True)
    _write_map(tmp_path / "maps" / "m.map", LMAP)
    (tmp_path / "agents" / "a.agents").write_text(f"{len(AGENTS)}\n" + "".join(f"{a}\n" for a in AGENTS))
    (tmp_path / "tasks" / "t.tasks").write_text(
        f"{len(tasks)}\n" + "".join(",".join(map(str, t)) + "\n" for t in tasks))
    d = {"mapFile": "maps/m.map", "agentFile": "agents/a.agents", "taskFile": "tasks/t.tasks",
         "teamSize": 5, "numTasksReveal": 1}
    d.update(doc)
    (tmp_path / "p.json").write_text(json.dumps(d))
    return tmp_path / "p.json"


def _lorr_tasks():
    rng = np.random.default_rng(18)
    cells = sorted(LFREE)
    single = [[int(c)] for c in rng.choice(cells, 11)]
    multi = [[int(c) for c in rng.choice(cells, int(rng.integers(1, 4)))] for _ in range(9)]
    # repeated errands, errands on robots' starts, E / S cells
    multi += [[AGENTS[0], AGENTS[0]], [AGENTS[1]], [cells[5], cells[5], cells[9]],
              [_lorr_e(0), _lorr_s(0)], [_lorr_s(1), _lorr_e(2), _lorr_e(3)]]
    return single, multi


def _lorr_e(j):
    return sorted(_cells(LMAP, "E"))[j]


def _lorr_s(j):
    return sorted(_cells(LMAP, "S"))[j]


@pytest.mark.parametrize("strategy", ["roundrobin", "roundrobin_fixed", "greedy"])
@pytest.mark.parametrize("form", ["2023", "2024"])
def test_lorr_errands_recounted_with_reveal_and_rotation(tmp_path, strategy, form):
    """Errands and LoRR 2024 tasks finished recount exactly, greedy with 3 revealed tasks per
    robot (2024: multi-errand tasks, repeated errands, errands on start cells), 4-connected and
    --rotation; starts are the agents file's first teamSize agents."""
    single, multi = _lorr_tasks()
    tasks = single if form == "2023" else multi
    doc = {"taskAssignmentStrategy": strategy, "numTasksReveal": 2.5}
    if form == "2024":
        doc["version"] = "2024 LoRR"
    p = _lorr(tmp_path, tasks, **doc)
    for extra in ([], ["--rotation"]):
        z, k = _mapf(tmp_path, p, "--steps", 80, "--seed", 3, *extra)
        P = z["positions"]
        assert P[0].tolist() == AGENTS[:5]
        assert _problem(P, LW, len(LMAP), LFREE, H=z.get("headings")) is None
        done, finished = _errands(P, tasks, strategy, reveal=2.5)
        assert (k["tasks_completed"], k["lorr_tasks_finished"]) == (done, finished)
        assert done > 10


@pytest.mark.parametrize("tasks_kind, reveal", [("single", 1), ("single", 1.5), ("multi", 3)])
def test_lorr_nearest_scheduler_recounted(tmp_path, tasks_kind, reveal):
    """The 2024 'nearest' scheduler, recounted from the documented rule (guidance none: the
    pick-ahead distance is then the plain BFS distance from the robot's cell before the step)."""
    single, multi = _lorr_tasks()
    tasks = single if tasks_kind == "single" else multi
    p = _lorr(tmp_path, tasks, numTasksReveal=reveal, version="2024 LoRR")
    z, k = _mapf(tmp_path, p, "--steps", 100, "--guidance", "none")
    P = z["positions"]
    assert _problem(P, LW, len(LMAP), LFREE) is None
    assert (k["tasks_completed"], k["lorr_tasks_finished"]) == _errands(
        P, tasks, "nearest", reveal=reveal, w=LW, free=LFREE)


@pytest.mark.parametrize("dwell_s, dwell_e", [(3, 0), (2, 4)])
def test_lorr_dwell_on_station_errands_recounted(tmp_path, dwell_s, dwell_e):
    """--dwell-chute / --dwell-induct on a LoRR errand run dwell at the map's S / E cells only."""
    _, multi = _lorr_tasks()
    tasks = multi[-2:] + multi[:3]
    p = _lorr(tmp_path, tasks, taskAssignmentStrategy="roundrobin", version="2024 LoRR")
    S, E = _cells(LMAP, "S"), _cells(LMAP, "E")
    for extra in ([], ["--rotation"]):
        z, k = _mapf(tmp_path, p, "--steps", 90, "--dwell-chute", dwell_s,
                     "--dwell-induct", dwell_e, *extra)
        got = _errands(z["positions"], tasks, "roundrobin",
                       dwell_of=lambda c: dwell_s if c in S else (dwell_e if c in E else 0))
        assert (k["tasks_completed"], k["lorr_tasks_finished"]) == got


def test_scen_starts_tasks_file_and_seeds(tmp_path):
    """A MovingAI .scen gives the starts and a --tasks file round-robin errands on a plain .map;
    the same seed writes the same bytes, other seeds break PIBT's ties otherwise (same starts
    and errands, different paths)."""
    _write_map(tmp_path / "m.map", [r.replace("E", ".").replace("S", ".") for r in LMAP])
    cells = sorted(LFREE)
    starts = [cells[j] for j in (3, 17, 40, 22, 30)]
    (tmp_path / "s.scen").write_text("version 1\n" + "".join(
        f"0\tm.map\t{LW}\t{len(LMAP)}\t{s % LW}\t{s // LW}\t0\t0\t1.0\n" for s in starts))
    errands = [cells[j] for j in (5, 30, 11, 44, 2, 38, 19, 50)]
    (tmp_path / "x.tasks").write_text(f"{len(errands)}\n" + "".join(f"{e}\n" for e in errands))
    digests, paths = [], []
    for i, seed in enumerate((0, 0, 1, 2)):
        z, k = _mapf(tmp_path, tmp_path / "m.map", "--agents", tmp_path / "s.scen", "--tasks",
                     tmp_path / "x.tasks", "--steps", 60, "--seed", seed, tag=f"s{i}")
        P = z["positions"]
        assert P[0].tolist() == starts
        assert k["tasks_completed"] == _errands(P, [[e] for e in errands], "roundrobin")[0] > 5
        digests.append(hashlib.sha256((tmp_path / f"s{i}" / "paths.npz").read_bytes()).digest())
        paths.append(P)
    assert digests[0] == digests[1]
    assert not np.array_equal(paths[0], paths[2]) and not np.array_equal(paths[0], paths[3])


# ---------------------------------------------------------------- the oracle is not vacuous
def test_oracle_rejects_what_it_should():
    rows = SORT_FLOORS["ascii_queue"][0]
    w, h = len(rows[0]), len(rows)
    free, ok = _cells(rows, ".IDQ"), _queue_rule(rows)
    tail, head, ind = w + 1, w + 3, w + 4
    assert _problem([[tail - w], [tail], [tail + 1], [head], [ind]], w, h, free, ok) is None
    assert "one-way" in _problem([[head + w], [head]], w, h, free, ok)        # side entry
    assert "one-way" in _problem([[ind + w], [ind]], w, h, free, ok)          # induct from below
    assert "one-way" in _problem([[head], [head - 1]], w, h, free, ok)        # backwards
    ring = SORT_FLOORS["ascii_one_way_ring"][0]
    assert "one-way" in _problem([[2], [1]], 7, 5, _cells(ring, ".ID><^v"), _arrow_rule(ring))
    assert _problem([[1], [2], [9]], 7, 5, _cells(ring, ".ID><^v"), _arrow_rule(ring)) is None
    assert "swapped" in _problem([[0, 1], [1, 0]], w, h, free)
    assert "two robots" in _problem([[0, 1], [1, 1]], w, h, free)
    assert "jumped" in _problem([[0], [2]], w, h, free)
    assert "off the free" in _problem([[4 * w + 5]], w, h, free)               # a chute body
    assert "heading" in _problem([[0], [1]], w, h, free, H=np.array([[1], [1]]))
    assert "180" in _problem([[0], [0]], w, h, free, H=np.array([[0], [2]]))
    # the cycle count: dwell 2 at the induct (cell 1), then the drop cell (2) with no dwell
    P = np.array([[0], [1], [1], [1], [2], [2], [1], [1]])
    assert _cycles(P, {1}, {2}, 2, 0) == [(3, 0, 0), (4, 0, 1)]
    with pytest.raises(AssertionError, match="dwelling"):
        _cycles(np.array([[0], [1], [0]]), {1}, {2}, 2, 0)
    # errands: greedy holds 2 tasks per robot and refills in robot order
    P = np.array([[9, 8], [1, 8], [1, 3], [4, 3]])
    assert _errands(P, [[1], [2], [3], [4], [5]], "greedy", reveal=2) == (2, 2)
    assert _errands(P, [[1], [3], [4]], "roundrobin") == (3, 3)
