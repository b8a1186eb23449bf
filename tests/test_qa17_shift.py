"""QA session 17 (qa-shift): shift scenarios a planner writes from scratch, checked against an
independent recount; regressions of the bugs found.

Scenarios new to the suite: a 900 m loop at 3.2 m/s with a dead (zero-rate) wave between a
Poisson wave and a truck wave, a zipf 2.5 skew and max_recirculation 2; a custom chute table
with an induct at the scanner's own slot, a plan switch to a plan with a new code, a volumes
CSV with a code no plan serves and a zero volume, per-induct rates with a zero; every parcel
refused (no-read 1.0) on a 10-carrier loop over 72 s; a shift with no parcels at all. For each
the KPIs are recounted here from the parcel rows (``ShiftResult.parcel_columns``), never
through ``sorter.sim.kpis``.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sorter.errors import InputError
from sorter.layout.loop import LoopSorter
from sorter.sim import simulate
from sorter.sim.kpis import compute_kpis
from sorter.sim.scenario import load_scenario

REJECTS = ("no_read", "unknown_destination", "max_recirculation", "no_chute_available",
           "not_sortable", "late")


def _loop(length=120.0, speed=2.0, pitch=0.8, n_chutes=40, n_overflow=2, n_reject=2,
          capacity=12, n_inducts=3, induct_rate=2500, n_dest=30):
    return (f'[loop]\nname = "L"\nlength_m = {length}\nspeed_mps = {speed}\npitch_m = {pitch}\n'
            f"n_chutes = {n_chutes}\nn_overflow = {n_overflow}\nn_reject = {n_reject}\n"
            f"capacity = {capacity}\nn_inducts = {n_inducts}\ninduct_rate = {induct_rate}\n"
            f"n_destinations = {n_dest}\n")


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


LONG_FAST = """\
[scenario]
name = "long fast loop"
seed = 101
shift_hours = 1.2
interval_minutes = 20
max_recirculation = 2
{loop}
[[wave]]
name = "ramp"
start_h = 0.0
end_h = 0.3
rate_per_hour = 4000
[[wave]]
name = "dead"
start_h = 0.3
end_h = 0.5
rate_per_hour = 0
[[wave]]
name = "trucks"
start_h = 0.5
end_h = 1.2
rate_per_hour = 14000
arrivals = "batched"
batch_size = 400
unload_per_hour = 3000
[destinations]
mix = "zipf"
zipf_s = 2.5
unknown_rate = 0.03
[scan]
no_read_rate = 0.0
not_sortable_rate = 0.0
[containers]
change_time_s = {{ dist = "triangular", low = 20, mode = 30, high = 200 }}
reaction_time_s = {{ dist = "normal", mean = 40, sd = 30 }}
[blockages]
random_per_hour = 10
duration_s = {{ dist = "exponential", mean = 200 }}
[[blockages.scheduled]]
chute = "C001"
start_h = 0.6
duration_s = 3000
"""


def _recount(res):
    """The planner's KPIs from the parcel rows alone."""
    c = res.parcel_columns()
    st, rec, reason = c["status"], c["recirculations"], c["reason"]
    done = (st == "sorted") | (st == "rejected")
    h = res.scenario.shift_hours
    t_ic = (c["discharge_t"] - c["induct_t"])[done]
    n_done = int(done.sum())
    return {
        "offered": len(st), "inducted": int(np.sum(st != "queued")),
        "sorted": int(np.sum(st == "sorted")), "rejected": int(np.sum(st == "rejected")),
        "on_loop_at_end": int(np.sum(st == "on_loop")),
        "sorted_per_hour": np.sum(st == "sorted") / h,
        "recirculation_pct": 100.0 * np.sum(done & (rec > 0)) / n_done if n_done else 0.0,
        "reject_pct": 100.0 * np.sum(st == "rejected") / n_done if n_done else 0.0,
        "induct_to_chute_s_p95": float(np.percentile(t_ic, 95)) if n_done else 0.0,
        "rejects_by_reason": {r: int(np.sum((st == "rejected") & (reason == r)))
                              for r in REJECTS},
    }, c


def _check(res, k):
    want, c = _recount(res)
    for key, v in want.items():
        if isinstance(v, dict):
            assert k[key] == v, key
        else:
            assert math.isclose(k[key], v, rel_tol=1e-9, abs_tol=1e-9), (key, k[key], v)
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    for key in ("carrier_fill_pct", "induct_blocking_pct", "induct_starvation_pct",
                "recirculation_pct", "reject_pct", "first_pass_sort_pct"):
        assert 0.0 <= k[key] <= 100.0, key
    # a parcel spends between `recirculations` and `recirculations + 2` laps on the loop
    done = (c["status"] == "sorted") | (c["status"] == "rejected")
    lap = res.scenario.loops[0].layout.lap_time_s
    t_ic = (c["discharge_t"] - c["induct_t"])[done]
    r = c["recirculations"][done]
    assert np.all(t_ic >= r * lap - 1e-6) and np.all(t_ic <= (r + 2) * lap + 1e-6)
    # never more parcels on the loop than carriers
    t = np.concatenate([c["induct_t"][c["status"] != "queued"], c["discharge_t"][done]])
    s = np.concatenate([np.ones(int(np.sum(c["status"] != "queued"))), -np.ones(int(done.sum()))])
    o = np.lexsort((s, t))
    assert (np.cumsum(s[o]).max() if len(o) else 0) <= res.scenario.loops[0].layout.n_carriers


def test_long_fast_loop_with_a_dead_wave_and_trucks_recounts(tmp_path):
    path = _write(tmp_path, LONG_FAST.format(loop=_loop(900.0, 3.2, 1.1, 300, 4, 3, 25, 7,
                                                        3000, 250)))
    res = simulate(path, seed=9)
    k = compute_kpis(res)
    _check(res, k)
    assert k["rejects_by_reason"]["no_read"] == 0 and k["rejects_by_reason"]["not_sortable"] == 0
    dead = k["per_wave"][1]
    assert dead["offered_per_hour"] == 0.0 and dead["offered_rate_per_hour"] == 0.0
    again = compute_kpis(simulate(path, seed=9))
    other = compute_kpis(simulate(path, seed=10))
    k.pop("wall_s"), again.pop("wall_s"), other.pop("wall_s")
    assert json.dumps(k) == json.dumps(again)
    assert k["offered"] != other["offered"] or k["sorted"] != other["sorted"]


def test_all_no_reads_on_a_ten_carrier_loop_over_72_seconds(tmp_path):
    path = _write(tmp_path, '[scenario]\nname = "tiny"\nseed = 5\nshift_hours = 0.02\n'
                  "interval_minutes = 1\n" + _loop(30.0, 0.6, 3.0, 5, 1, 1, 2, 1, 500, 3)
                  + '[[wave]]\nname = "w"\nstart_h = 0\nend_h = 0.02\nrate_per_hour = 3000\n'
                  "[scan]\nno_read_rate = 1.0\nnot_sortable_rate = 0.0\n")
    res = simulate(path, seed=9)
    k = compute_kpis(res)
    _check(res, k)
    assert k["sorted"] == 0 and k["rejected"] == k["rejects_by_reason"]["no_read"] > 0
    # one parcel per 7.2 s cycle of the induct at most
    assert k["inducted"] <= 0.02 * 500 + 1


def test_a_shift_with_no_parcels_reads_zero_everywhere(tmp_path):
    path = _write(tmp_path, '[scenario]\nname = "nothing"\nshift_hours = 1\n'
                  + _loop(50.0, 1.0, 1.0, 10, 1, 1, 5, 2, 2000, 5)
                  + '[[wave]]\nname = "none"\nstart_h = 0\nend_h = 1\nrate_per_hour = 0\n')
    k = compute_kpis(simulate(path))
    assert k["offered"] == k["inducted"] == k["sorted"] == 0
    assert k["induct_starvation_pct"] == 100.0 and k["carrier_fill_pct"] == 0.0
    assert all(v == 0 for v in k["rejects_by_reason"].values())
    json.dumps(k, allow_nan=False)


# ---------------------------------------------------------------------------- regressions

@pytest.mark.parametrize("key", ["start_h", "end_h"])
def test_wave_hours_past_a_week_name_the_bound(tmp_path, key):
    """Was: ``bad value 200 (expected hours from the shift's start, >= 0)``: the expected
    form held for the refused value."""
    times = {"start_h": 0, "end_h": 1}
    times[key] = 200
    path = _write(tmp_path, '[scenario]\nshift_hours = 1\n' + _loop()
                  + f'[[wave]]\nstart_h = {times["start_h"]}\nend_h = {times["end_h"]}\n'
                  "rate_per_hour = 10\n")
    with pytest.raises(InputError) as e:
        load_scenario(path)
    msg = str(e.value)
    assert f"wave[0].{key}" in msg and "s.toml:" in msg and "168" in msg, msg


def test_scheduled_blockage_past_a_week_names_the_bound(tmp_path):
    path = _write(tmp_path, '[scenario]\nshift_hours = 1\n' + _loop()
                  + '[[wave]]\nstart_h = 0\nend_h = 1\nrate_per_hour = 10\n'
                  '[[blockages.scheduled]]\nchute = "C001"\nstart_h = 500\nduration_s = 60\n')
    with pytest.raises(InputError, match=r"blockages\.scheduled\[0\]\.start_h.*168"):
        load_scenario(path)


@pytest.mark.parametrize("field, value", [("capacity", 2.5), ("n_inducts", 1.5),
                                          ("n_reject", "2")])
def test_generated_loop_counts_say_they_start_at_one(field, value):
    """Was: ``bad value 2.5 (expected an integer from 0 to 1,000,000,000)`` while 0 is then
    refused (``capacity >= 1``)."""
    with pytest.raises(InputError) as e:
        LoopSorter.generate(n_chutes=20, **{field: value})
    assert f"loop.{field}" in str(e.value) and "an integer from 1 to" in str(e.value)
    with pytest.raises(InputError, match=f"{field} >= 1"):
        LoopSorter.generate(n_chutes=20, **{field: 0})


def test_cli_error_for_wave_past_a_week_is_one_line(tmp_path):
    path = _write(tmp_path, '[scenario]\nshift_hours = 1\n' + _loop()
                  + '[[wave]]\nstart_h = 0\nend_h = 200\nrate_per_hour = 10\n')
    p = subprocess.run([sys.executable, "-m", "sorter", "run", str(path), "--json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr and p.stdout == ""
    assert "wave[0].end_h" in p.stderr and "168" in p.stderr


def _hub(tmp_path, old, new):
    """A hub of three generated loops, the key line ``old`` of its second [[loop]] table
    replaced by ``new``; returns the file and that line's number."""
    loops = "".join(_loop(length=60.0 + 40 * i, n_chutes=20 + i, n_dest=10).replace(
        '[loop]\nname = "L"', f'[[loop]]\nname = "L{i}"') for i in range(3))
    lines = ('[scenario]\nshift_hours = 0.2\n' + loops
             + '[[wave]]\nstart_h = 0\nend_h = 0.2\nrate_per_hour = 3000\n').split("\n")
    at = [n for n, s in enumerate(lines) if s == old]
    at = at[1] if len(at) > 1 else at[0]
    assert lines.index('name = "L1"') < at < lines.index('name = "L2"')
    lines[at] = new
    return _write(tmp_path, "\n".join(lines)), at + 1


@pytest.mark.parametrize("old, new, field", [
    ("speed_mps = 2.0", "speed_mps = -1", "loop[1].speed_mps"),
    ("capacity = 12", "capacity = 0", "loop[1].capacity"),
    ("n_destinations = 10", "n_destinations = 900", "loop[1].n_destinations"),
    ("n_chutes = 21", "n_chutes = 3", "loop[1].n_chutes"),
])
def test_a_hub_loop_error_names_its_table_and_line(tmp_path, old, new, field):
    """Was: ``hub.toml: field 'loop.speed_mps': bad value -1 (...)``: no line, and no word of
    which of the hub's three [[loop]] tables (the key is in each)."""
    path, line = _hub(tmp_path, old, new)
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert e.value.field == field, str(e.value)
    assert e.value.line == line and str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert "\n" not in str(e.value) and str(e.value).count("(expected") == 1


def test_a_single_loop_error_keeps_its_field(tmp_path):
    path = _write(tmp_path, '[scenario]\nshift_hours = 0.2\n' + _loop(speed=0)
                  + '[[wave]]\nstart_h = 0\nend_h = 0.2\nrate_per_hour = 3000\n')
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert e.value.field == "loop.speed_mps" and e.value.line == 6


def test_a_hub_loop_missing_plan_file_names_its_line(tmp_path):
    """Was: ``field 'loop.plan'`` and no line where two loops name a plan (the key twice)."""
    path, line = _hub(tmp_path, "n_destinations = 10", 'plan = "nope.csv"')
    (tmp_path / "ok.csv").write_text("destination,chutes\nX1,C001\n")
    path.write_text(path.read_text().replace('name = "L0"\n', 'name = "L0"\nplan = "ok.csv"\n', 1))
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert e.value.field == "loop[1].plan" and e.value.line == line + 1, str(e.value)
    assert "loop 'L1': plan file 'nope.csv' not found" in str(e.value)
