"""QA session 17 (sweep API): capacity sweeps and floor sweeps from Python, and their statistics.

Statistics are checked against closed forms (df = 1 is Cauchy, df = 2 has
t = (2p - 1) / sqrt(2 p (1 - p))) and published table values; the API with the argument
shapes a notebook passes (numpy seeds and worker counts, scalars, sets); the summary
against a recomputation from the per-run table; the result against a hand-made scenario.
"""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from sorter.errors import InputError
from sorter.floor_sweep import floor_sweep
from sorter.resources import seed_path
from sorter.sweep import capacity_sweep, mean_ci, t_quantile

SMALL = seed_path("scenarios/small.toml")
FLOOR = seed_path("floors/small_12x20.txt")
SHORT = {"scenario.shift_hours": 0.05}


@pytest.fixture(scope="module")
def tiny():
    return capacity_sweep(SMALL, {"loop.speed_mps": [2.0, 2.5]}, seeds=3, overrides=SHORT,
                          n_workers=1)


# ------------------------------------------------------------------------------ statistics

@pytest.mark.parametrize("p", [0.9, 0.975, 0.995, 0.9999])
def test_t_quantile_closed_forms(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=5e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.776, abs=5e-4)
    assert t_quantile(0.975, 30) == pytest.approx(2.042, abs=5e-4)


def test_t_quantile_median_is_zero():
    """Was 4.5e-13 (a bisection's leftover)."""
    assert t_quantile(0.5, 3) == 0.0


@pytest.mark.parametrize("p, df, field", [
    (0.975, math.inf, "df"), (0.975, math.nan, "df"), (0.975, True, "df"), (0.975, 1.5, "df"),
    ("0.9", 3, "p"), (1.0, 3, "p"), (math.nan, 3, "p")])
def test_t_quantile_bad_arguments_name_the_argument(p, df, field):
    """Were a bare OverflowError (inf), ValueError (nan), TypeError ("0.9"), df=True taken
    as 1, and every error named 'p'."""
    with pytest.raises(InputError) as ei:
        t_quantile(p, df)
    assert ei.value.field == field


def test_t_quantile_takes_numpy_numbers():
    assert t_quantile(np.float64(0.975), np.int64(4)) == pytest.approx(2.7764, abs=1e-4)


def test_mean_ci_one_two_and_no_values():
    assert mean_ci([5.0])[0] == 5.0 and math.isnan(mean_ci([5.0])[1])
    assert all(math.isnan(x) for x in mean_ci([]))
    assert all(math.isnan(x) for x in mean_ci([None, math.nan]))
    m, h = mean_ci([1.0, 3.0])                  # s = sqrt(2), h = t(0.975, 1) * s / sqrt(2)
    assert m == 2.0 and h == pytest.approx(12.7062, abs=1e-4)


@pytest.mark.parametrize("x", [0.1, 1 / 3, 7.1, 1e300, -2.5e-7])
def test_mean_ci_of_a_constant_is_itself_with_zero_width(x):
    """Was: [0.1] * 3 -> mean 0.10000000000000002, half-width 4.2e-17 (a fixed KPI such as
    shift_hours showed so in summary.csv)."""
    assert mean_ci([x] * 3) == (x, 0.0)


def test_mean_ci_skips_every_kind_of_nan():
    """Was: a numpy float32 NaN (not a Python float) made the mean NaN."""
    assert mean_ci([np.float32("nan"), 1.0, None, 3.0, np.float64("nan")]) == mean_ci([1.0, 3.0])
    assert mean_ci(np.array([1.0, np.nan, 3.0])) == mean_ci([1.0, 3.0])


@pytest.mark.parametrize("xs", [[1e308, 1e308], [1e200, 2e200, 3e200],
                                [1.7e308, 1.6e308], [1e308, -1e308, 1e308]])
def test_mean_ci_of_huge_values_does_not_overflow(xs):
    """Was OverflowError (fsum, or the squared deviations) from ~1e154."""
    m, h = mean_ci(xs)
    exact = math.fsum(x / 4 for x in xs) / len(xs) * 4
    assert m == pytest.approx(exact, rel=1e-12)
    if len(set(xs)) > 1 and math.isfinite(h):
        sd = statistics.stdev([x / 1e300 for x in xs]) * 1e300
        assert h == pytest.approx(t_quantile(0.975, len(xs) - 1) * sd / math.sqrt(len(xs)),
                                  rel=1e-9)


def test_mean_ci_ordinary_values_unchanged():
    xs = [10.0, 12.0, 14.0]
    m, h = mean_ci(xs)
    assert m == 12.0 and h == pytest.approx(4.968, abs=1e-3)
    assert mean_ci([1e154, 3e154]) == pytest.approx((2e154, 12.7062 * 1e154), rel=1e-5)


@pytest.mark.parametrize("level", [0, -0.1, 1.0, 1.5, True, "0.9", math.nan])
def test_mean_ci_bad_level_names_level(level):
    """Was: 0 and -0.1 gave a zero or negative width; the others named the quantile's 'p'
    (or a bare TypeError)."""
    with pytest.raises(InputError) as ei:
        mean_ci([1.0, 2.0, 3.0], level)
    assert ei.value.field == "level"


@pytest.mark.parametrize("values", ["123", 5, ["1", 2], [10 ** 400]])
def test_mean_ci_bad_values_are_refused(values):
    """Was: a string's characters averaged ("123" -> 2.0), an int past float a bare
    OverflowError."""
    with pytest.raises(InputError) as ei:
        mean_ci(values)
    assert ei.value.field == "values"


# ------------------------------------------------------------------------------ summary

@pytest.mark.parametrize("level, suffix", [(0.95, "ci95"), (0.9, "ci90"), (0.975, "ci97_5"),
                                           (0.995, "ci99_5"), (0.999, "ci99_9")])
def test_summary_column_names_the_level(tiny, level, suffix):
    """Was: the level rounded to a whole percent: 0.975 -> ci98, 0.995 and 0.999 -> ci100."""
    s = tiny.summary(level)[0]
    assert f"sorted_per_hour_{suffix}" in s
    assert tiny.summary_table(level).column_names == list(s)


def test_summary_bad_level_is_named(tiny):
    with pytest.raises(InputError) as ei:
        tiny.summary("0.9")
    assert ei.value.field == "level"


def test_summary_agrees_with_the_table_and_fixed_kpis_are_exact(tiny):
    rows = tiny.table().to_pylist()
    for s in tiny.summary():
        rs = [r for r in rows if r["point"] == s["point"]]
        for k in ("sorted_per_hour", "recirculation_pct", "offered"):
            xs = [r[k] for r in rs]
            assert s[f"{k}_mean"] == pytest.approx(statistics.fmean(xs), rel=1e-12)
            assert s[f"{k}_ci95"] == pytest.approx(
                4.302653 * statistics.stdev(xs) / math.sqrt(3), rel=1e-6, abs=1e-9)
        assert s["shift_hours_mean"] == 0.05 and s["shift_hours_ci95"] == 0.0


def test_plot_unknown_kpi_names_the_field(tiny, tmp_path):
    """Was KeyError 'sorted_per_hr_mean' from inside the plotting, after making the folder."""
    with pytest.raises(InputError, match="sorted_per_hour") as ei:
        tiny.plot(tmp_path / "sub" / "x.png", kpi="sorted_per_hr")
    assert ei.value.field == "kpi" and not (tmp_path / "sub").exists()


# ------------------------------------------------------------------------------ argument shapes

@pytest.mark.parametrize("seeds, expect", [
    (np.int64(2), [11, 12]), (np.array([3, 4]), [3, 4]), (list(np.arange(2)), [0, 1]),
    (range(5, 7), [5, 6]), ((8, 9), [8, 9])])
def test_numpy_seeds_are_taken(seeds, expect):
    """Were refused: 'bad seeds np.int64(2)', 'bad seed np.int64(0) (expected integers ...)'."""
    res = capacity_sweep(SMALL, {"loop.speed_mps": [2.0]}, seeds=seeds, overrides=SHORT,
                         n_workers=np.int64(1))
    assert res.seeds == expect and all(type(s) is int for s in res.seeds)
    assert [r["seed"] for r in res.rows] == expect


def test_numpy_seeds_and_workers_on_a_floor():
    res = floor_sweep(FLOOR, {"robots": np.array(4)}, seeds=np.arange(2),
                      overrides={"steps": 20}, n_workers=np.int64(1))
    assert res.seeds == [0, 1] and res.points == [{"robots": 4}] and res.n_workers == 1


@pytest.mark.parametrize("values, words", [
    (2.0, "one value 2.0"), ("zipf", "one value 'zipf'"), ({2.0, 2.5}, "a set"),
    ((x for x in [2.0]), "a generator"), ([], "no values")])
def test_capacity_sweep_says_what_it_got_for_a_bad_values_list(values, words):
    """Was "no values for 'loop.speed_mps'" for a scalar, a set or a generator too."""
    with pytest.raises(InputError, match=words) as ei:
        capacity_sweep(SMALL, {"loop.speed_mps": values}, seeds=1, overrides=SHORT, n_workers=1)
    assert ei.value.field == "loop.speed_mps" and "overrides" in ei.value.expected


def test_capacity_sweep_bad_base_dir_is_named():
    """Was a bare TypeError from Path()."""
    with pytest.raises(InputError) as ei:
        capacity_sweep(SMALL, {"loop.speed_mps": [2.0]}, seeds=1, base_dir=5, n_workers=1)
    assert ei.value.field == "base_dir"


def test_floor_sweep_refuses_a_set_of_values():
    """Was taken in the set's order, which for strings changes from process to process."""
    with pytest.raises(InputError, match="set") as ei:
        floor_sweep(FLOOR, {"mix": {"zipf", "uniform"}}, seeds=1, overrides={"steps": 20},
                    n_workers=1)
    assert ei.value.field == "mix"
