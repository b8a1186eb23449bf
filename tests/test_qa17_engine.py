"""Session 17 QA of the chute engine's files: errors name the line where the file goes wrong."""
from __future__ import annotations

import pytest

from sorter import Sorter
from sorter.errors import InputError
from sorter.plan import load_chutes

_REJECT = "\n".join(f'{r} = "R"' for r in ("no_read", "unknown_destination", "max_recirculation",
                                           "no_chute_available", "not_sortable", "late"))
_CHUTES = f"""[plan]
name = "wave-1"

[reject]
{_REJECT}

[[chute]]
id = "C1"

[[chute]]
id = "R"
kind = "reject"
"""


@pytest.mark.parametrize("extra, line", [
    ("\n[extras]\nfoo = 1\n", 19),                # a table of its own after the chutes
    ("\n[[ sorter ]]\nfoo = 1\n", 19),            # an array of tables
    ("\n[\"x\".y]\nfoo = 1\n", 19),              # quoted, dotted header
])
def test_an_unknown_table_in_a_chute_file_names_its_line(tmp_path, extra, line):
    # was: "chutes.toml: field 'extras': unknown table [extras]", no line to look at
    p = tmp_path / "chutes.toml"
    p.write_text(_CHUTES + extra)
    with pytest.raises(InputError) as e:
        load_chutes(p)
    assert e.value.line == line, str(e.value)
    assert f"chutes.toml:{line}:" in str(e.value) and "unknown table" in str(e.value)


def test_an_unknown_top_level_key_before_the_tables_names_its_line(tmp_path):
    p = tmp_path / "chutes.toml"
    p.write_text("# a sorter\nsite.name = \"north\"\n" + _CHUTES)
    with pytest.raises(InputError) as e:
        load_chutes(p)
    assert e.value.line == 2 and e.value.field == "site", str(e.value)


def test_a_nul_byte_in_a_plan_names_its_line(tmp_path):
    # was: "plan.csv: contains NUL bytes": which of 10,000 rows?
    (tmp_path / "chutes.toml").write_text(_CHUTES)
    plan = tmp_path / "plan.csv"
    plan.write_bytes(b"destination,chutes\n10115,C1\n20095,C\x001\n30001,C1\n")
    with pytest.raises(InputError) as e:
        Sorter.from_files(plan, tmp_path / "chutes.toml")
    assert e.value.line == 3, str(e.value)
    assert "plan.csv:3:" in str(e.value) and "NUL" in str(e.value)
    s = Sorter.from_files(_ok_plan(tmp_path), tmp_path / "chutes.toml")
    with pytest.raises(InputError) as e:            # a switch between waves says the same
        s.switch_plan(plan)
    assert e.value.line == 3, str(e.value)


def _ok_plan(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_text("destination,chutes\n10115,C1\n")
    return p


# The same chute file as a generator may write it: dotted keys, inline tables, an inline
# array of chutes (valid TOML, read the same by tomllib).
_INLINE = """plan.name = "wave-1"
plan.strategy = "round_robin"
plan.overflow = ["OV1"]
reject = { no_read = "R", unknown_destination = "R", max_recirculation = "R", no_chute_available = "R", not_sortable = "R", late = "R" }
chute = [
  { id = "C1", capacity = 3 },   # a comment { with braces ]
  { id = "C2" }, { id = "OV1", kind = "overflow" },
  { id = "R", kind = "reject" },
]
"""


def test_an_inline_chute_file_loads():
    import tomllib
    from sorter.plan import parse_chutes_doc
    table, settings = parse_chutes_doc(tomllib.loads(_INLINE), text=_INLINE)
    assert table.ids == ["C1", "C2", "OV1", "R"] and settings.strategy == "round_robin"


@pytest.mark.parametrize("old, new, line, field", [
    ('plan.strategy = "round_robin"', 'plan.strategy = "round_robn"', 2, "plan.strategy"),
    ('plan.overflow = ["OV1"]', 'plan.overflow = ["OV9"]', 3, "plan.overflow"),
    ('late = "R" }', 'late = "C1" }', 4, "reject.late"),
    ('{ id = "C2" }', '{ id = "C2", capacity = 0 }', 7, "capacity"),
    ('{ id = "R", kind = "reject" }', '{ id = "R", kind = "rejct" }', 8, "kind"),
    ('{ id = "C2" }', '{ id = "C2", colour = "red" }', 7, "colour"),
    ('{ id = "C2" }', '{ id = "C1" }', 7, "id"),
])
def test_errors_in_inline_tables_and_dotted_keys_name_their_line(tmp_path, old, new, line, field):
    # was: "chutes.toml: field 'capacity': chute 'C2': bad capacity 0 ...", no line
    assert old in _INLINE
    p = tmp_path / "chutes.toml"
    p.write_text(_INLINE.replace(old, new, 1))
    with pytest.raises(InputError) as e:
        load_chutes(p)
    assert (e.value.line, e.value.field) == (line, field), str(e.value)
    assert f"chutes.toml:{line}:" in str(e.value)
