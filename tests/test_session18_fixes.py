"""Regression tests for the fixes of session 18 (each fails on the code before its fix)."""
from __future__ import annotations

import pytest

from sorter.agv import make_run, simulate
from sorter.errors import InputError
from sorter.layout import Floor, sortation_floor


def test_simulate_refuses_a_progress_that_is_not_callable():
    """Was: `simulate(..., progress=5)` ran the first step, then failed with "'int' object
    is not callable" and no field named."""
    f = sortation_floor(12, 20, n_inducts=2, n_chutes=4, seed=0)
    with pytest.raises(InputError, match="progress") as e:
        simulate(*make_run(f, 4, seed=0), 3, progress=5)
    assert e.value.field == "progress" and "callable" in str(e.value)
    seen = []
    simulate(*make_run(f, 4, seed=0), 3, progress=seen.append)
    assert seen == [0, 1, 2]


def test_a_floor_named_none_is_called_floor():
    """Was: Floor(..., name=None) was named 'None' in reports and repr."""
    f = Floor([[1, 1], [1, 1]], name=None)
    assert f.name == "floor" and "'None'" not in repr(f)
    assert Floor([[1, 1]], name="bay 3").name == "bay 3"
