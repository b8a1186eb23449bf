"""Parcel supply at the inducts (FloorSimOptions.arrival_rate) and no-reads (no_read_rate) on
the robot sorting floor: conservation, where loads happen, rates, the wait KPI, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sorter.agv.floor_sim import FloorSim, FloorSimOptions, UTIL_STATES
from sorter.agv.lifelong import make_run, simulate
from sorter.errors import InputError
from sorter.layout import load_floor
from sorter.resources import seed_path

MEDIUM = seed_path("floors/medium_33x57.txt")


class Watched(FloorSim):
    """FloorSim that checks every load against the robot's cell and the induct's parcels."""

    def _arrivals(self, planner, pos, goals, t):
        self._pos_now = pos
        self.arrived = getattr(self, "arrived", np.zeros(len(self.supply), np.int64))
        before = self.supply.copy()
        super()._arrivals(planner, pos, goals, t)
        assert (self.supply >= 0).all()
        self.arrived += self.offered_step(before)

    def offered_step(self, before):
        loaded = getattr(self, "_loaded_now", np.zeros(len(self.supply), np.int64))
        self._loaded_now = np.zeros(len(self.supply), np.int64)
        return self.supply - before + loaded

    def _load(self, robots, goals, t):
        if self._supply:
            pos = self._pos_now[robots]
            assert (self.induct_of_cell[pos] == self.target[robots]).all()   # on its induct
            assert (self.heading[robots] == 0).all()
            self._loaded_now = getattr(self, "_loaded_now", np.zeros(len(self.supply), np.int64))
            np.add.at(self._loaded_now, self.target[robots], 1)
            self.loads = getattr(self, "loads", np.zeros(len(self.supply), np.int64))
            np.add.at(self.loads, self.target[robots], 1)
        super()._load(robots, goals, t)


def _run(n, steps, seed=0, **opt):
    f = load_floor(MEDIUM)
    rng = np.random.default_rng(seed)
    pl, _ = make_run(f, n, seed=seed, tasks="sorting")        # the planner make_run builds
    st = Watched(f, n, rng, FloorSimOptions(**opt), seed=seed)
    res = simulate(pl, st, steps, record=False)
    return st, res, st.kpis(steps)


def test_conservation_and_loads_only_on_an_induct_with_a_parcel():
    st, res, k = _run(60, 600, arrival_rate=2400)
    assert k["parcels_offered"] == k["parcels_picked"] + k["parcels_waiting_at_inducts"]
    assert k["parcels_picked"] == k["parcels_sorted"] + k["parcels_carried"]
    assert (st.loads <= st.arrived).all() and st.loads.sum() == k["parcels_picked"]
    assert k["parcels_picked"] > 0
    assert res.tasks_completed == k["parcels_picked"] + k["parcels_sorted"]   # loads + drops


def test_arrivals_follow_the_rate():
    for rate, steps in ((1800, 1200), (9000, 800)):
        st, _, k = _run(30, steps, seed=3, arrival_rate=rate)
        mean = rate * steps / 3600.0
        assert abs(k["parcels_offered"] - mean) < 5 * np.sqrt(mean)
        assert k["offered_per_hour"] == pytest.approx(k["parcels_offered"] / (steps / 3600.0))


def test_an_undersupplied_fleet_starves_and_an_oversupplied_floor_queues_parcels():
    _, _, few = _run(80, 800, arrival_rate=900)        # 80 robots, 0.25 parcels per step
    u = few["robot_utilisation"]
    assert set(u) == set(UTIL_STATES) and u["starved"] > 0.05
    assert few["parcels_waiting_at_inducts"] <= 10
    _, _, many = _run(20, 800, arrival_rate=20000)     # far more than 20 robots carry
    assert many["robot_utilisation"]["starved"] < 0.02
    assert many["parcels_waiting_at_inducts"] > 1000
    assert many["induct_wait_p95"] > few["induct_wait_p95"]
    _, _, unlimited = _run(20, 300)
    assert unlimited["robot_utilisation"]["starved"] == 0
    assert unlimited["parcels_offered"] is None and unlimited["induct_wait_p95"] is None


def test_wait_p95_against_numpy():
    st, _, _ = _run(10, 5, arrival_rate=3600)
    st._waits = [(0, 90, 5), (10, 10, 6), (3, 1, 7)]      # (wait, parcels, arrived)
    st._queue = [type(q)() for q in st._queue]
    st._queue[0].append([95, 4])                       # 4 parcels still waiting since step 95
    w = np.repeat([0, 10, 3, 100 - 95], [90, 10, 1, 4])
    assert st._wait_p95(t_end=100) == np.percentile(w, 95, method="inverted_cdf")


def test_no_reads_go_to_the_no_read_reject_chute():
    _, _, all_nr = _run(30, 400, no_read_rate=1.0)
    assert all_nr["parcels_sorted"] > 0
    assert {r: n for r, n in all_nr["rejects_by_reason"].items() if n} == {
        "no_read": all_nr["parcels_sorted"]}
    _, _, some = _run(40, 800, seed=1, no_read_rate=0.2)
    n, nr = some["parcels_sorted"], some["rejects_by_reason"].get("no_read", 0)
    assert abs(nr - 0.2 * n) < 5 * np.sqrt(n * 0.2 * 0.8)
    _, _, none = _run(40, 800, seed=1)
    assert none["rejects_by_reason"]["no_read"] == 0


@pytest.mark.parametrize("kw, field", [(dict(arrival_rate=-1), "arrival_rate"),
                                       (dict(arrival_rate=float("inf")), "arrival_rate"),
                                       (dict(arrival_rate=True), "arrival_rate"),
                                       (dict(no_read_rate=1.5), "no_read_rate")])
def test_bad_supply_options(kw, field):
    with pytest.raises(InputError) as e:
        FloorSimOptions(**kw).validate()
    assert e.value.field == field


def test_cli_arrival_rate_and_no_reads(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sorter", "mapf", str(MEDIUM), "--robots", "40",
                        "--steps", "300", "--arrival-rate", "3000", "--no-read-rate", "0.05",
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    assert k["arrival_rate"] == 3000 and k["no_read_rate"] == 0.05
    assert k["parcels_offered"] == k["parcels_picked"] + k["parcels_waiting_at_inducts"]
    bad = subprocess.run([sys.executable, "-m", "sorter", "mapf", str(MEDIUM), "--robots", "4",
                          "--steps", "3", "--arrival-rate", "-5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "arrival" in bad.stderr and "Traceback" not in bad.stderr


def test_floor_sweep_with_an_arrival_rate():
    from sorter.floor_sweep import floor_sweep
    res = floor_sweep(MEDIUM, {"robots": [20, 40]}, seeds=1,
                      overrides={"steps": 200, "arrival_rate": 3000, "no_read_rate": 0.1},
                      n_workers=1)
    for row in res.rows:
        assert {"offered_per_hour", "induct_wait_p95", "util_starved",
                "parcels_waiting_at_inducts"} <= set(row)
        pl, st = make_run(load_floor(MEDIUM), row["robots"], seed=row["seed"], tasks="sorting",
                          floor_sim=FloorSimOptions(arrival_rate=3000, no_read_rate=0.1))
        simulate(pl, st, 200, record=False)
        k = st.kpis(200)
        assert row["offered_per_hour"] == k["offered_per_hour"]
        assert row["net_sorted_per_hour"] == k["net_sorted_per_hour"]
    assert "offered/h" in res.format_table() and "starved %" in res.format_table()


def test_report_series_of_the_offered_load(tmp_path):
    from sorter.agv.report import floor_time_series, write_floor_report
    f = load_floor(MEDIUM)
    pl, st = make_run(f, 20, seed=0, tasks="sorting",
                      floor_sim=FloorSimOptions(arrival_rate=4000))
    res = simulate(pl, st, 90)
    s = floor_time_series(res, window=30, offered_steps=st.offered_steps)
    assert len(st.offered_steps) == 90
    assert s["offered_per_step"].sum() * 30 == pytest.approx(st.offered)
    assert floor_time_series(res, window=30)["offered_per_step"] is None
    files = write_floor_report(f, res, {**res.kpis(), **st.kpis(90)}, tmp_path,
                               util_steps=st.util_steps, offered_steps=st.offered_steps)
    page = (tmp_path / "report.html").read_text()
    assert "throughput.png" in files and f"{st.offered:,} parcels" in page


def test_arrival_waves_offer_each_rate_in_its_own_hours():
    waves = [(0, 1800), (600, 9000), (1200, 0)]        # a lull with no parcels at the end
    st, _, k = _run(40, 1500, seed=2, arrival_rate=waves)
    per = np.asarray(st.offered_steps)
    for (a, rate), b in zip(waves, [600, 1200, 1500]):
        mean = rate * (b - a) / 3600.0
        got = per[a:b].sum()
        assert abs(got - mean) <= 5 * np.sqrt(max(mean, 1)), (a, got, mean)
    assert per[1200:].sum() == 0
    assert k["arrival_rate"] == [[0.0, 1800.0], [600.0, 9000.0], [1200.0, 0.0]]
    assert k["parcels_offered"] == k["parcels_picked"] + k["parcels_waiting_at_inducts"]


@pytest.mark.parametrize("waves, what", [([(5, 1000)], "from 0 s"),
                                         ([(0, 1000), (0, 2000)], "increasing"),
                                         ([(0, 1000), (60, -1)], "parcels per hour"),
                                         ([(0, 1000, 3)], "pairs"),
                                         ([], "at least one")])
def test_bad_arrival_waves(waves, what):
    with pytest.raises(InputError, match=what) as e:
        FloorSimOptions(arrival_rate=waves).validate()
    assert e.value.field == "arrival_rate"


def test_cli_arrival_waves():
    r = subprocess.run([sys.executable, "-m", "sorter", "mapf", str(MEDIUM), "--robots", "30",
                        "--steps", "120", "--arrival-rate", "2000,8000@60", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["arrival_rate"] == [[0.0, 2000.0], [60.0, 8000.0]]
    for bad in ("2000,8000", "fast", "2000,x@60"):
        b = subprocess.run([sys.executable, "-m", "sorter", "mapf", str(MEDIUM), "--robots", "3",
                            "--steps", "3", "--arrival-rate", bad], capture_output=True, text=True)
        assert b.returncode == 2 and "arrival" in b.stderr and "Traceback" not in b.stderr


def test_wait_p95_by_wave_against_numpy():
    st, _, k = _run(10, 5, arrival_rate=[(0, 3600), (50, 7200)])
    assert len(k["induct_wait_p95_by_wave"]) == 2
    st._waits = [(2, 30, 10), (40, 5, 20), (7, 1, 60), (90, 3, 70)]   # (wait, parcels, arrived)
    st._queue = [type(q)() for q in st._queue]
    st._queue[1].append([80, 2])                        # 2 parcels waiting since step 80
    first = np.repeat([2, 40], [30, 5])
    second = np.repeat([7, 90, 100 - 80], [1, 3, 2])
    by = st._wait_by_wave(100)
    assert by[0] == np.percentile(first, 95, method="inverted_cdf")
    assert by[1] == np.percentile(second, 95, method="inverted_cdf")
    assert st._wait_p95(100) == np.percentile(np.concatenate([first, second]), 95,
                                              method="inverted_cdf")
    _, _, single = _run(10, 5, arrival_rate=3600)
    assert single["induct_wait_p95_by_wave"] is None
