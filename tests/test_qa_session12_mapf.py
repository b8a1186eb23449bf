"""QA session 12: a fresh-eyes pass over the robot floor (issue 4) on inputs nobody had tried.

Each test pins one problem the pass found (input -> what went wrong before the fix):

* the floor parsers given something other than a ``str`` (bytes read in binary mode, a list of
  lines) failed deep inside with ``AttributeError: 'list' object has no attribute 'split'`` or
  ``TypeError: a bytes-like object is required, not 'str'``, naming no field;
* the validator turned a ``uint64`` cell id beyond int64 into a negative one and reported a cell
  that is not in the plan; ragged path lists and a floor that is not a ``Floor`` (a file name)
  raised NumPy's / Python's own errors instead of an InputError naming the field;
* ``--seconds-per-step inf`` was accepted and every per-hour KPI came out 0; ``--repair-steps
  0`` and ``-1`` were refused with different bounds (">= 1" and ">= 0");
* ``draw.animate(..., dpi=0)`` failed with an IndexError from inside matplotlib;
* starts drawn for an errand run (``--tasks FILE`` on a map, ``--robots`` beyond a LoRR
  problem's agents file, ``make_run(errands=...)``) could land in a walled-off pocket: the run was
  then refused, blaming a start the user never gave (most seeds on a map with a pocket);
* an empty file name (``--out ""``, ``--tasks ""``, FLOOR ``""``: a shell variable left unset)
  was read as ``.`` or as no option at all (``--out ""`` ran and wrote nothing).
"""
import numpy as np
import pytest

from sorter.agv.floor_sim import FloorSimOptions
from sorter.agv.validate import validate
from sorter.cli import main
from sorter.errors import InputError
from sorter.layout import parse_ascii
from sorter.layout.movingai import parse_movingai_map
from sorter.layout.rhcr import parse_kiva_map, parse_rhcr_grid

FLOOR = "I....\n.....\n..D..\n..C..\n"


from test_qa_mapf_session9 import _err  # noqa: E402  (CLI user error: one line, exit 2)


# ---------------------------------------------------------------- parsers take str only
@pytest.mark.parametrize("parse", [parse_ascii, parse_movingai_map, parse_rhcr_grid,
                                   parse_kiva_map])
@pytest.mark.parametrize("text", [FLOOR.encode(), FLOOR.splitlines(), None, 5])
def test_floor_parsers_refuse_text_that_is_not_a_str_by_name(parse, text):
    with pytest.raises(InputError) as e:
        parse(text)
    assert e.value.field == "text" and "not str" in str(e.value)


def test_floor_parsers_still_take_str():
    assert parse_ascii(FLOOR).free_cells.size == 19
    f = parse_movingai_map("type octile\nheight 1\nwidth 2\nmap\n.@\n")
    assert (f.height, f.width, f.free_cells.tolist()) == (1, 2, [0])


# ---------------------------------------------------------------- validator inputs
def test_validator_names_a_uint64_id_beyond_int64_as_given_not_wrapped():
    f = parse_ascii(FLOOR)
    big = 2**63 + 1
    with pytest.raises(InputError) as e:
        validate(f, np.array([0], np.uint64), np.array([[0], [big]], np.uint64))
    assert e.value.field == "paths" and str(big) in str(e.value)
    # uint64 ids inside int64 still validate (an off-grid one is a violation, as given)
    v = validate(f, np.array([0], np.uint64), np.array([[0], [2**40]], np.uint64))
    assert v.kind == "off_grid" and v.cells == (2**40,)
    assert validate(f, np.array([0], np.uint64), np.array([[0], [1]], np.uint64)) is None


def test_validator_ragged_paths_and_a_non_floor_are_input_errors_naming_the_field():
    f = parse_ascii(FLOOR)
    with pytest.raises(InputError) as e:
        validate(f, [0, 1], [[0, 1], [5]])
    assert e.value.field == "paths"
    for bad in ("floor.txt", None):
        with pytest.raises(InputError) as e:
            validate(bad, [0], [[0], [1]])
        assert e.value.field == "floor" and "load_floor" in str(e.value)


# ---------------------------------------------------------------- chute-engine options
def test_seconds_per_step_must_be_finite(tmp_path, capsys):
    with pytest.raises(InputError) as e:
        FloorSimOptions(seconds_per_step=float("inf")).validate()
    assert e.value.field == "seconds_per_step"
    FloorSimOptions(seconds_per_step=0.5).validate()
    p = tmp_path / "f.txt"
    p.write_text("I......\n.......\n.DC.CD.\n.......\n")
    line = _err(capsys, [str(p), "--robots", "2", "--steps", "3", "--scenario", "sorting",
                         "--seconds-per-step", "inf"])
    assert "seconds_per_step" in line and "finite" in line


@pytest.mark.parametrize("k", [0, -1])
def test_repair_steps_below_one_name_the_same_bound(k):
    with pytest.raises(InputError) as e:
        FloorSimOptions(repair_steps=k).validate()
    assert e.value.field == "repair_steps" and ">= 1" in str(e.value)


# ---------------------------------------------------------------- drawing options
@pytest.mark.parametrize("dpi", [0, -1, float("nan"), True, "80"])
def test_animate_and_heatmap_refuse_a_bad_dpi_by_name(tmp_path, dpi):
    pytest.importorskip("matplotlib")
    from sorter.layout import draw
    f = parse_ascii(FLOOR)
    pos = np.array([[0, 1], [5, 2]])
    with pytest.raises(InputError) as e:
        draw.animate(f, pos, 0, 2, tmp_path / "a.gif", dpi=dpi)       # was: IndexError
    assert e.value.field == "dpi"
    with pytest.raises(InputError) as e:
        draw.congestion_heatmap(f, pos, tmp_path / "h.png", dpi=dpi)
    assert e.value.field == "dpi"
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "h.png").exists()


# ---------------------------------------------------------------- drawn starts and errands
# a map walled into a main part (18 free cells) and a pocket (the right column, 4 cells); the
# errands (cells 2, 3, 4) lie in the main part
POCKET_MAP = "type octile\nheight 4\nwidth 7\nmap\n.....@.\n.@@..@.\n.....@.\n.....@.\n"
POCKET_LORR = "type octile\nheight 4\nwidth 7\nmap\nE....@.\n.@@S.@.\n.....@.\n.....@.\n"
MAIN = np.array([c for c in range(28) if c % 7 < 5 and c not in (8, 9)])


def _pocket_files(tmp_path):
    (tmp_path / "plain.map").write_text(POCKET_MAP)
    (tmp_path / "m.map").write_text(POCKET_LORR)
    (tmp_path / "t.tasks").write_text("3\n2\n3\n4\n")
    (tmp_path / "a.agents").write_text("2\n0\n1\n")
    (tmp_path / "p.json").write_text(
        '{"mapFile": "m.map", "agentFile": "a.agents", "teamSize": 2, "taskFile": "t.tasks", '
        '"numTasksReveal": 1, "taskAssignmentStrategy": "roundrobin"}')


@pytest.mark.parametrize("seed", range(6))
def test_drawn_starts_of_an_errand_run_stay_where_the_errands_are(tmp_path, capsys, seed):
    # was: most seeds refused the run, blaming a start the CLI itself had drawn in the pocket
    # ("t.tasks: robot 5 starts on cell 27 ..., cut off"), for --tasks on a map and for
    # --robots beyond a LoRR problem's agents file alike
    _pocket_files(tmp_path)
    for argv, name in (([str(tmp_path / "plain.map"), "--tasks", str(tmp_path / "t.tasks")],
                        "plain.map"),
                       ([str(tmp_path / "p.json")], "m.map")):
        out = tmp_path / f"o{name}"
        assert main(["mapf"] + argv + ["--robots", "6", "--steps", "8", "--seed", str(seed),
                                       "--out", str(out)]) == 0, capsys.readouterr().err
        capsys.readouterr()
        pos = np.load(out / "paths.npz")["positions"]
        assert np.isin(pos[0], MAIN).all() and np.unique(pos[0]).size == 6
        if name == "m.map":
            assert pos[0, :2].tolist() == [0, 1]          # the agents file's starts kept


def test_make_run_draws_errand_run_starts_in_the_errands_part():
    from sorter.agv.lifelong import make_run
    f = parse_movingai_map(POCKET_MAP)
    for seed in range(8):
        planner, _ = make_run(f, 10, None, seed=seed, errands=np.array([2, 3, 4]))
        assert np.isin(planner.positions, MAIN).all()
    # a floor in one part draws as before (same starts for a seed with or without errands)
    g = parse_ascii(FLOOR)
    a, _ = make_run(g, 5, None, seed=3, errands=np.array([12]))
    b, _ = make_run(g, 5, None, seed=3, tasks="random")
    assert a.positions.tolist() == b.positions.tolist()
    # errands off the grid are still the planner's InputError, not an IndexError here
    with pytest.raises(InputError):
        p, s = make_run(f, 3, None, seed=0, errands=np.array([9999]))
        p.step(s.start(p))


def test_more_robots_than_the_errands_part_holds_is_one_clear_line(tmp_path, capsys):
    _pocket_files(tmp_path)
    line = _err(capsys, [str(tmp_path / "plain.map"), "--tasks", str(tmp_path / "t.tasks"),
                         "--robots", "19", "--steps", "3"])
    assert "'robots'" in line and "has 18 free cells" in line and "at most 18" in line
    line = _err(capsys, [str(tmp_path / "p.json"), "--robots", "19", "--steps", "3"])
    assert "'robots'" in line and "lists 2" in line and "at most 18" in line
    assert main(["mapf", str(tmp_path / "p.json"), "--robots", "18", "--steps", "3"]) == 0


# ---------------------------------------------------------------- empty file names
@pytest.mark.parametrize("argv, field", [
    ([""], "floor"),                                   # was: "'.': is a directory"
    (["F", "--out", ""], "out"),                       # was: ran, wrote nothing, exit 0
    (["F", "--out", "  "], "out"),
    (["F", "--tasks", ""], "tasks"),                   # was: ran sorting tasks instead
    (["F", "--agents", ""], "agents"),
])
def test_empty_file_names_are_refused_not_read_as_dot_or_no_option(tmp_path, capsys, argv, field):
    f = tmp_path / "f.txt"
    f.write_text(FLOOR)
    argv = [str(f) if a == "F" else a for a in argv]
    line = _err(capsys, argv + ["--robots", "2", "--steps", "2"])
    assert f"'{field}'" in line and "empty" in line
    assert not any(tmp_path.glob("**/paths.npz"))
