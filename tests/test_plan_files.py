"""Plan CSV / chute TOML loaders: good files load, bad files give one-line errors naming the place."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sorter import InputError, Sorter, load_chutes, load_plan, load_plan_routes
from sorter.resources import seed_path

GOOD_TOML = '''[plan]
name = "wave-1"
strategy = "least_loaded"
max_recirculation = 3
overflow = ["OV1"]

[reject]
no_read = "R1"
unknown_destination = "R1"
max_recirculation = "R2"
no_chute_available = "R2"
not_sortable = "R3"
late = "R1"

[[chute]]
id = "C001"
kind = "destination"
capacity = 40

[[chute]]
id = "C002"
kind = "destination"
capacity = 40

[[chute]]
id = "OV1"
kind = "overflow"
capacity = 80

[[chute]]
id = "R1"
kind = "reject"
capacity = 100

[[chute]]
id = "R2"
kind = "reject"
capacity = 100

[[chute]]
id = "R3"
kind = "reject"
capacity = 100
'''

GOOD_CSV = "destination,chutes\n10115,C001;C002\n20095,C002\n"


def write(tmp_path, toml=GOOD_TOML, plan=GOOD_CSV):
    t = tmp_path / "chutes.toml"
    p = tmp_path / "plan.csv"
    t.write_text(toml)
    p.write_text(plan)
    return p, t


def test_good_files_load(tmp_path):
    p, t = write(tmp_path)
    plan, table = load_plan(p, t)
    assert plan.routes == {"10115": ("C001", "C002"), "20095": ("C002",)}
    assert plan.strategy == "least_loaded" and plan.overflow == ("OV1",)
    assert plan.reject["not_sortable"] == "R3"
    s = Sorter.from_files(p, t)
    assert s.assign("10115").chute == "C001"


def test_demo_seed_is_realistic():
    plan, table = load_plan(seed_path("plan/demo_plan.csv"), seed_path("plan/demo_chutes.toml"))
    assert len(plan.routes) >= 200 and len(table) >= 200
    assert any(len(r) > 1 for r in plan.routes.values())


def _expect(tmp_path, match, line=None, toml=GOOD_TOML, plan=GOOD_CSV, which=None):
    p, t = write(tmp_path, toml, plan)
    with pytest.raises(ValueError) as exc:
        load_plan(p, t)
    msg = str(exc.value)
    assert "\n" not in msg
    assert re.search(match, msg), msg
    if which is not None:
        assert msg.startswith(str(p if which == "csv" else t)), msg
    if line is not None:
        assert f":{line}:" in msg, msg
    return msg


def test_duplicate_destination(tmp_path):
    _expect(tmp_path, "field 'destination'.*duplicate destination '10115'", line=3,
            plan="destination,chutes\n10115,C001\n10115,C002\n", which="csv")


def test_unknown_chute(tmp_path):
    _expect(tmp_path, "field 'chutes'.*unknown chute 'C999'", line=2,
            plan="destination,chutes\n10115,C999\n", which="csv")


def test_reject_chute_in_route(tmp_path):
    _expect(tmp_path, "reject chute", line=2, plan="destination,chutes\n10115,C001;R1\n",
            which="csv")


def test_empty_chute_list(tmp_path):
    _expect(tmp_path, "no chutes", line=3, plan="destination,chutes\n10115,C001\n20095,\n",
            which="csv")


def test_bad_header(tmp_path):
    _expect(tmp_path, "header.*expected 'destination,chutes'", line=1,
            plan="dest,chute\n10115,C001\n", which="csv")


def test_missing_reject_reason(tmp_path):
    toml = GOOD_TOML.replace('late = "R1"\n', "")
    _expect(tmp_path, "reject.late.*no reject chute for reason 'late'", line=7, toml=toml,
            which="toml")


def test_reject_reason_pointing_at_destination_chute(tmp_path):
    toml = GOOD_TOML.replace('late = "R1"', 'late = "C001"')
    _expect(tmp_path, "reject.late.*kind 'destination'", line=13, toml=toml, which="toml")


@pytest.mark.parametrize("cap", ["0", "-5", '"forty"', "4.5", "true"])
def test_bad_capacity(tmp_path, cap):
    toml = GOOD_TOML.replace("capacity = 80", f"capacity = {cap}")
    _expect(tmp_path, "capacity.*bad capacity", line=28, toml=toml, which="toml")


def test_duplicate_chute_id(tmp_path):
    toml = GOOD_TOML.replace('id = "C002"', 'id = "C001"')
    _expect(tmp_path, "duplicate chute id 'C001'", line=21, toml=toml, which="toml")


def test_bad_kind_and_strategy(tmp_path):
    _expect(tmp_path, "kind.*unknown kind 'chute'", line=17,
            toml=GOOD_TOML.replace('kind = "destination"', 'kind = "chute"', 1))
    _expect(tmp_path, "plan.strategy.*fill_first \\| round_robin \\| least_loaded", line=3,
            toml=GOOD_TOML.replace('"least_loaded"', '"random"'))


def test_toml_syntax_error_names_line(tmp_path):
    _expect(tmp_path, "not valid TOML", line=4, toml=GOOD_TOML.replace("max_recirculation = 3",
                                                                       "max_recirculation = = 3"))


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        load_chutes(tmp_path / "nope.toml")


# ---------------------------------------------------------------------- fuzzing
FUZZ_COUNT = {"toml": 0, "csv": 0}
_ALPHABET = st.sampled_from(list("abcdefgh[]=\"#.,;\n 0123456789-_CRO") + ["\x00", "é", "\t"])


def _mutate(text, data):
    """Random edits of a valid file: deletions, insertions, duplicated and swapped lines."""
    lines = text.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.integers(0, 3))
        i = data.draw(st.integers(0, max(len(lines) - 1, 0)))
        if not lines:
            break
        if op == 0:
            del lines[i]
        elif op == 1:
            j = data.draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + data.draw(st.text(_ALPHABET, max_size=6)) + lines[i][j + 1:]
        elif op == 2:
            lines.insert(i, lines[data.draw(st.integers(0, len(lines) - 1))])
        else:
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


@pytest.mark.filterwarnings("ignore:.*is not one of:UserWarning")   # mutated keys: expected
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_toml_loader_only_clear_errors(tmp_path, data):
    """400 mutated chute TOML files: each loads or fails with a one-line ValueError naming the file."""
    FUZZ_COUNT["toml"] += 1
    p, t = write(tmp_path, toml=_mutate(GOOD_TOML, data))
    try:
        load_plan(p, t)
    except InputError as exc:
        msg = str(exc)
        # a mutated chute id can make the (valid) plan CSV name a chute the TOML lost: then
        # the error rightly points at the CSV line
        assert "\n" not in msg and msg.startswith((str(t), str(p))), msg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_csv_loader_only_clear_errors(tmp_path, data):
    """400 mutated plan CSV files: each loads or fails with a one-line ValueError naming file and line."""
    FUZZ_COUNT["csv"] += 1
    base = GOOD_CSV + "".join(f"{30000 + i},C00{1 + i % 2};OV1\n" for i in range(5))
    p, t = write(tmp_path, plan=_mutate(base, data))
    try:
        load_plan(p, t)
    except InputError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(str(p)), msg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path, raw):
    """200 files of random bytes as TOML and as CSV: only InputError."""
    t = tmp_path / "chutes.toml"
    t.write_bytes(raw)
    with pytest.raises(InputError):
        load_chutes(t)
    p, t2 = write(tmp_path)
    p.write_bytes(raw)
    table, _ = load_chutes(t2)
    with pytest.raises(InputError):
        load_plan_routes(p, table)


def test_fuzz_counts_reported():
    """Runs after the fuzz tests (file order) and reports how many inputs they tried."""
    print(f"\nfuzzed loaders with {FUZZ_COUNT['toml']} TOML and {FUZZ_COUNT['csv']} CSV inputs")
    assert FUZZ_COUNT["toml"] >= 100 and FUZZ_COUNT["csv"] >= 100


def test_plan_key_typo_is_refused_and_other_unknown_keys_warn(tmp_path):
    """A near-miss of a [plan] key (its default would silently stay in force) is an error
    naming the line and the key meant; a key far from every known one is kept going with a
    warning naming the file and line (tools may add their own keys)."""
    p = tmp_path / "c.toml"
    p.write_text(GOOD_TOML.replace("max_recirculation = 3", "max_recirculations = 5"))
    with pytest.raises(InputError) as e:
        load_chutes(p)
    assert e.value.line == 4 and "max_recirculation" in str(e.value)
    assert "plan.max_recirculations" in str(e.value)
    p.write_text(GOOD_TOML.replace("strategy = ", "stratgy = "))
    with pytest.raises(InputError, match="'strategy'"):
        load_chutes(p)
    p.write_text(GOOD_TOML.replace("max_recirculation = 3", "max_recirculation = 3\nwms_id = 7"))
    with pytest.warns(UserWarning, match=r"c\.toml:5: key 'wms_id'"):
        _, settings = load_chutes(p)
    assert settings.max_recirculation == 3
