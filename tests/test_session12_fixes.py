"""Session 12 fixes outside the QA files: padded telegram fields, the loop pitch message."""
from __future__ import annotations

import pytest

from sorter.errors import InputError
from sorter.layout.loop import LoopSorter
from sorter.service.protocol import ChuteState, Container, Discharged, Scan, parse_line


@pytest.mark.parametrize("line, want", [
    (b"SCAN|1|P1|A   |0|1", "A"),          # fixed-width PLC field, padded right
    (b"SCAN|1|P1|  A|0|1", "A"),
    (b"SCAN|1|P1|     |0|1", None),         # spaces only: a no-read, as an empty field
    (b"SCAN|1|P1|A B|0|1", "A B"),          # inner spaces stay
])
def test_scan_destination_padding_is_dropped(line, want):
    t = parse_line(line)
    assert isinstance(t, Scan) and t.destination == want


def test_chute_fields_padding_is_dropped():
    assert parse_line(b"CHUTE|2| C001 |full") == ChuteState(2, "C001", "full")
    assert parse_line(b"DISCHARGED|3|P1|C001  ") == Discharged(3, "P1", "C001")
    assert parse_line(b"CONTAINER|4|  C9") == Container(4, "C9")
    with pytest.raises(Exception) as e:
        parse_line(b"CHUTE|5|   |full")
    assert e.value.code == "bad_chute"


def test_loop_pitch_error_names_the_half_loop_bound():
    with pytest.raises(InputError) as e:
        LoopSorter.generate(length_m=1.0, pitch_m=0.8)
    assert e.value.field == "loop.pitch_m" and "half the loop's length_m (0.5)" in str(e.value)
