"""QA session 12 (fresh eyes, as an outside checker): the chute engine with odd values from an
embedding WCS, `sorter run` outputs compared byte for byte, KPIs that must stay in range on
shift lengths nobody tried, and `sorter sweep` range errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sorter import Sorter
from sorter.cli import main
from sorter.errors import InputError
from sorter.plan import Chute, SortPlan
from sorter.resources import seed_path
from sorter.sim.kpis import compute_kpis
from sorter.sim.loop import simulate
from sorter.sim.scenario import load_scenario
from sorter.sweep import parse_values

SMALL = seed_path("scenarios/small.toml")
REASONS6 = ("no_read", "unknown_destination", "max_recirculation", "no_chute_available",
            "not_sortable", "late")


def _engine(strategy="fill_first"):
    chutes = [Chute("C1", "destination", 2), Chute("C2", "destination", 2),
              Chute("OV1", "overflow", 5), Chute("R1", "reject", 100)]
    plan = SortPlan(routes={"A": ("C1", "C2"), "B": ("C2",)}, reject={r: "R1" for r in REASONS6},
                    overflow=("OV1",), strategy=strategy, max_recirculation=2)
    return Sorter(plan, chutes)


def _small_scenario(tmp_path, **head):
    """small.toml (its chutes are generated: no relative paths) with [scenario] values and the
    one wave's end replaced."""
    text = SMALL.read_text(encoding="utf-8")
    for key, value in head.items():
        lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln
                 for ln in text.splitlines()]
        text = "\n".join(lines) + "\n"
    if "shift_hours" in head:
        text = text.replace("end_h = 0.5", f"end_h = {head['shift_hours']}")
    p = tmp_path / "sc.toml"
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------- the engine

class _HashRaises:
    def __hash__(self):
        raise ValueError("no hash for me")


class _EqRaises(str):
    """Hashes as the plan's code "A" but cannot be compared with it."""
    __hash__ = str.__hash__

    def __eq__(self, other):
        raise RuntimeError("no comparing")


def test_assign_never_raises_on_objects_whose_hash_or_compare_fails():
    s = _engine()
    for junk in (_HashRaises(), _EqRaises("A")):
        d = s.assign(junk)
        assert d.reason == "unknown_destination" and d.chute == "R1"
    ids = s.destination_ids([_HashRaises(), _EqRaises("A"), "A"])
    assert ids.tolist()[:2] == [-1, -1] and ids[2] >= 0
    assert s.counters()["by_reason"]["unknown_destination"] == 2


FLAGS = [(True, True), (False, False), (1, True), (0, False), (np.bool_(False), False),
         (np.int64(0), False), (0.0, False), (float("nan"), True), (None, False), ("", True),
         ("1", True), ("0", False), (" 0 ", False), ("false", False), ("False", False),
         ("no", False), ("yes", True), (b"0", False), (b"1", True), (np.str_("0"), False)]


@pytest.mark.parametrize("value, sortable", FLAGS, ids=[repr(v) for v, _ in FLAGS])
def test_sortable_flag_reads_text_as_the_files_do_and_agrees_with_assign_many(value, sortable):
    """The engine reads a recirculation count from text ("2" is 2): a sortable flag given as
    text must read as the files and telegrams write it ("0" not sortable, empty = 1; other
    objects by their truth value, None not sortable as before), and `assign_many`
    (documented "same rules") must read each element as `assign` does."""
    want = "ok" if sortable else "not_sortable"
    assert _engine().assign("A", 0, value).reason == want
    s = _engine()
    ids = s.destination_ids(["A", "A"])
    sv = np.empty(2, dtype=object)
    sv[:] = [value, True]
    _, reasons = s.assign_many(ids, 0, sv)
    assert reasons[0] == (0 if sortable else 6) and reasons[1] == 0


def test_assign_many_reads_text_arrays_as_assign_does():
    s = _engine()
    ids = s.destination_ids(["A"] * 4)
    rc_text = ["0", "3", "", "junk"]
    sv_text = ["1", "1", "0", ""]
    want = [tuple(_engine().assign("A", r, f)) for r, f in zip(rc_text, sv_text)]
    for rc, sv in ((np.array(rc_text), np.array(sv_text)),
                   (np.array(rc_text, dtype=object), np.array(sv_text, dtype=object)),
                   (np.array([0, None, 3.0, "2"], dtype=object), None)):
        e = _engine()
        chutes, reasons = e.assign_many(ids, rc, sv)
        if sv is None:
            want_here = [tuple(_engine().assign("A", r)) for r in rc.tolist()]
        else:
            want_here = want
        from sorter.constants import REASONS
        got = [(e.chute_ids[c], REASONS[r]) for c, r in zip(chutes, reasons)]
        assert got == want_here


# --------------------------------------------------------------------------- sorter run

def test_same_seed_gives_byte_identical_kpis_json_report_and_json(tmp_path, capsys):
    """`sorter run --seed N` twice: every file of --out and the --json line are the same
    bytes (the wall-clock time of the simulation is not a KPI of the shift)."""
    sc = _small_scenario(tmp_path, shift_hours=0.25)
    outs, lines = [], []
    for i in range(2):
        out = tmp_path / f"o{i}"
        assert main(["run", str(sc), "--seed", "5", "--out", str(out), "--json"]) == 0
        lines.append(capsys.readouterr().out)
        outs.append(out)
    assert lines[0] == lines[1]
    k = json.loads(lines[0])
    assert k["seed"] == 5 and k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    names = sorted(p.name for p in outs[0].iterdir())
    assert {"kpis.json", "report.html", "parcels.parquet", "timeseries.csv"} <= set(names)
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    # the KPIs file still holds every KPI of --json
    assert set(json.loads((outs[0] / "kpis.json").read_text())) >= set(k)


@pytest.mark.parametrize("hours, interval", [(0.35, 7), (0.4, 5), (1.1, 15)])
def test_peak_15_min_is_never_below_the_shift_mean(tmp_path, hours, interval):
    """On a shift that is not a whole number of 15-minute slots the loop's start-up (an
    empty loop for the first lap) sits in the first slot and the steady tail in a short last
    slot, left out of the peak: the peak 15 minutes came out below the shift's mean rate
    (21 min: 4,476/h against 4,646/h). The last 15 minutes of the shift count too."""
    sc = load_scenario(_small_scenario(tmp_path, shift_hours=hours,
                                       interval_minutes=interval))
    res = simulate(sc, seed=11)
    k = compute_kpis(res)
    cols = res.parcel_columns()
    t = cols["discharge_t"][cols["status"] == "sorted"]
    shift_s = hours * 3600.0
    # recount: the 15-minute slots from the shift's start, and the shift's last 15 minutes
    windows = [(a, a + 900.0) for a in np.arange(0.0, shift_s - 900.0 + 1e-6, 900.0)]
    windows.append((shift_s - 900.0, shift_s))
    best = max(int(np.sum((t >= a) & (t < b))) for a, b in windows)
    assert k["peak_15min_sorted_per_hour"] == pytest.approx(best * 4.0)
    assert k["peak_15min_sorted_per_hour"] >= k["sorted_per_hour"]


# --------------------------------------------------------------------------- sweep

@pytest.mark.parametrize("spec", ["0:1e9:1", "1:2:0.0000001"])
def test_sweep_range_with_too_many_points_says_so(spec):
    with pytest.raises(InputError) as e:
        parse_values(spec, key="wave.0.rate_per_hour")
    assert "100,000" in str(e.value) and "wave.0.rate_per_hour" in str(e.value)
    assert "\n" not in str(e.value)


def test_sweep_range_still_expands_inclusive():
    assert parse_values("3000:6000:1500") == [3000, 4500, 6000]
    assert parse_values("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert math.isclose(parse_values("0.1:0.3:0.1")[-1], 0.3)


def test_a_plan_naming_int_chutes_as_text_keeps_the_tables_labels():
    """A chute table with int ids and a plan (built in code, as a CSV reads them) naming them
    as text: the engine's plan, decisions and saved state all use the table's own labels, as
    a plan read from files or switched in does (``sort_plan.reject[reason]`` is the chute a
    reject decision names)."""
    chutes = [Chute(1, "destination", 2), Chute(2, "destination", 3), Chute(7, "overflow", 4),
              Chute(99, "reject", 5)]
    plan = SortPlan(routes={"A": ["1", "2"], "B": [2]}, reject={r: "99" for r in REASONS6},
                    overflow=["7"], strategy="fill_first", max_recirculation=1)
    s = Sorter(plan, chutes)
    d = s.assign("X")
    assert tuple(d) == (99, "unknown_destination")
    assert s.sort_plan.reject["unknown_destination"] == d.chute
    assert s.sort_plan.routes == {"A": (1, 2), "B": (2,)} and s.sort_plan.overflow == (7,)
    st = s.state_dict()
    assert st["plan"]["routes"] == {"A": [1, 2], "B": [2]}
    assert set(st["plan"]["reject"].values()) == {99} and st["plan"]["overflow"] == [7]
    # a plan switched in with text labels reads the same way
    s.switch_plan(SortPlan(routes={"A": ["2"]}, reject={r: "99" for r in REASONS6},
                           overflow=["7"]))
    assert s.sort_plan.routes == {"A": (2,)} and s.sort_plan.reject["late"] == 99
    assert Sorter.from_state(json.loads(json.dumps(s.state_dict()))).state_dict() == \
        s.state_dict()


# --------------------------------------------------------------------------- scenario errors

def _scenario_error(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_scenario(p)
    return e.value, text.splitlines()


@pytest.mark.parametrize("old, new, field, key", [
    ("no_read_rate = 0.02", "no_read_rate = 1.5", "scan.no_read_rate", "no_read_rate = 1.5"),
    ("speed_mps = 2.0", "speed_mps = 0", "loop.speed_mps", "speed_mps = 0"),
    ("seed = 11", "seed = -1", "scenario.seed", "seed = -1"),
    ("rate_per_hour = 6500", "rate_per_hour = -5", "wave[0].rate_per_hour", "rate_per_hour = -5"),
    ("low = 40, high = 80", "low = 80, high = 40", "containers.change_time_s.low",
     "change_time_s = "),
    ("mix = \"split\"", "mix = \"pareto\"", "destinations.mix", "mix = \"pareto\""),
    ("[scan]", "[scan]\nbogus = 1", "scan.bogus", "bogus = 1"),
])
def test_scenario_value_errors_name_the_line_of_the_key(tmp_path, old, new, field, key):
    """A bad value in a scenario file: the one-line error names file, LINE, field and the
    expected form, as the plan and chute loaders do (only TOML syntax errors had a line)."""
    text = SMALL.read_text(encoding="utf-8")
    assert text.count(old) == 1
    err, lines = _scenario_error(tmp_path, text.replace(old, new))
    assert err.field == field and err.line is not None, str(err)
    assert lines[err.line - 1].strip().startswith(key), (err.line, lines[err.line - 1])
    assert str(err).startswith(f"{tmp_path / 'bad.toml'}:{err.line}: field '{field}'")
    assert "\n" not in str(err) and "expected" in str(err)


def test_scenario_errors_in_a_later_wave_and_a_blockage_name_their_own_line(tmp_path):
    text = SMALL.read_text(encoding="utf-8").replace(
        "end_h = 0.5\nrate_per_hour = 6500",
        "end_h = 0.25\nrate_per_hour = 6500\n\n[[wave]]\nname = \"b\"\nstart_h = 0.25\n"
        "end_h = 0.5\nrate_per_hour = 6500\narrivals = \"trucks\"")
    text += "\n[[blockages.scheduled]]\nchute = \"C001\"\nstart_h = 0.1\nduration_s = 60\n"
    err, lines = _scenario_error(tmp_path, text)
    assert err.field == "wave[1].arrivals" and lines[err.line - 1] == 'arrivals = "trucks"'
    text = text.replace('arrivals = "trucks"', "").replace('chute = "C001"', 'chute = "C999"')
    err, lines = _scenario_error(tmp_path, text)
    assert err.field.startswith("blockages.scheduled") and lines[err.line - 1] == 'chute = "C999"'


def test_scenario_error_of_a_key_the_file_does_not_write_names_its_table(tmp_path):
    """wave 0 given by clock times but ending before it starts: the field is the wave's
    end_h, a key the file does not write; the line is the [[wave]] header's."""
    text = SMALL.read_text(encoding="utf-8").replace("start_h = 0.0\nend_h = 0.5",
                                                     "start_h = 0.4\nend_h = 0.2")
    err, lines = _scenario_error(tmp_path, text)
    assert err.field.startswith("wave[0]") and err.line is not None
    assert lines[err.line - 1].strip() in ("[[wave]]", "end_h = 0.2", "start_h = 0.4")


@pytest.mark.parametrize("name", ["", "   ", 5, None])
def test_a_plan_name_is_checked_in_code_as_in_the_file(tmp_path, name):
    """`name = ""` in a chute TOML is refused (bad plan name); the same name given as an
    override or in a SortPlan built in code went through, to state_dict and the journal."""
    with pytest.raises(InputError) as e:
        Sorter.from_files(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"),
                          name=name) if name is not None else \
            Sorter(SortPlan(routes={"A": ("C1",)}, reject={r: "R1" for r in REASONS6},
                            name=name), [Chute("C1"), Chute("R1", "reject")])
    assert "name" in e.value.field and "\n" not in str(e.value)
