"""QA (session 12) of a planner's end-to-end study of a robot sorting floor (generated floors with
and without induct queues, waves, no-reads, faults, a loaded sort plan, fleet sweeps):
regressions of the bugs found, each checked against a count kept outside FloorSim."""
from __future__ import annotations

import numpy as np

from sorter.agv.floor_sim import FloorSimOptions
from sorter.agv.lifelong import make_run, simulate
from sorter.layout import sortation_floor


def _floor(queue):
    return sortation_floor(21, 35, 8, 30, seed=3, queue=queue)


class StarvedLog:
    """Robot-steps a robot waits for a parcel at its induct (starved before the step, not
    faulted, not on its way to another induct it was sent to), kept from outside FloorSim."""

    def __init__(self, st):
        self.count = 0
        self.away = np.zeros(st.n, bool)       # sent to another induct, not there yet
        update, self.st = st.update, st

        def _update(planner):
            starved, target = st.starved.copy(), st.target.copy()
            faulted = st.fault_left > 0
            self.count += int((starved & ~faulted & ~self.away).sum())
            g = update(planner)
            pos = planner.positions
            on_own = st.induct_of_cell[pos] == np.where(st.heading == 0, st.target, -2)
            self.away &= ~on_own & (st.heading == 0)
            self.away |= starved & st.starved & (st.target != target) & ~on_own
            return g
        st.update = _update


def test_a_robot_nudged_about_while_it_waits_for_a_parcel_counts_as_starved():
    # was: a robot waiting at its induct for a parcel that PIBT moved a cell (to let another
    # pass, or swapping places with a robot bound for the same induct) counted as 'moving
    # empty' for that step: at 3,000 parcels/h and 80 robots about a third of all robot-steps,
    # so the report showed half the fleet travelling empty and only ~15 % starved
    for queue in (0, 3):
        floor = _floor(queue)
        pl, st = make_run(floor, 80, seed=0, tasks="sorting",
                          floor_sim=FloorSimOptions(arrival_rate=3000))
        log = StarvedLog(st)
        steps = 1200
        simulate(pl, st, steps, record=False)
        k = st.kpis(steps)
        u = k["robot_utilisation"]
        assert abs(sum(u.values()) - 1) < 1e-12
        assert log.count > 0.2 * steps * 80
        assert round(u["starved"] * steps * 80) == log.count


def test_a_sweep_takes_the_waves_as_sorter_mapf_writes_them():
    # was: `sorter sweep FLOOR --set arrival_rate=3000,7000@1800` (the form `sorter mapf
    # --arrival-rate` takes and its --help shows) failed: "arrival wave 3000 (expected
    # (start_s, rate) pairs)"; only the TOML form [[0, 3000], [1800, 7000]] worked
    from sorter.errors import InputError
    from sorter.floor_sweep import floor_sweep
    floor = _floor(0)
    base = {"steps": 40}
    want = floor_sweep(floor, {"robots": [10]}, seeds=1,
                       overrides={"steps": 40, "arrival_rate": [[0, 3000], [20, 90000]]},
                       n_workers=1).table().to_pylist()
    for text in ([3000, "90000@20"], ["3000", "90000@20"], "3000,90000@20"):
        got = floor_sweep(floor, {"robots": [10]}, seeds=1,
                          overrides={**base, "arrival_rate": text}, n_workers=1)
        assert got.table().to_pylist() == want
    assert want[0]["offered_per_hour"] > 3000 * 1.5          # the second wave counted
    for bad in ([3000, "x@20"], [3000, "9000@"], "9000@20,3000@10"):
        try:
            floor_sweep(floor, {"robots": [10]}, seeds=1,
                        overrides={**base, "arrival_rate": bad}, n_workers=1)
        except InputError as e:
            assert e.field == "arrival_rate"
        else:
            raise AssertionError(f"{bad!r} accepted")


def _plan_files(tmp_path, reject_capacity):
    """A sort plan for the generated floor: one big destination on 3 chutes, two destinations
    sharing a chute, 20 more; overflow C26, C27; reject C28 (no-reads ...), C29."""
    rows = ["destination,chutes", "BIG,C0;C1;C2", "SHARE_A,C3", "SHARE_B,C3"]
    rows += [f"D{i:02d},C{c}" for i, c in enumerate(range(4, 24))]
    (tmp_path / "plan.csv").write_text("\n".join(rows) + "\n")
    toml = ['[plan]', 'name = "qa"', 'strategy = "least_loaded"', 'max_recirculation = 3',
            'overflow = ["C26", "C27"]', '[reject]', 'no_read = "C28"',
            'unknown_destination = "C28"', 'max_recirculation = "C29"',
            'no_chute_available = "C29"', 'not_sortable = "C28"', 'late = "C28"']
    for c in range(30):
        kind = "overflow" if c in (26, 27) else "reject" if c in (28, 29) else "destination"
        cap = f"\ncapacity = {reject_capacity}" if kind == "reject" and reject_capacity else ""
        toml += ["[[chute]]", f'id = "C{c}"', f'kind = "{kind}"{cap}']
    (tmp_path / "chutes.toml").write_text("\n".join(toml) + "\n")
    return tmp_path / "plan.csv", tmp_path / "chutes.toml"


def test_a_loaded_plans_reject_chutes_take_every_parcel(tmp_path):
    # was: a loaded chute table's reject chutes kept their capacity (the TOML's, default 40):
    # the engine turned them 'full' and they stayed full for good (no container change; the
    # floor's mirror, chute_full_events and chutes_closed_at_end never knew), robots bound
    # there still tipped into them, and the engine sent later no-reads to another reason's
    # reject chute
    for cap in (None, 15):
        plan, chutes = _plan_files(tmp_path, cap)
        pl, st = make_run(_floor(0), 40, seed=1, tasks="sorting",
                          floor_sim=FloorSimOptions(plan_csv=plan, chutes_toml=chutes,
                                                    no_read_rate=0.1))
        simulate(pl, st, 1200, record=False)
        k = st.kpis(1200)
        state = st.sorter._arrays()["state"]
        assert np.array_equal(state != 0, st.closed)        # the engine and the floor agree
        assert k["chutes_closed_at_end"] == int((state != 0).sum())
        no_read = k["parcels_by_reason"]["no_read"]
        assert no_read > 40
        assert k["sorted_per_chute"]["C28"] == no_read      # every no-read in its own chute
        assert sum(k["sorted_per_chute"].values()) == k["parcels_sorted"]
        assert k["sorted_per_chute"]["C0"] > 0 and k["sorted_per_chute"]["C3"] > 0


def test_the_printed_summary_gives_the_reports_net_figure_per_robot_hour(tmp_path):
    # was: the summary printed 'sorted/hour 5260 (43.8 per robot-hour ...; net of rejects
    # 5035)' while report.html's headline said 42.0 parcels per robot-hour (net): the printed
    # per-robot figure counted rejects and said nothing of it, the net one was not printed
    import json
    import subprocess
    import sys
    from sorter.layout.ascii import format_ascii
    f = tmp_path / "floor.txt"
    f.write_text(format_ascii(_floor(0)))
    out = subprocess.run([sys.executable, "-m", "sorter", "mapf", str(f), "--scenario", "sorting",
                          "--robots", "30", "--steps", "300", "--no-read-rate", "0.2",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         check=True).stdout
    k = json.loads((tmp_path / "o" / "kpis.json").read_text())
    line = next(x for x in out.splitlines() if "sorted/hour" in x)
    assert k["parcels_rejected"] > 0
    assert f"{k['sorted_per_hour']:.0f}  (rejects included" in line
    assert f"net of rejects {k['net_sorted_per_hour']:.0f}, " \
           f"{k['net_sorted_per_hour'] / 30:.1f} per robot-hour" in line
