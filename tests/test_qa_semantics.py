"""QA pass on semantics (second pass): regressions for what users' inputs broke.

Each test names the input, what happened before the fix and what must happen.
"""
from __future__ import annotations

import asyncio
import threading

import pytest

from sorter import Sorter
from sorter.cli import main
from sorter.resources import seed_path
from sorter.service.server import open_service, start_server
from service_fakes import exchange, serve_on_taken_port

PLAN = seed_path("plan/demo_plan.csv")
CHUTES = seed_path("plan/demo_chutes.toml")
TIMEOUT = 30.0


# -- sorter sweep -------------------------------------------------------------------------

def test_sweep_fixed_shorter_shift_drops_the_waves_after_it():
    """`--set scenario.shift_hours=0.1` on a scenario whose later waves start after 0.1 h
    failed ("wave 'peak' starts after the shift ends") although `--vary
    scenario.shift_hours=0.1` dropped those waves and ran; a fixed override is documented as
    the way to shorten every point. Both must give the same rows."""
    from sorter.sweep import KPI_COLUMNS, capacity_sweep
    sc = seed_path("scenarios/default.toml")
    fixed = capacity_sweep(sc, {"wave.0.rate_per_hour": [8000]}, seeds=1,
                           overrides={"scenario.shift_hours": 0.1}, n_workers=1)
    varied = capacity_sweep(sc, {"scenario.shift_hours": [0.1]}, seeds=1, n_workers=1)
    assert fixed.rows[0]["shift_hours"] == 0.1
    assert {k: fixed.rows[0][k] for k in KPI_COLUMNS} == {k: varied.rows[0][k] for k in KPI_COLUMNS}
    assert fixed.rows[0]["offered"] > 0


# -- sorter run: offered volume is bounded before parcels are drawn ----------------------

def test_a_flood_of_offered_parcels_is_refused_before_it_is_drawn(tmp_path, capsys):
    """A wave at 1,000,000 items/h over 24 h drew all 24 million parcels (7 GB, 52 s) and
    1e7/h for a week would exhaust memory; now one line names the field and the bound."""
    from sorter.sim.scenario import MAX_OFFERED
    text = seed_path("scenarios/default.toml").read_text()
    head = text[:text.index("[[wave]]")].replace("shift_hours = 8", "shift_hours = 24")
    for rel in ("../plan/demo_chutes.toml", "../plan/demo_plan.csv"):
        head = head.replace(f'"{rel}"', f'"{seed_path(rel[3:]).as_posix()}"')
    sc = tmp_path / "flood.toml"
    sc.write_text(head + '[[wave]]\nname = "flood"\nstart_h = 0\nend_h = 24\n'
                  'rate_per_hour = 1000000\n')
    assert main(["run", str(sc)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wave.rate_per_hour" in err[0] and "24,000,000" in err[0]
    assert f"{MAX_OFFERED:,}" in err[0]
    sc.write_text(sc.read_text().replace("rate_per_hour = 1000000", "rate_per_hour = 800000"))
    from sorter.sim.scenario import load_scenario
    assert load_scenario(sc).offered_per_hour * 24 <= MAX_OFFERED     # at the bound: accepted


# -- sorter serve: PLAN is read off the event loop ---------------------------------------

def test_plan_file_is_read_off_the_event_loop_and_answers_stay_in_order(tmp_path, monkeypatch):
    """A PLAN telegram read its file on the asyncio loop: while a big plan loaded, no other
    connection got an answer. Now the read runs in a worker thread: another connection is
    answered (under the plan in force) while it loads, and the PLAN's own connection gets
    ACK, then its next scan decided under the new plan, in order."""
    import sorter.engine as engine_mod

    new_plan = tmp_path / "wave-b.csv"
    new_plan.write_text("destination,chutes\n01422,C010\n")
    ref_old = Sorter.from_files(PLAN, CHUTES)
    ref_new = Sorter.from_files(PLAN, CHUTES)
    ref_new.switch_plan(new_plan)
    old_chute = ref_old.assign("01422").chute
    new_chute = ref_new.assign("01422").chute
    assert old_chute != new_chute

    entered, gate = threading.Event(), threading.Event()
    timed_out = []
    real = engine_mod.load_plan_routes

    def slow_read(path, chutes=None):
        entered.set()
        if not gate.wait(3.0):        # the old code blocks the loop here: nobody releases it
            timed_out.append(path)
        return real(path, chutes)

    monkeypatch.setattr(engine_mod, "load_plan_routes", slow_read)
    svc, _ = open_service(PLAN, CHUTES, deadline_ms=60_000)

    async def main_():
        loop = asyncio.get_running_loop()
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ra, wa = await asyncio.open_connection("127.0.0.1", port)
        rb, wb = await asyncio.open_connection("127.0.0.1", port)
        wa.write(f"PLAN|1|{new_plan}\nSCAN|2|PA|01422|0|1\n".encode())
        await wa.drain()
        assert await loop.run_in_executor(None, entered.wait, TIMEOUT)
        wb.write(b"SCAN|7|PB|01422|0|1\n")
        await wb.drain()
        b = (await asyncio.wait_for(rb.readline(), TIMEOUT)).decode().strip()
        gate.set()
        a = [(await asyncio.wait_for(ra.readline(), TIMEOUT)).decode().strip() for _ in range(2)]
        for w in (wa, wb):
            w.close()
        server.close()
        await server.wait_closed()
        return a, b

    a, b = asyncio.run(main_())
    assert not timed_out, "the plan file was read on the event loop"
    assert b == f"DEST|7|PB|{old_chute}|ok"
    assert a == ["ACK|1", f"DEST|2|PA|{new_chute}|ok"]
    assert svc.engine.plan_name == "wave-b"


def test_plan_errors_and_back_to_back_plans_keep_one_answer_each_in_order(tmp_path):
    """Live server: a bad PLAN still gets its ERR, and telegrams after two PLANs in one
    read (and a client that closes its side at once) all get their answers, in order."""
    p2 = tmp_path / "p2.csv"
    p2.write_text("destination,chutes\n01422,C010\n")
    p3 = tmp_path / "p3.csv"
    p3.write_text("destination,chutes\n01422,C020\n")
    svc, _ = open_service(PLAN, CHUTES, deadline_ms=60_000)
    ref = Sorter.from_files(PLAN, CHUTES)
    lines = [b"SCAN|1|P1|01422|0|1", f"PLAN|2|{p2}".encode(), b"SCAN|3|P2|01422|0|1",
             f"PLAN|4|{tmp_path / 'missing.csv'}".encode(), b"HB|5",
             f"PLAN|6|{p3}".encode(), b"SCAN|7|P3|01422|0|1", b"CHUTE|8|C020|blocked",
             b"SCAN|9|P4|01422|0|1"]

    out = exchange(svc, b"\n".join(lines) + b"\n", TIMEOUT)  # the answers must still come after the client closes its side
    exp = [ref.assign("01422")]
    ref.switch_plan(p2)
    exp.append(ref.assign("01422"))
    ref.switch_plan(p3)
    exp.append(ref.assign("01422"))
    ref.set_state("C020", "blocked")
    exp.append(ref.assign("01422"))
    assert len(out) == len(lines)
    assert [o.split("|")[1] for o in out] == [str(i) for i in range(1, 10)]
    assert out[1] == "ACK|2" and out[3].startswith("ERR|4|bad_plan|") and out[4] == "ACK|5"
    assert out[5] == "ACK|6" and out[7] == "ACK|8"
    dests = [o.split("|")[3:] for o in out if o.startswith("DEST")]
    assert dests == [[str(d.chute), d.reason] for d in exp]
    assert svc.engine.counters() == ref.counters()


# -- sorter serve: a port error leaves no fresh journal -----------------------------------

def test_port_error_leaves_no_fresh_journal_but_keeps_an_existing_one(tmp_path, capsys):
    """`sorter serve --journal new.db` on a taken port left new.db behind (holding the base
    snapshot of --plan): the next start restored it and ignored a corrected --plan. A fresh
    journal is now removed; an existing journal is kept and restores as before."""
    fresh = tmp_path / "new.db"
    serve_on_taken_port(capsys, fresh)
    assert not list(tmp_path.glob("new.db*"))

    kept = tmp_path / "kept.db"
    svc, _ = open_service(PLAN, CHUTES, journal=str(kept))
    svc.feed(_fake_conn(svc), b"SCAN|1|P1|01422|0|1\nDISCHARGED|2|P1|C001\nCHUTE|3|C002|blocked\n")
    svc.shutdown()
    before = svc.engine.counters()
    serve_on_taken_port(capsys, kept)
    assert kept.exists()
    again, msg = open_service(None, None, journal=str(kept))
    assert msg.startswith("restored") and again.engine.counters() == before
    again.shutdown()


def _fake_conn(svc):
    from service_fakes import FakeTransport
    from sorter.service.server import Connection
    conn = Connection(svc)
    conn.connection_made(FakeTransport())
    return conn


def test_a_plan_prepared_for_another_chute_table_is_refused(tmp_path):
    """`prepare_plan` (the part of a switch a service runs in a worker thread) gives a plan
    only the engine that prepared it (or one sharing its chute table) puts in force."""
    a = Sorter.from_files(PLAN, CHUTES)
    b = Sorter.from_files(PLAN, CHUTES)
    prepared = a.prepare_plan(seed_path("plan/demo_plan_wave2.csv"))
    assert a.plan_name == "wave-1"          # prepared, not yet in force
    with pytest.raises(ValueError, match="another chute table"):
        b.switch_plan(prepared)
    a.switch_plan(prepared)
    assert a.plan_name == "demo_plan_wave2"


# -- sorter run: KPI consistency on scenarios users write ---------------------------------

def _chutes_toml(n_dest, n_over, cap, max_rec):
    from sorter.constants import REJECT_REASONS
    out = ["[plan]", 'name = "p"', 'strategy = "fill_first"', f"max_recirculation = {max_rec}",
           "overflow = [" + ", ".join(f'"OV{i + 1}"' for i in range(n_over)) + "]", "[reject]"]
    out += [f'{r} = "R1"' for r in REJECT_REASONS]
    pos = 20.0
    for kind, ids in (("destination", [f"C{i + 1}" for i in range(n_dest)]),
                      ("overflow", [f"OV{i + 1}" for i in range(n_over)]), ("reject", ["R1"])):
        for cid in ids:
            out += ["[[chute]]", f'id = "{cid}"', f'kind = "{kind}"',
                    f"capacity = {1000 if kind == 'reject' else cap}", f"position = {pos}"]
            pos += 4.0
    return "\n".join(out) + "\n"


_WAVES2 = ('[[wave]]\nstart_h = 0\nend_h = 0.1\nrate_per_hour = 0\n'
           '[[wave]]\nstart_h = 0.1\nend_h = 0.25\nrate_per_hour = 2500\nplan = "plan2.csv"\n')
_BLOCK_ALL = "".join(f'[[blockages.scheduled]]\nchute = "{c}"\nstart_h = 0\nduration_s = 99999\n'
                     for c in ("C1", "C2", "OV1"))


@pytest.mark.parametrize("name,chutes,scan,extra,waves", [
    ("one chute", (1, 0, 5, 2), "no_read_rate = 0.0", "", None),
    ("max recirculation 0", (2, 1, 3, 0), "no_read_rate = 0.0", "", None),
    ("every parcel a no-read", (2, 1, 50, 3), "no_read_rate = 1.0", "", None),
    ("every chute blocked", (2, 1, 50, 3), "no_read_rate = 0.0", "[blockages]\n" + _BLOCK_ALL, None),
    ("empty wave, then a plan without B", (2, 1, 4, 3), "no_read_rate = 0.0", "", _WAVES2),
])
def test_edge_scenarios_conserve_parcels_and_reject_with_reasons(tmp_path, name, chutes, scan,
                                                                  extra, waves):
    """Conservation, rejects by reason, chute kind per reason, determinism, on the scenarios
    users write (checked from the per-parcel rows, independently of the KPI code)."""
    import numpy as np

    from sorter.sim import simulate
    from sorter.sim.kpis import compute_kpis
    from sorter.sim.scenario import load_scenario

    (tmp_path / "chutes.toml").write_text(_chutes_toml(*chutes))
    (tmp_path / "plan.csv").write_text("destination,chutes\nA,C1\n"
                                       + ("B,C2\n" if chutes[0] > 1 else ""))
    (tmp_path / "plan2.csv").write_text("destination,chutes\nA,C2\n")
    waves = waves or "[[wave]]\nstart_h = 0\nend_h = 0.25\nrate_per_hour = 2500\n"
    (tmp_path / "s.toml").write_text(
        f'[scenario]\nname = "{name}"\nseed = 5\nshift_hours = 0.25\ninterval_minutes = 5\n'
        '[loop]\nlength_m = 100.0\nspeed_mps = 2.0\npitch_m = 0.5\nscanner_m = 12.0\n'
        'chutes = "chutes.toml"\nplan = "plan.csv"\n'
        '[[loop.induct]]\nid = "I1"\nposition_m = 2.0\nmax_rate_per_hour = 3000\n'
        f'{waves}[destinations]\nmix = "uniform"\n[scan]\nnot_sortable_rate = 0.0\n{scan}\n{extra}')
    sc = load_scenario(tmp_path / "s.toml")
    res = simulate(sc)
    k = compute_kpis(res)
    cols = res.parcel_columns()
    st, reason, chute = cols["status"], cols["reason"], cols["chute"]
    done = (st == "sorted") | (st == "rejected")
    assert k["offered"] == len(st) > 0
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]
    assert k["rejected"] == sum(k["rejects_by_reason"].values()) == int(np.sum(st == "rejected"))
    assert k["sorted"] == k["sorted_to_destination"] + k["sorted_to_overflow"]
    assert sum(k["intervals"]["sorted"]) == k["sorted"]
    assert sum(c["discharged"] for c in k["chutes"]) == k["sorted"] + k["rejected"]
    kind = {str(c.id): c.kind for c in sc.loops[0].layout.chutes}
    for r, c in zip(reason[done], chute[done]):
        assert kind[c] == {"ok": "destination", "overflow": "overflow"}.get(r, "reject"), (r, c)
    t = (cols["discharge_t"] - cols["induct_t"])[done]
    assert k["induct_to_chute_s_p95"] == pytest.approx(float(np.percentile(t, 95)))
    assert k["recirculation_pct"] == pytest.approx(
        100 * np.sum(done & (cols["recirculations"] > 0)) / done.sum())
    if name == "every parcel a no-read":
        assert k["rejects_by_reason"]["no_read"] == k["rejected"] == int(done.sum())
    if name == "every chute blocked":
        assert k["sorted"] == 0 and k["rejects_by_reason"]["no_chute_available"] == k["rejected"]
    if name == "max recirculation 0":
        assert set(cols["recirculations"][st == "rejected"]) <= {0, 1}
    if name.startswith("empty wave"):
        assert k["per_wave"][0]["offered_per_hour"] == 0
        after = done & (cols["induct_t"] > 0.1 * 3600 + 1)
        assert set(zip(cols["destination"][after], reason[after])) <= {
            ("A", "ok"), ("A", "overflow"), ("A", "no_chute_available"),
            ("A", "max_recirculation"), ("B", "unknown_destination")}
    again = compute_kpis(simulate(sc))
    assert {x: v for x, v in again.items() if x != "wall_s"} == \
        {x: v for x, v in k.items() if x != "wall_s"}


# -- KPIs: waiting at the inducts under overload -------------------------------------------

def test_induct_wait_p95_counts_the_parcels_still_queued_at_the_end():
    """induct_wait_s_p95 left out the parcels still waiting at the end of the shift, so an
    overloaded shift looked better the worse it got; now they count with the time waited so
    far (recomputed here from the per-parcel columns)."""
    import numpy as np

    from sorter.sim import compute_kpis, load_scenario, simulate
    from dataclasses import replace
    sc = load_scenario(seed_path("scenarios/default.toml"))
    sc = replace(sc, shift_hours=1.0, waves=[replace(sc.waves[0], start_s=0.0, end_s=3600.0,
                                                     rate_per_hour=30000.0,
                                                     induct_rates_per_hour=None)])
    res = simulate(sc, seed=2)
    k = compute_kpis(res)
    cols = res.parcel_columns()
    queued = cols["status"] == "queued"
    assert queued.sum() > 1000                        # overloaded: 30,000/h on a 15,000/h loop
    wait = np.where(queued, sc.shift_s, cols["induct_t"]) - cols["arrival_t"]
    assert k["induct_wait_s_p95"] == pytest.approx(np.percentile(wait, 95), rel=1e-9)
    assert k["induct_wait_s_p95"] > np.percentile(wait[~queued], 95)


def test_chutes_unavailable_series_agrees_with_the_not_open_kpi():
    """The time series counted reject chutes in a container change as unavailable while
    chute_not_open_pct_mean (and the heat map) leave reject chutes out; both now describe the
    destination and overflow chutes: the time-weighted mean of the series equals the KPI."""
    import numpy as np

    from sorter.sim import compute_kpis, default_scenario_path, simulate
    from sorter.sim.kpis import time_series
    res = simulate(default_scenario_path(), seed=1)
    ts, k = time_series(res), compute_kpis(res)
    edges = np.append(ts["start_s"], res.scenario.shift_s)
    w = np.diff(edges)
    served = sum(int((np.asarray(lr.chute_kind) != 2).sum()) for lr in res.loops)
    mean_share = float((ts["chutes_unavailable"] * w).sum() / w.sum() / served)
    assert mean_share * 100 == pytest.approx(k["chute_not_open_pct_mean"], rel=1e-3, abs=1e-6)
    rejects_busy = sum(int(lr.raw["unavail_ticks"][:, np.asarray(lr.chute_kind) == 2].sum())
                       for lr in res.loops)
    assert rejects_busy > 0               # the case that differed: reject chutes were changed
