"""QA 15: mutation fuzzing of every file the package reads (floors, scenarios, LoRR problems,
plans, chute tables, volumes, events, sweeps).

The contract: a bad file gets a ValueError / TypeError (InputError) naming the file (and its
line where there is one) -- never an IndexError, KeyError, RecursionError, a hang or a silent
misreading; the CLI prints one line and exits 2. An editor's CRLF, BOM or trailing blanks in
an otherwise valid file load as the file without them.

The first tests are the distilled bug classes the fuzzer found; the last one is a small seeded
sweep of the same mutators over tiny seed files of every format (a few seconds).
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
import time

import pytest

from sorter.errors import InputError

# -- tiny valid seed files of every format ------------------------------------------------

MAP = ("type octile\nheight 6\nwidth 10\nmap\n@@@@@@@@@@\n@E.......@\n@..S@S...@\n"
       "@..S@S..E@\n@........@\n@@@@@@@@@@\n")
AGENTS = "3\n11\n16\n22\n"
TASKS = "4\n13\n18\n25\n14\n"
AGENTS24 = "# version for LoRR 2024\n2\n11\n16\n"
TASKS24 = "# version for LoRR 2024\n3\n12,13\n18,25\n14\n"
P23 = {"mapFile": "tiny.map", "agentFile": "tiny.agents", "taskFile": "tiny.tasks",
       "teamSize": 3, "numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}
P24 = {"mapFile": "tiny.map", "agentFile": "tiny24.agents", "taskFile": "tiny24.tasks",
       "teamSize": 2, "numTasksReveal": 1.5, "version": "2024 LoRR"}
SCEN = ("version 1\n0\ttiny.map\t10\t6\t1\t1\t8\t3\t5.0\n"
        "0\ttiny.map\t10\t6\t6\t1\t2\t2\t5.0\n")
ASCII = ("......I.............\n....................\n...D...D...D...D...I\n"
         "..DCD.DCD.DCD.DCD...\n...D...D...D...D....\n....................\n"
         "I...................\n")
KIVA = "5,6\n2\n2\n100\n......\n.r..e.\n..@@..\n.r..e.\n......\n"


def _grid():
    g = ["@I@@@", ".....", ".....", "@@E@@"]
    Y, X = len(g), len(g[0])
    out = ["Grid size (x, y)", f"{X},{Y}",
           "id,type,station,x,y,weight_to_NORTH,weight_to_WEST,weight_to_SOUTH,weight_to_EAST,"
           "weight_for_WAIT"]
    kinds = {"@": "Obstacle", ".": "Travel", "I": "Induct", "E": "Eject"}
    for x in range(X):
        for y in range(Y):
            ch = g[y][x]

            def ok(xx, yy):
                return 0 <= xx < X and 0 <= yy < Y and g[yy][xx] != "@"
            w = (["inf"] * 4 if ch == "@" else
                 ["1" if ok(x + dx, y + dy) else "inf"
                  for dx, dy in ((0, 1), (-1, 0), (0, -1), (1, 0))])
            out.append(",".join([str(x * Y + y), kinds[ch], {"I": "1", "E": "2"}.get(ch, "None"),
                                 str(x), str(y)] + w + ["1"]))
    return "\n".join(out) + "\n"


GRID = _grid()
CHUTES = """# small table
[plan]
name = "w1"
strategy = "round_robin"
max_recirculation = 2
overflow = ["OV1"]

[reject]
no_read = "R1"
unknown_destination = "R1"
max_recirculation = "R1"
no_chute_available = "R1"
not_sortable = "R1"
late = "R1"

[[chute]]
id = "C1"
capacity = 3
position = 10.0
side = "left"

[[chute]]
id = "C2"
kind = "destination"
capacity = 5
position = 12.0

[[chute]]
id = "C3"
position = 14.0

[[chute]]
id = "OV1"
kind = "overflow"
position = 16.0

[[chute]]
id = "R1"
kind = "reject"
capacity = 100
position = 18.0
"""
PLAN = "destination,chutes\n# comment\n01422,C1;C2\n02194,C2\n02734,C3;C1\n"
PLAN2 = "destination,chutes\n01422,C3\n02194,C2;C1\n"
EVENTS = """t,event,parcel,destination,recirculation,sortable,chute,plan
0.1,scan,P1,01422,0,1,,
0.2,discharged,,,,,C1,
0.3,scan,P2,,0,1,,
0.4,blocked,,,,,C2,
0.5,scan,P3,02194,1,1,,
0.6,full,,,,,C1,
0.7,container_changed,,,,,C1,
0.8,switch_plan,,,,,,plan2.csv
0.9,scan,P4,02194,3,0,,
1.0,open,,,,,C2,
"""
VOLUMES = "destination,volume\n01422,10\n02194,5.5\n# c\n02734,0\n"
SCENARIO = """[scenario]
name = "fuzz"
seed = 3
shift_hours = 0.05
interval_minutes = 1

[loop]
name = "L"
length_m = 60.0
speed_mps = 2.0
pitch_m = 0.8
scanner_m = 8.0
chutes = "chutes.toml"
plan = "plan.csv"
[[loop.induct]]
id = "A1"
position_m = 2.0
max_rate_per_hour = 4000

[[wave]]
name = "a"
plan = "plan2.csv"
start_h = 0.0
end_h = 0.05
rate_per_hour = 3000

[destinations]
mix = "csv"
volumes = "volumes.csv"
"""

FILES = {"tiny.map": MAP, "tiny.agents": AGENTS, "tiny.tasks": TASKS, "tiny24.agents": AGENTS24,
         "tiny24.tasks": TASKS24, "p23.json": json.dumps(P23, indent=4),
         "p24.json": json.dumps(P24, indent=4), "tiny.scen": SCEN, "floor.txt": ASCII,
         "kiva.map": KIVA, "tiny.grid": GRID, "chutes.toml": CHUTES, "plan.csv": PLAN,
         "plan2.csv": PLAN2, "events.csv": EVENTS, "volumes.csv": VOLUMES,
         "scen.toml": SCENARIO}


@pytest.fixture
def seeds(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


# -- loaders, each returning a comparable fingerprint of what it loaded ------------------------

def _fp_floor(f):
    return (f.height, f.width, f.cells.tobytes(), [(s.label, list(map(int, s.cells)))
                                                   for s in f.inducts + f.chutes],
            None if f.moves is None else f.moves.tobytes())


def _floor(d, name):
    from sorter.layout import load_floor
    return _fp_floor(load_floor(d / name))


def _scen(d, name):
    from sorter.layout import load_floor
    from sorter.layout.movingai import load_scen
    s = load_scen(d / name, load_floor(d / "tiny.map"))
    return (s.width, s.height, s.starts.tobytes(), s.goals.tobytes(), s.optimal_lengths.tobytes())


def _lorr(problem):
    def load(d, name):
        from sorter.layout.lorr import load_lorr_problem
        p = load_lorr_problem(d / problem)
        return (_fp_floor(p.floor), p.starts.tobytes(), p.tasks.tobytes(), p.team_size,
                None if p.task_offsets is None else p.task_offsets.tobytes(),
                p.num_tasks_reveal, p.strategy)
    return load


def _plan(d, name):
    from sorter.plan import load_plan
    p, c = load_plan(d / "plan.csv", d / "chutes.toml")
    return repr(p), repr(c)


def _scenario(d, name):
    from sorter.sim.scenario import load_scenario
    return repr(load_scenario(d / "scen.toml"))


def _events(d, name):
    from sorter import Sorter
    from sorter.replay import replay_events
    out = []
    r = replay_events(Sorter.from_files(d / "plan.csv", d / "chutes.toml"), d / "events.csv",
                      write=lambda *a: out.append(a))
    return repr(r), out


# (file to mutate, loader)
TARGETS = {
    "ascii": ("floor.txt", _floor),
    "movingai": ("tiny.map", _floor),
    "rhcr": ("tiny.grid", _floor),
    "kiva": ("kiva.map", _floor),
    "scen": ("tiny.scen", _scen),
    "lorr-json": ("p23.json", _lorr("p23.json")),
    "lorr-map": ("tiny.map", _lorr("p23.json")),
    "lorr-agents": ("tiny.agents", _lorr("p23.json")),
    "lorr-tasks": ("tiny.tasks", _lorr("p23.json")),
    "lorr24-json": ("p24.json", _lorr("p24.json")),
    "lorr24-tasks": ("tiny24.tasks", _lorr("p24.json")),
    "plan": ("plan.csv", _plan),
    "chutes": ("chutes.toml", _plan),
    "scenario": ("scen.toml", _scenario),
    "volumes": ("volumes.csv", _scenario),
    "events": ("events.csv", _events),
}


# -- bug class 1: other scripts' digits and '1_0' in the numbers of floor headers ------------
# int() reads "\u0666" (Arabic-Indic 6), "\uff16" (full-width 6) and "0_6" as 6: these headers
# loaded as if they were plain digits, while the cell lists of the same formats (agents, tasks,
# events) refuse them. No map file writes them: a mangled header is refused, naming its line.

ODD = ["\u0666", "\uff16", "0_6"]


def _swap(text, old, new):
    assert old in text
    return text.replace(old, new, 1)


HEADER_CASES = [
    # (file, old text, replacement with {v}, the line the error names)
    ("tiny.map", "height 6", "height {v}", 2),
    ("tiny.map", "width 10", "width 1{v}", 3),
    ("floor.txt", "......I", "type octile\nheight 7\nwidth 2{v}\nmap\n......I", 3),
    ("tiny.grid", "5,4", "5,{v}", 2),
    ("kiva.map", "5,6", "5,{v}", 1),
    ("kiva.map", "\n100\n", "\n1{v}\n", 4),
    ("tiny.scen", "\t10\t6\t1\t1\t8", "\t10\t{v}\t1\t1\t8", 2),
]


@pytest.mark.parametrize("v", ODD)
@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda c: f"{c[0]}:{c[3]}")
def test_floor_header_numbers_refuse_other_scripts_digits_and_underscores(seeds, case, v):
    name, old, new, line = case
    p = seeds / name
    p.write_text(_swap(p.read_text(), old, new.format(v=v)))
    loader = _scen if name.endswith(".scen") else _floor
    with pytest.raises(InputError) as e:
        loader(seeds, name)
    assert f"{name}:{line}:" in str(e.value)


@pytest.mark.parametrize("weight", ["\u0661", "1_0"])
def test_rhcr_weights_refuse_other_scripts_digits_and_underscores(seeds, weight):
    p = seeds / "tiny.grid"
    p.write_text(_swap(p.read_text(), "\n5,Travel,None,1,1,1,1,1,1,1",
                       f"\n5,Travel,None,1,1,1,1,1,1,{weight}"))
    with pytest.raises(InputError, match=r"tiny\.grid:9: field 'weight_for_WAIT'"):
        _floor(seeds, "tiny.grid")


@pytest.mark.parametrize("length", ["nan", "inf", "-1", "\u0663", "5_0"])
def test_scen_optimal_length_must_be_a_plain_length(seeds, length):
    """float() read 'nan', 'inf', '-1' and '\u0663' (3) as optimal lengths."""
    p = seeds / "tiny.scen"
    p.write_text(_swap(p.read_text(), "\t5.0\n", f"\t{length}\n"))
    with pytest.raises(InputError, match=r"tiny\.scen:2: field 'optimal_length'"):
        _scen(seeds, "tiny.scen")


@pytest.mark.parametrize("volume", ["\u0663", "1_000", "\uff11\uff10"])
def test_volumes_refuse_other_scripts_digits_and_underscores(seeds, volume):
    p = seeds / "volumes.csv"
    p.write_text(_swap(p.read_text(), "01422,10", f"01422,{volume}"))
    with pytest.raises(InputError, match=r"volumes\.csv:2: field 'volume'"):
        _scenario(seeds, "scen.toml")


def test_plain_ascii_header_numbers_still_load(seeds):
    """A sign and blanks around an ASCII number are fine (int() semantics otherwise kept)."""
    p = seeds / "tiny.map"
    p.write_text(_swap(p.read_text(), "height 6", "height +6"))
    assert _floor(seeds, "tiny.map")[:2] == (6, 10)
    g = seeds / "tiny.grid"
    g.write_text(_swap(g.read_text(), "5,4", " 5 , 4 "))
    assert _floor(seeds, "tiny.grid")[:2] == (4, 5)


# -- bug class 2: nesting thousands deep: RecursionError out of json / tomllib -----------------

DEEP = 100_000


@pytest.mark.parametrize("what", ["lorr-json", "chutes-toml", "scenario-toml", "sweep-toml",
                                  "lorr-json-value"])
def test_deeply_nested_json_and_toml_are_input_errors(tmp_path, what):
    """'[[[[...' 100,000 deep made json / tomllib raise RecursionError: a traceback from the
    CLI (`sorter run/mapf/sweep`) instead of one line naming the file."""
    from sorter.layout.lorr import load_lorr_problem
    from sorter.plan import load_chutes
    from sorter.sim.scenario import load_scenario
    from sorter.sweep import capacity_sweep
    if what.startswith("lorr-json"):
        p = tmp_path / "deep.json"
        body = "[" * DEEP + "]" * DEEP
        p.write_text(body if what == "lorr-json" else '{"mapFile": ' + body + "}")
        load = load_lorr_problem
    else:
        p = tmp_path / "deep.toml"
        p.write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
        load = {"chutes-toml": load_chutes, "scenario-toml": load_scenario,
                "sweep-toml": lambda q: capacity_sweep(q, {"wave.0.rate_per_hour": [1]},
                                                       seeds=1, n_workers=1)}[what]
    with pytest.raises(InputError, match="nested too deeply") as e:
        load(p)
    assert "deep." in str(e.value)


def test_deeply_nested_vary_value_is_an_input_error():
    from sorter.sweep import parse_values
    with pytest.raises(InputError, match="--vary.*nested too deeply"):
        parse_values("[" * DEEP)


@pytest.mark.parametrize("cmd", ["run", "sweep", "mapf"])
def test_cli_deeply_nested_file_is_one_line(tmp_path, capsys, cmd):
    from sorter.cli import main
    p = tmp_path / ("deep.json" if cmd == "mapf" else "deep.toml")
    p.write_text(("x = " if cmd != "mapf" else "") + "[" * DEEP + "]" * DEEP + "\n")
    argv = [cmd, str(p)] + (["--vary", "wave.0.rate_per_hour=1"] if cmd == "sweep" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sorter {cmd}: error: {p}")


# -- bug class 3: a LoRR numTasksReveal the loader took and the scheduler refused -------------

@pytest.mark.parametrize("reveal", [1e6, 1e18, 1e308, 10**30])
def test_lorr_huge_num_tasks_reveal_is_refused_at_load_naming_the_json(seeds, reveal):
    """numTasksReveal 1e18 loaded; `sorter mapf` then failed in the task scheduler with
    "field 'numTasksReveal': reveal=1e+18" -- no file, no line."""
    from sorter.layout.lorr import load_lorr_problem
    doc = dict(P24, numTasksReveal=reveal)
    (seeds / "p24.json").write_text(json.dumps(doc, indent=4))
    with pytest.raises(InputError, match=r"p24\.json:\d+: field 'numTasksReveal'"):
        load_lorr_problem(seeds / "p24.json")


def test_cli_lorr_huge_num_tasks_reveal_names_the_json(seeds, capsys):
    from sorter.cli import main
    (seeds / "p24.json").write_text(json.dumps(dict(P24, numTasksReveal=1e18,
                                                    taskAssignmentStrategy="greedy")))
    assert main(["mapf", str(seeds / "p24.json"), "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{seeds / 'p24.json'}:1: field 'numTasksReveal'" in err[0]


# -- bug class 4: capacity_sweep read a FIFO / device whole (hang, memory) ---------------------

def test_capacity_sweep_refuses_a_fifo_without_opening_it(tmp_path):
    """capacity_sweep(path) read the scenario with path.read_bytes(): on a FIFO with no writer
    it blocked forever (the CLI checked first; the Python API did not). A guard opens the FIFO
    for writing after a few seconds, so the old code fails this test instead of hanging."""
    from sorter.sweep import capacity_sweep
    fifo = tmp_path / "scenario.toml"
    os.mkfifo(fifo)
    done = threading.Event()

    def guard():                    # unblock a reader, should one be waiting
        stop = time.monotonic() + 60
        done.wait(3)
        while not done.is_set() and time.monotonic() < stop:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:         # ENXIO: nobody reads it
                time.sleep(0.2)
                continue
            os.close(fd)
            return
    t = threading.Thread(target=guard, daemon=True)
    t.start()
    try:
        with pytest.raises(InputError, match="not a regular file") as e:
            capacity_sweep(fifo, {"wave.0.rate_per_hour": [1]}, seeds=1, n_workers=1)
    finally:
        done.set()
        t.join(5)
    assert str(fifo) in str(e.value)


# -- bug class 5: `sorter loadgen --plan` read a plan's comment lines as destinations ------------

def test_loadgen_destinations_skip_comment_lines_as_the_plan_loader_does(tmp_path):
    """load_destinations sent '# comment' rows as destination codes, and refused a plan with
    comment lines before its header (which load_plan accepts)."""
    from sorter.plan import load_plan_routes
    from sorter.service.loadgen import load_destinations
    p = tmp_path / "plan.csv"
    p.write_text("# wave 1\n\ndestination,chutes\n01422,C1;C2\n# closed: 02000,C9\n02194,C2\n")
    assert load_destinations(p) == list(load_plan_routes(p)) == ["01422", "02194"]
    p.write_text("# wave 1\ndest,chutes\n01422,C1\n")
    with pytest.raises(InputError, match=r"plan\.csv:2: field 'header'"):
        load_destinations(p)


# -- editor artefacts load as the clean file ---------------------------------------------------

EDITS = {
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "bom": lambda b: b"\xef\xbb\xbf" + b,
    "bom+crlf": lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"),
    "trailing-blanks": lambda b: b"\n".join(ln + b" \t" if ln.strip() else ln
                                           for ln in b.split(b"\n")),
    "no-final-newline": lambda b: b.rstrip(b"\n"),
    "blank-lines-at-end": lambda b: b + b"\n\n",
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("target", list(TARGETS))
def test_editor_artefacts_load_as_the_clean_file(seeds, target, edit):
    name, load = TARGETS[target]
    want = load(seeds, name)
    p = seeds / name
    p.write_bytes(EDITS[edit](p.read_bytes()))
    assert load(seeds, name) == want


# -- a seeded sweep of every mutator over every format -----------------------------------------

NUMBERS = ["99999999999999999999999", "-1", "1.5", "1e3", "nan", "inf", "", "\u0663", "1_0",
           "1" * 5000, "0", "2147483648", "\uff11"]


def _mutants(data, rng, n):
    lines = data.split(b"\n")
    yield b""
    yield b"\x00" * 10
    yield bytes(range(256))
    yield data[:len(data) // 2] + b"\xff" + data[len(data) // 2:]
    yield data[:len(data) // 2] + b"\x00" + data[len(data) // 2:]
    yield data.replace(b"\n", b"\r")
    yield data + b"9" * 200_000 + b"\n"
    text = data.decode()
    nums = list(re.finditer(r"-?\d+(\.\d+)?", text))
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            yield data[:rng.randrange(len(data))]
        elif r < 0.3:
            i = rng.randrange(len(lines))
            yield b"\n".join(lines[:i] + lines[i + 1:])
        elif r < 0.4:
            i = rng.randrange(len(lines))
            yield b"\n".join(lines[:i + 1] + lines[i:])
        elif r < 0.5:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            m = list(lines)
            m[i], m[j] = m[j], m[i]
            yield b"\n".join(m)
        elif r < 0.75 and nums:
            m = rng.choice(nums)
            yield (text[:m.start()] + rng.choice(NUMBERS) + text[m.end():]).encode()
        else:
            b = bytearray(data)
            for _ in range(rng.choice([1, 2, 3])):
                k = rng.randrange(len(b))
                b[k] = rng.choice(b".@#ESIDCr e,;=\"'[]{}:-0123456789\t\x00\xff\xc3")
            yield bytes(b)


@pytest.mark.parametrize("target", list(TARGETS))
def test_seeded_mutants_fail_cleanly_naming_the_file(seeds, target):
    """Every mutant either loads or raises ValueError / TypeError naming the mutated file (or
    another file of the set it refers to): never another exception."""
    name, load = TARGETS[target]
    data = (seeds / name).read_bytes()
    rng = random.Random(f"qa15-{target}")
    names = set(FILES) | {str(seeds)}
    for k, b in enumerate(_mutants(data, rng, 40)):
        (seeds / name).write_bytes(b)
        try:
            load(seeds, name)
        except (ValueError, TypeError) as e:
            msg = str(e)
            assert any(n in msg for n in names), (target, k, b[:200], msg)
            assert "\n" not in msg, (target, k, msg)
