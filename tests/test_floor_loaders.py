"""Floor loaders: every benchmark floor in ../shared, known figures, and malformed files."""
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_floor import check_contract
from sorter.errors import InputError
from sorter.layout import (
    DROP, INDUCT, OBSTACLE, LorrProblem, Scenario, load_floor, load_kiva_map,
    load_lorr_problem, load_movingai_map, load_rhcr_grid, load_scen, parse_ascii,
)
from sorter.resources import shared_path

BENCH = shared_path("benchmarks")
needs_bench = pytest.mark.skipif(BENCH is None, reason="../shared/benchmarks is absent")


def bench(*parts):
    if BENCH is None:
        pytest.skip("../shared/benchmarks is absent")
    p = BENCH.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


# ---------------------------------------------------------------- benchmark floors
@pytest.mark.parametrize("name, shape, free", [
    ("warehouse-10-20-10-2-1.map", (63, 161), 5699),
    ("warehouse-20-40-10-2-1.map", (123, 321), 22599),
])
def test_movingai_warehouses(name, shape, free):
    f = load_movingai_map(bench("movingai", name))
    check_contract(f)
    assert (f.height, f.width) == shape and f.free_cells.size == free
    assert f.inducts == [] and f.chutes == [] and not f.is_directed
    assert load_floor(bench("movingai", name)).free_cells.size == free


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_movingai_scenarios(k):
    p = bench("movingai", "scen-even", f"warehouse-10-20-10-2-1-even-{k}.scen")
    f = load_movingai_map(bench("movingai", "warehouse-10-20-10-2-1.map"))
    s = load_scen(p, f)
    lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    has_version = lines[0].startswith("version")
    assert isinstance(s, Scenario) and len(s) == len(lines) - has_version
    assert (s.width, s.height) == (161, 63) and s.map_name == "warehouse-10-20-10-2-1.map"
    assert (f.cells[s.starts] != OBSTACLE).all() and (f.cells[s.goals] != OBSTACLE).all()
    # first agent line by hand: x = column, y = row
    parts = lines[int(has_version)].split("\t")
    assert s.starts[0] == int(parts[5]) * 161 + int(parts[4])
    assert s.goals[0] == int(parts[7]) * 161 + int(parts[6])


LORR_MAPS = [
    # folder, map, (rows, cols), free, E cells, S cells
    ("example_instances", "sortation_large.map", (140, 500), 54320, 620, 31296),
    ("example_instances", "warehouse_large.map", (140, 500), 38586, 352, 25250),
    ("example_instances", "warehouse_small.map", (33, 57), 1277, 40, 342),
    ("main_round", "sortation_large.map", (140, 500), 54320, 620, 31296),
    ("main_round", "warehouse_large.map", (140, 500), 38586, 352, 25249),
    ("test_round", "sortation_large.map", (140, 500), 54320, 620, 31296),
]


@pytest.mark.parametrize("folder, name, shape, free, n_e, n_s", LORR_MAPS)
def test_lorr_maps(folder, name, shape, free, n_e, n_s):
    p = bench("lorr2023", folder, "warehouse.domain", "maps", name)
    f = load_floor(p)
    check_contract(f)
    assert (f.height, f.width) == shape and f.free_cells.size == free
    assert len(f.inducts) == n_e and f.induct_cells.size == n_e
    assert f.drop_cells.size == n_s
    covered = np.unique(np.concatenate([c.cells for c in f.chutes]))
    assert covered.size == n_s                         # every S cell serves some chute
    assert f.reachability_problem() is None
    if name.startswith("sortation"):
        # every S cell touches a 1x1 chute block: chutes of 3-4 drop cells, all bodies 1 cell
        assert {c.cells.size for c in f.chutes} <= {3, 4}
        assert np.bincount(f.chute_body[f.chute_body >= 0]).max() == 1
        # E cells on the outer border
        r, c = np.divmod(f.induct_cells, f.width)
        assert ((r == 0) | (r == f.height - 1) | (c == 0) | (c == f.width - 1)).all()


def _lorr_jsons():
    if BENCH is None:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="../shared/benchmarks not present: no LoRR problem files"))]
    return sorted(BENCH.joinpath("lorr2023").glob("*/warehouse.domain/*.json"))


@pytest.mark.parametrize("path", _lorr_jsons(), ids=lambda p: p.name if p is not None else "no-shared")
def test_lorr_problems(path):
    prob = load_lorr_problem(path)
    doc = json.loads(path.read_text())
    assert isinstance(prob, LorrProblem)
    assert prob.team_size == doc["teamSize"] == prob.starts.size
    assert prob.strategy == doc["taskAssignmentStrategy"] == "roundrobin"
    assert prob.starts.dtype == np.int32 and prob.tasks.dtype == np.int32
    f = prob.floor
    assert (f.cells[prob.starts] != OBSTACLE).all() and (f.cells[prob.tasks] != OBSTACLE).all()
    assert np.unique(prob.starts).size == prob.starts.size
    with open(path.parent / doc["taskFile"]) as fh:
        task_lines = [fh.readline() for _ in range(2001)]
    assert prob.tasks.size == int(task_lines[0])
    assert prob.tasks[:2000].tolist() == [int(v) for v in task_lines[1:]]
    # round robin: robot i gets errands i, i + n, i + 2n, ... (the file repeats)
    n = prob.team_size
    robots = np.arange(min(n, 50))
    for k in (0, 1, 7):
        want = [int(prob.tasks[(i + k * n) % prob.tasks.size]) for i in robots]
        assert prob.task_for(robots, k).tolist() == want
    # about half the errands are E cells and half S cells (README)
    kinds = f.cells[prob.tasks]
    assert 0.3 < (kinds == INDUCT).mean() < 0.7 and 0.3 < (kinds == DROP).mean() < 0.7


def test_rhcr_sorting_grid():
    p = bench("rhcr", "sorting_map.grid")
    f = load_rhcr_grid(p)
    check_contract(f)
    assert (f.height, f.width) == (37, 77) and f.free_cells.size == 2570
    assert len(f.inducts) == 50 and all(s.cells.size == 1 for s in f.inducts)
    assert len(f.chutes) == 275 and all(s.cells.size == 4 for s in f.chutes)
    assert f.drop_cells.size == 1100 and f.is_directed
    assert f.reachability_problem() is None
    # independently of the column mapping: allowed moves = finite weights in the file
    rows = [ln.split(",") for ln in p.read_text().splitlines()[3:]]
    finite = sum(math.isfinite(float(v)) for r in rows for v in r[5:9])
    assert finite == int((f.moves >= 0).sum())
    # and station ids kept as labels, grouped as in the file
    by_id = {}
    for r in rows:
        if r[1] == "Eject":
            by_id.setdefault(r[2], set()).add(int(r[4]) * 77 + int(r[3]))
    assert {s.label: set(s.cells.tolist()) for s in f.chutes} == by_id
    assert load_floor(p).is_directed


def test_rhcr_kiva_map():
    p = bench("rhcr", "kiva.map")
    f = load_kiva_map(p)
    check_contract(f)
    assert (f.height, f.width) == (33, 46) and f.free_cells.size == 1278
    assert len(f.inducts) == 192 and f.drop_cells.size == 480
    assert len(f.chutes) == 24 and all(s.cells.size == 20 for s in f.chutes)
    assert load_floor(p).n_cells == f.n_cells


def test_every_shared_floor_loads():
    if BENCH is None:
        pytest.skip("../shared/benchmarks is absent")
    # (the LoRR problem JSONs are loaded one by one in test_lorr_problems)
    files = [p for ext in ("map", "grid") for p in BENCH.rglob(f"*.{ext}")]
    assert len(files) >= 10
    for p in files:
        check_contract(load_floor(p))


# ---------------------------------------------------------------- small files of each format
ASCII_TEXT = "I....\n.CD..\n.CD.I\n.....\n"
MAP_TEXT = "type octile\nheight 4\nwidth 6\nmap\nE.....\n..S...\n.S@S..\n..S..E\n"
SCEN_TEXT = ("version 1\n"
             "0\tsmall.map\t6\t4\t0\t0\t5\t3\t5.0\n"
             "1\tsmall.map\t6\t4\t1\t0\t3\t1\t2.4\n")
KIVA_TEXT = "5,8\n4\n2\n100\n........\n.r.eeee.\n...@@@@.\n.r......\n........\n"
AGENTS_TEXT = "2\n0\n5\n"
TASKS_TEXT = "4\n8\n23\n13\n0\n"
JSON_TEXT = json.dumps({"mapFile": "small.map", "agentFile": "small.agents",
                        "teamSize": 2, "taskFile": "small.tasks", "numTasksReveal": 1,
                        "taskAssignmentStrategy": "roundrobin"}, indent=4)

DIRS = ((0, 1), (-1, 0), (0, -1), (1, 0))         # file weight columns as (dx, dy)
OUR_DIR = {(0, 1): 1, (-1, 0): 2, (0, -1): 3, (1, 0): 0}


def rhcr_text(floor):
    """Write a floor in RHCR's .grid form (x = column, y = row, id = x * height + y)."""
    out = ["Grid size (x, y)", f"{floor.width},{floor.height}",
           "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,weight_to_SOUTH,weight_to_EAST,"
           "weight_for_WAIT"]
    names = {0: "Obstacle", 1: "Travel", 2: "Induct", 3: "Eject"}
    for x in range(floor.width):
        for y in range(floor.height):
            c = y * floor.width + x
            code = int(floor.cells[c])
            st_id = "None"
            if code == INDUCT:
                st_id = str(1000 + int(floor.station_of_cell[c]))
            elif code == DROP:
                st_id = str(10000 + int(floor.station_of_cell[c]))
            w = ["1" if floor.moves[c, OUR_DIR[d]] >= 0 else "inf" for d in DIRS]
            out.append(f"{x * floor.height + y},{names[code]},{st_id},{x},{y},{','.join(w)},1")
    return "\n".join(out) + "\n"


ONEWAY = parse_ascii("I.>>>.\n.D....\n.C.<<.\n.D...I\n")


def test_small_files_load(tmp_path):
    (tmp_path / "small.txt").write_text(ASCII_TEXT)
    (tmp_path / "small.map").write_text(MAP_TEXT)
    (tmp_path / "small.scen").write_text(SCEN_TEXT)
    (tmp_path / "kiva.map").write_text(KIVA_TEXT)
    (tmp_path / "small.agents").write_text(AGENTS_TEXT)
    (tmp_path / "small.tasks").write_text(TASKS_TEXT)
    (tmp_path / "small.json").write_text(JSON_TEXT)
    (tmp_path / "oneway.grid").write_text(rhcr_text(ONEWAY))
    a = load_floor(tmp_path / "small.txt")
    assert len(a.chutes) == 1 and a.chutes[0].cells.tolist() == [7, 12] and a.source
    m = load_floor(tmp_path / "small.map")
    assert len(m.inducts) == 2 and len(m.chutes) == 1 and m.chutes[0].cells.size == 4
    s = load_scen(tmp_path / "small.scen", m)
    assert s.starts.tolist() == [0, 1] and s.goals.tolist() == [23, 9]
    k = load_floor(tmp_path / "kiva.map")
    assert len(k.inducts) == 2 and len(k.chutes) == 1 and k.chutes[0].cells.size == 4
    prob = load_lorr_problem(tmp_path / "small.json")
    assert prob.starts.tolist() == [0, 5] and prob.tasks.tolist() == [8, 23, 13, 0]
    assert load_floor(tmp_path / "small.json").n_cells == 24
    g = load_floor(tmp_path / "oneway.grid")
    assert np.array_equal(g.moves, ONEWAY.moves) and np.array_equal(g.cells, ONEWAY.cells)
    assert [c.cells.tolist() for c in g.chutes] == [c.cells.tolist() for c in ONEWAY.chutes]
    with pytest.raises(InputError, match="scenario"):
        load_floor(tmp_path / "small.scen")
    with pytest.raises(InputError, match="not found"):
        load_floor(tmp_path / "nope.map")


@pytest.mark.parametrize("text, line, words", [
    ("type octile\nheight 4\nwidth 6\nmap\nE.....\n..S...\n.S@S..\n", 7, "height 4"),
    ("type octile\nheight 2\nwidth 6\nmap\nE.S@..\n..S..E\nE.....\n", 7, "more rows"),
    ("type octile\nheight x\nwidth 6\nmap\n", 2, "height"),
    ("type octile\nheight 1\nwidth 6\nmap\nE.Sq..\n", 5, "unknown character 'q'"),
    ("type octile\nheight 2\nwidth 6\nmap\nE.S@..\n..S.E\n", 6, "row has 5 cells"),
    ("type octile\nheight 3\nwidth 3\nmap\nE@S\n@@@\nS@.\n", 5, "cannot reach"),
])
def test_movingai_errors(tmp_path, text, line, words):
    p = tmp_path / "bad.map"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_floor(p)
    assert words in str(e.value) and str(p) in str(e.value) and e.value.line == line


def test_kiva_and_lorr_errors(tmp_path):
    p = tmp_path / "kiva.map"
    p.write_text(KIVA_TEXT.replace("\n4\n", "\n5\n", 1))
    with pytest.raises(InputError, match="5 endpoints") as e:
        load_floor(p)
    assert e.value.line == 2
    p.write_text(KIVA_TEXT.replace("r", ".").replace("\n2\n", "\n0\n", 1))
    with pytest.raises(InputError, match="no 'r' home cells"):
        load_floor(p)
    (tmp_path / "small.map").write_text(MAP_TEXT)
    (tmp_path / "small.tasks").write_text(TASKS_TEXT)
    (tmp_path / "small.agents").write_text("2\n0\n0\n")
    (tmp_path / "small.json").write_text(JSON_TEXT)
    with pytest.raises(InputError, match="both start on cell 0") as e:
        load_lorr_problem(tmp_path / "small.json")
    assert e.value.path.endswith("small.agents") and e.value.line == 3
    (tmp_path / "small.agents").write_text("2\n0\n14\n")          # 14 is the '@'
    with pytest.raises(InputError, match="obstacle") as e:
        load_lorr_problem(tmp_path / "small.json")
    assert e.value.line == 3
    (tmp_path / "small.agents").write_text(AGENTS_TEXT)
    (tmp_path / "small.json").write_text(JSON_TEXT.replace("roundrobin", "random"))
    with pytest.raises(InputError, match="unknown strategy") as e:
        load_lorr_problem(tmp_path / "small.json")
    assert e.value.line == 7


def test_rhcr_grid_errors(tmp_path):
    good = rhcr_text(ONEWAY).splitlines()
    p = tmp_path / "bad.grid"
    # an allowed move into an obstacle: the chute body (2, 1) is x=1, y=2; its west
    # neighbour (2, 0) may not move east
    i = next(k for k, ln in enumerate(good) if ln.split(",")[3:5] == ["0", "2"])
    f = good[i].split(",")
    f[8] = "1"
    bad = good[:i] + [",".join(f)] + good[i + 1:]
    p.write_text("\n".join(bad) + "\n")
    with pytest.raises(InputError, match="into an Obstacle") as e:
        load_floor(p)
    assert e.value.line == i + 1 and e.value.field == "weight_to_EAST"
    p.write_text("\n".join(good[:-1]) + "\n")
    with pytest.raises(InputError, match="needs 24 cell lines"):
        load_floor(p)
    p.write_text("\n".join(good).replace("Travel", "Travle", 1) + "\n")
    with pytest.raises(InputError, match="unknown type 'Travle'"):
        load_floor(p)


# ---------------------------------------------------------------- malformed files (hypothesis)
JUNK = list(".@TESIDC>r e,\t-0123456789x\x00é") + ["\n", "inf", "None", "Eject", "}", '"']


@st.composite
def mutated(draw, text):
    """Apply 1-3 random edits (characters, lines, truncation) to a valid file's text."""
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "dropline", "dupline",
                                   "swaplines", "truncate"]))
        lines = text.split("\n")
        if op in ("replace", "insert", "delete", "truncate") and text:
            i = draw(st.integers(0, len(text) - 1))
            if op == "replace":
                text = text[:i] + draw(st.sampled_from(JUNK)) + text[i + 1:]
            elif op == "insert":
                text = text[:i] + draw(st.sampled_from(JUNK)) + text[i:]
            elif op == "delete":
                text = text[:i] + text[i + 1:]
            else:
                text = text[:i]
        elif op in ("dropline", "dupline", "swaplines") and lines:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dropline":
                del lines[i]
            elif op == "dupline":
                lines.insert(i, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def _expect_clean(load, path, allowed_paths):
    try:
        out = load(path)
    except InputError as e:
        assert isinstance(e, ValueError)
        assert e.path in {str(p) for p in allowed_paths}, str(e)
        assert e.line is not None, str(e)
        assert e.path in str(e)
        return None
    return out


SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(text=mutated(ASCII_TEXT), raw=st.booleans())
def test_mutated_ascii(tmp_path, text, raw):
    p = tmp_path / "m.txt"
    p.write_bytes(text.encode() + (b"\xff" if raw else b""))
    f = _expect_clean(load_floor, p, [p])
    if f is not None:
        check_contract(f)


@pytest.mark.parametrize("name,base", [("m.map", MAP_TEXT), ("m.map", KIVA_TEXT),
                                       ("m.grid", rhcr_text(ONEWAY))],
                         ids=["movingai", "kiva", "rhcr-grid"])
@SETTINGS
@given(data=st.data())
def test_mutated_map_files(tmp_path, name, base, data):
    """Mutated MovingAI, kiva and RHCR floors load or fail with a one-line error."""
    p = tmp_path / name
    p.write_text(data.draw(mutated(base)))
    f = _expect_clean(load_floor, p, [p])
    if f is not None:
        check_contract(f)


@SETTINGS
@given(text=mutated(SCEN_TEXT))
def test_mutated_scen(tmp_path, text):
    m = tmp_path / "small.map"
    m.write_text(MAP_TEXT)
    floor = load_floor(m)
    p = tmp_path / "m.scen"
    p.write_text(text)
    s = _expect_clean(lambda q: load_scen(q, floor), p, [p])
    if s is not None:
        assert (floor.cells[s.starts] != OBSTACLE).all()


@SETTINGS
@given(which=st.sampled_from(["small.json", "small.map", "small.agents", "small.tasks"]),
       data=st.data())
def test_mutated_lorr_problem(tmp_path, which, data):
    texts = {"small.json": JSON_TEXT, "small.map": MAP_TEXT, "small.agents": AGENTS_TEXT,
             "small.tasks": TASKS_TEXT}
    texts[which] = data.draw(mutated(texts[which]))
    for name, t in texts.items():
        (tmp_path / name).write_text(t)
    files = [tmp_path / name for name in texts]
    prob = _expect_clean(load_lorr_problem, tmp_path / "small.json", files)
    if prob is not None:
        check_contract(prob.floor)
        assert prob.starts.size == prob.team_size


def test_an_empty_floor_path_is_named_as_such():
    from sorter.layout import load_floor
    with pytest.raises(InputError, match="empty"):
        load_floor("")
