"""QA regressions: each test pins a problem found by using sorter as its users would.

Every test here failed before its fix (a traceback, a hang, a misleading message or a
half-written file) and must stay fast: small scenarios, in-process CLI calls.
"""
from __future__ import annotations

import asyncio
import csv
import json

import pytest

from sorter.cli import main
from sorter.errors import InputError
from sorter.resources import seed_path

PLAN = str(seed_path("plan/demo_plan.csv"))
CHUTES = str(seed_path("plan/demo_chutes.toml"))
WAVE2 = seed_path("plan/demo_plan_wave2.csv")

TINY = """
[scenario]
name = "qa tiny"
seed = 3
shift_hours = 0.1
[loop]
length_m = 60
speed_mps = 1.5
pitch_m = 1.0
n_chutes = 12
n_inducts = 1
[[wave]]
start_h = 0
end_h = 0.1
rate_per_hour = 1500
"""


def one_error_line(capsys, argv, *needles):
    """Run the CLI; it must fail with exit 2 and ONE error line naming every needle."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith(f"sorter {argv[0]}: error: ")]
    assert len(errors) == 1, err                  # (serve may say which plan it loaded first)
    assert errors[0] == err.splitlines()[-1], err
    for n in needles:
        assert n in errors[0], (n, err)
    return errors[0]


@pytest.fixture()
def tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


# -- sorter run --out -------------------------------------------------------------------

def test_run_out_onto_a_file_is_one_line_before_simulating(tmp_path, tiny, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("x")
    one_error_line(capsys, ["run", str(tiny), "--out", str(f), "--json"], str(f), "--out")
    assert f.read_text() == "x"


def test_run_out_in_an_unwritable_place_is_one_line(tmp_path, tiny, capsys):
    one_error_line(capsys, ["run", str(tiny), "--out", "/proc/sorter-qa/out", "--json"],
                   "/proc/sorter-qa/out", "--out")


def test_run_out_creates_nested_folders(tmp_path, tiny, capsys):
    out = tmp_path / "a" / "b"
    assert main(["run", str(tiny), "--out", str(out), "--json"]) == 0
    k = json.loads(capsys.readouterr().out)
    assert (out / "kpis.json").exists() and (out / "report.html").exists()
    assert k["inducted"] == k["sorted"] + k["rejected"] + k["on_loop_at_end"]


# -- generated loops: huge counts fail at once (they used to build a 10**30 tuple) ---------

@pytest.mark.parametrize("key", ["n_inducts", "n_chutes", "n_overflow", "n_reject", "capacity"])
def test_generated_loop_huge_counts_fail_fast(tmp_path, capsys, key):
    p = tmp_path / "huge.toml"
    p.write_text(TINY.replace("[loop]\n", f"[loop]\n{key} = 1000000000000000000000000000000\n")
                 .replace(f"{key} = 12\n", "").replace(f"{key} = 1\n", ""))
    one_error_line(capsys, ["run", str(p), "--json"], str(p), f"loop.{key}")


def test_generate_bounds_from_python():
    from sorter.layout.loop import LoopSorter
    with pytest.raises(InputError, match="n_inducts"):
        LoopSorter.generate(n_inducts=10**30)


# -- sorter assign ------------------------------------------------------------------------

EVENTS = ("t,event,parcel,destination,recirculation,sortable,chute,plan\n"
          "0,scan,P1,01422,0,1,,\n"
          "1,switch_plan,,,,,,{plan}\n"
          "2,scan,P2,01422,0,1,,\n")


def test_assign_unwritable_out_is_one_line(tmp_path, capsys):
    ev = tmp_path / "ev.csv"
    ev.write_text(EVENTS.format(plan=WAVE2))
    for out in (tmp_path, "/proc/sorter-qa/d.csv"):
        one_error_line(capsys, ["assign", "--plan", PLAN, "--chutes", CHUTES, "--events", str(ev),
                                "--out", str(out)], str(out), "--out")


def test_assign_failure_leaves_no_half_written_decisions(tmp_path, capsys):
    ev = tmp_path / "ev.csv"
    ev.write_text(EVENTS.format(plan="missing/plan.csv"))
    out = tmp_path / "d.csv"
    err = one_error_line(capsys, ["assign", "--plan", PLAN, "--chutes", CHUTES, "--events", str(ev),
                                  "--out", str(out)], f"{ev}:3", "plan", "missing/plan.csv")
    assert "not found" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ev.csv"]      # no temp file left


def test_assign_switch_plan_error_names_the_events_line_when_skipping(tmp_path, capsys, caplog):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "w2.csv").write_text(WAVE2.read_text())
    ev = tmp_path / "ev.csv"
    ev.write_text(EVENTS.format(plan="sub") + "3,switch_plan,,,,,,sub/w2.csv\n4,scan,P3,01422,0,1,,\n")
    out = tmp_path / "d.csv"
    assert main(["assign", "--plan", PLAN, "--chutes", CHUTES, "--events", str(ev), "--out", str(out),
                 "--on-error", "skip"]) == 0
    logged = caplog.text
    assert f"{ev}:3" in logged and "field 'plan'" in logged and "sub" in logged
    rows = list(csv.DictReader(out.open()))
    assert [r["parcel"] for r in rows] == ["P1", "P2", "P3"]       # the relative switch applied


def test_assign_max_recirculation_bounds(tmp_path, capsys):
    ev = tmp_path / "ev.csv"
    ev.write_text(EVENTS.format(plan=WAVE2))
    for v in ("99999999999999999999", "-3"):
        one_error_line(capsys, ["assign", "--plan", PLAN, "--chutes", CHUTES, "--events", str(ev),
                                "--out", str(tmp_path / "d.csv"), "--max-recirculation", v],
                       "--max-recirculation")


def test_sorter_max_recirculation_overflow_is_an_input_error():
    from sorter import Sorter
    with pytest.raises(InputError, match="max_recirculation"):
        Sorter.from_files(PLAN, CHUTES, max_recirculation=10**20)


# -- sorter journal export ----------------------------------------------------------------

def _journal(tmp_path):
    from sorter.service import open_service
    db = tmp_path / "j.db"
    svc, _ = open_service(PLAN, CHUTES, journal=str(db))
    svc.shutdown()
    return db


def test_journal_export_unwritable_out_is_one_line(tmp_path, capsys):
    db = _journal(tmp_path)
    one_error_line(capsys, ["journal", "export", str(db), "--out", "/proc/sorter-qa/x.csv"],
                   "/proc/sorter-qa/x.csv")
    assert main(["journal", "export", str(db), "--out", str(tmp_path / "new" / "a.csv")]) == 0
    assert (tmp_path / "new" / "a.csv").read_text().startswith("id,time,client")


def test_journal_export_of_a_missing_journal_makes_no_output(tmp_path, capsys):
    out = tmp_path / "a.csv"
    one_error_line(capsys, ["journal", "export", str(tmp_path / "none.db"), "--out", str(out)],
                   "none.db")
    assert not out.exists()


# -- sorter serve -------------------------------------------------------------------------

def test_serve_port_in_use_is_one_line(tmp_path, capsys):
    from service_fakes import serve_on_taken_port
    serve_on_taken_port(capsys, tmp_path / "j.db")
    assert not list(tmp_path.glob("j.db*"))     # the fresh journal is not left behind


@pytest.mark.parametrize("opt,value,field", [
    ("--deadline-ms", "inf", "deadline-ms"), ("--commit-ms", "0", "commit-ms"),
    ("--dedupe-window", "-1", "dedupe-window"), ("--snapshot-every", "0", "snapshot-every")])
def test_serve_bad_numbers_name_their_option_and_make_no_journal(tmp_path, capsys, opt, value, field):
    db = tmp_path / "j.db"
    one_error_line(capsys, ["serve", "--plan", PLAN, "--chutes", CHUTES, "--port", "0",
                            "--journal", str(db), opt, value], field)
    assert not db.exists()


def test_serve_journal_folder_is_one_line(tmp_path, capsys):
    one_error_line(capsys, ["serve", "--plan", PLAN, "--chutes", CHUTES, "--port", "0",
                            "--journal", str(tmp_path)], str(tmp_path), "journal")


# -- sorter loadgen -----------------------------------------------------------------------

@pytest.mark.parametrize("argv,field", [
    (["--port", "99999"], "--port"), (["--rate", "nan"], "--rate"),
    (["--seconds", "inf"], "--seconds"), (["--connections", "0"], "--connections"),
    (["--warmup", "5", "--seconds", "1"], "--warmup")])
def test_loadgen_bad_options_name_the_option(capsys, argv, field):
    one_error_line(capsys, ["loadgen", *argv], field)


def test_loadgen_bad_plan_file_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)))
    one_error_line(capsys, ["loadgen", "--plan", str(junk), "--seconds", "1"], str(junk))
    one_error_line(capsys, ["loadgen", "--plan", str(tmp_path), "--seconds", "1"], str(tmp_path))


# -- sorter sweep ------------------------------------------------------------------------

def test_sweep_out_onto_a_file_fails_before_the_runs(tmp_path, tiny, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("x")
    one_error_line(capsys, ["sweep", str(tiny), "--vary", "loop.speed_mps=1.5,2", "--seeds", "1",
                            "--workers", "1", "--out", str(f)], str(f), "--out")


# -- scenarios: silent no-ops and misleading files ----------------------------------------

def test_scheduled_blockage_of_a_reject_chute_is_refused(tmp_path):
    """Reject chutes always take parcels in the simulation: a blockage of one changed nothing
    while the report said the chute was blocked."""
    from sorter.sim.scenario import load_scenario
    p = tmp_path / "s.toml"
    p.write_text(TINY + '[[blockages.scheduled]]\nchute = "R1"\nstart_h = 0\nduration_s = 600\n')
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert exc.value.field == "blockages.scheduled[0].chute" and "reject" in str(exc.value)
    p.write_text(TINY + '[[blockages.scheduled]]\nchute = "C001"\nstart_h = 0\nduration_s = 600\n')
    assert load_scenario(p).blockages.scheduled[0].chute == "C001"


def test_occupancy_heat_map_shows_reject_chutes_as_taking_parcels(tmp_path):
    """A reject chute whose container is being changed still takes parcels: its row is 0."""
    from sorter.report import occupancy_matrix
    from sorter.sim import simulate
    from sorter.sim.scenario import parse_scenario
    import tomllib
    doc = tomllib.loads(TINY)
    doc["scan"] = {"no_read_rate": 0.5}
    doc["loop"]["capacity"] = 2           # reject chutes hold 5x: 10 items
    doc["containers"] = {"change_time_s": 900, "reaction_time_s": 1}
    res = simulate(parse_scenario(doc, path=tmp_path / "x.toml"), seed=1)
    lr = res.loops[0]
    rej_k = [k for k, c in enumerate(lr.chute_ids) if str(c).startswith("R")]
    assert lr.raw["unavail_ticks"][:, rej_k].sum() > 0     # the engine did change their containers
    m, labels, _ = occupancy_matrix(res)
    rej = [i for i, lab in enumerate(labels) if lab.startswith("R")]
    assert len(rej) == len(rej_k)
    assert (m[rej] == 0).all()
    assert m.max() > 0                    # destination chutes did fill and close


def test_volumes_must_be_a_path_and_meet_the_plan(tmp_path):
    from sorter.sim.scenario import load_scenario
    base = TINY + '[destinations]\nmix = "csv"\n'
    p = tmp_path / "s.toml"
    p.write_text(base + "volumes = 5\n")
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert exc.value.field == "destinations.volumes"
    (tmp_path / "v.csv").write_text("destination,volume\nNOPE,5\nALSO-NOT,3\n")
    p.write_text(base + 'volumes = "v.csv"\n')
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert "v.csv" in str(exc.value) and "D0001" in str(exc.value)
    (tmp_path / "v.csv").write_text("destination,volume\nNOPE,5\nD0002,3\n")   # partly known: fine
    assert load_scenario(p).destinations.volumes == {"NOPE": 5.0, "D0002": 3.0}
    p.write_text(base + 'volumes = "."\n')
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert "Errno" not in str(exc.value) and exc.value.field == "destinations.volumes"


# -- the service: chute ids that cannot travel in a telegram --------------------------------

@pytest.mark.parametrize("cid", ["C|1", "Ç1", "C" * 65])
def test_serve_refuses_chute_ids_that_break_the_protocol(tmp_path, capsys, cid):
    """A DEST answer naming 'C|1' had 6 fields; 'Ç1' went out as non-ASCII bytes."""
    text = (seed_path("plan/demo_chutes.toml").read_text()
            .replace('id = "C001"', f'id = "{cid}"', 1))
    chutes = tmp_path / "c.toml"
    chutes.write_text(text)
    plan = tmp_path / "p.csv"
    plan.write_text(seed_path("plan/demo_plan.csv").read_text().replace("C001", cid))
    from sorter.service import open_service
    with pytest.raises(InputError) as exc:
        open_service(str(plan), str(chutes))
    assert exc.value.field == "chute.id" and "c.toml" in str(exc.value)


# -- scenario keys that used to be ignored without a word ---------------------------------

@pytest.mark.parametrize("old,new,field", [
    ("[loop]\n", "[loop]\nwave_plans = 3\n", "loop.wave_plans"),
    ("n_inducts = 1\n", "n_inducts = 1\n[[loop.induct]]\nposition_m = 2.0\n", "loop.n_inducts"),
    ("rate_per_hour = 1500\n", 'induct_rates_per_hour = [1500]\narrivals = "batched"\n',
     "wave[0].arrivals"),
    ("rate_per_hour = 1500\n", "induct_rates_per_hour = [1500]\nbatch_size = 40\n",
     "wave[0].arrivals"),
])
def test_ignored_scenario_keys_are_errors(tmp_path, old, new, field):
    from sorter.sim.scenario import load_scenario
    assert old in TINY
    p = tmp_path / "s.toml"
    p.write_text(TINY.replace(old, new, 1))
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert exc.value.field == field, str(exc.value)
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_generator_keys_beside_a_chute_file_are_errors(tmp_path):
    from sorter.sim.scenario import load_scenario
    text = seed_path("scenarios/default.toml").read_text().replace(
        'chutes = "../plan/demo_chutes.toml"', f'chutes = "{CHUTES}"\nn_chutes = 50').replace(
        '"../plan/', f'"{seed_path("plan")}/')
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    assert exc.value.field == "loop.n_chutes"
    p.write_text(text.replace("\nn_chutes = 50", ""))
    assert load_scenario(p).loops[0].layout.n_carriers == 667


def test_hub_wave_table_names_the_loop_of_a_plan_switch(tmp_path):
    from sorter.sim import simulate
    from sorter.sim.kpis import compute_kpis, format_table
    from sorter.sim.scenario import load_scenario
    (tmp_path / "b2.csv").write_text("destination,chutes\nD0001,C002\nD0002,C001\n")
    p = tmp_path / "hub.toml"
    p.write_text("""
[scenario]
shift_hours = 0.2
[[loop]]
name = "A"
length_m = 60
n_chutes = 12
n_inducts = 1
[[loop]]
name = "B"
length_m = 60
n_chutes = 12
n_inducts = 1
[[wave]]
start_h = 0
end_h = 0.1
rate_per_hour = 1000
[[wave]]
start_h = 0.1
end_h = 0.2
rate_per_hour = 1000
plan = { B = "b2.csv" }
""")
    k = compute_kpis(simulate(load_scenario(p), seed=2))
    line = [ln for ln in format_table(k).splitlines() if ln.strip().startswith("wave-2")][0]
    assert line.rstrip().endswith("B: b2")


# -- devices and runaway files: refused before they are read (they used to eat all memory) --

DEVZERO = "/dev/zero"


@pytest.mark.skipif(not __import__("os").path.exists(DEVZERO), reason="no /dev/zero on this system")
def test_device_files_are_refused_everywhere(tmp_path, capsys):
    from sorter import Sorter
    from sorter.sim.scenario import load_scenario
    from sorter.service.loadgen import load_destinations
    for call in (lambda: load_scenario(DEVZERO),
                 lambda: Sorter.from_files(DEVZERO, CHUTES),
                 lambda: Sorter.from_files(PLAN, DEVZERO),
                 lambda: Sorter.from_files(PLAN, CHUTES).switch_plan(DEVZERO),    # a PLAN telegram
                 lambda: load_destinations(DEVZERO)):
        with pytest.raises(InputError, match="not a regular file"):
            call()
    one_error_line(capsys, ["assign", "--plan", PLAN, "--chutes", CHUTES, "--events", DEVZERO,
                            "--out", str(tmp_path / "d.csv")], DEVZERO, "not a regular file")


def test_oversized_input_file_is_refused(tmp_path):
    from sorter.plan import read_input_bytes
    p = tmp_path / "big.csv"
    p.write_bytes(b"x" * 2000)
    with pytest.raises(InputError, match="too large"):
        read_input_bytes(p, limit=1000)
    assert read_input_bytes(p, limit=2000) == b"x" * 2000


def test_service_second_carriage_return_is_a_bad_char():
    """One trailing \\r is dropped (CRLF clients); a second one is a control character."""
    from sorter.service import open_service
    from sorter.service.server import start_server

    svc, _ = open_service(PLAN, CHUTES)

    async def go():
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"SCAN|1|P1|01422|0|1\r\nSCAN|2|P2|01422|0|1\r\r\nHB|3\n")
        await w.drain()
        answers = [(await r.readline()).decode() for _ in range(3)]
        w.close()
        server.close()
        await server.wait_closed()
        return answers

    loop = asyncio.new_event_loop()
    try:
        answers = loop.run_until_complete(go())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert answers[0] == "DEST|1|P1|C001|ok\n"
    assert answers[1].startswith("ERR|2|bad_char|")
    assert answers[2] == "ACK|3\n"


def test_chute_position_errors_name_the_chute_file(tmp_path):
    """A chute without position is a fault of the chute TOML; the error named the scenario."""
    from sorter.sim.scenario import load_scenario
    chutes = tmp_path / "my_chutes.toml"
    chutes.write_text(seed_path("plan/demo_chutes.toml").read_text().replace(
        "position = 22.4\n", "", 1))
    assert chutes.read_text() != seed_path("plan/demo_chutes.toml").read_text()
    text = seed_path("scenarios/default.toml").read_text().replace(
        'chutes = "../plan/demo_chutes.toml"', 'chutes = "my_chutes.toml"').replace(
        '"../plan/', f'"{seed_path("plan")}/')
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert exc.value.field == "chute.position" and exc.value.path == str(chutes)
    assert msg.startswith(str(chutes)) and str(p) in msg and "expected" in msg


def test_check_number_takes_whole_numbers_up_to_their_bound():
    """2**63 - 1 as a float rounds to 2**63, past the bound it equals: ints are compared as ints."""
    from sorter.errors import InputError, check_number
    big = 2**63 - 1
    assert check_number(big, field="seed", expected="<= 2**63 - 1", lo=0, hi=big, integer=True) == big
    with pytest.raises(InputError):
        check_number(big + 1, field="seed", expected="<= 2**63 - 1", lo=0, hi=big, integer=True)
    with pytest.raises(InputError):                 # too big for a float: still an InputError
        check_number(10**400, field="seed", expected="<= 2**63 - 1", lo=0, hi=big, integer=True)
