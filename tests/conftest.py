"""Test-run settings. Hypothesis explores new random examples on every local run; CI
(``.ci/run`` sets ``HYPOTHESIS_PROFILE=ci``) runs a fixed, derandomized set so that a gate does
not turn red on an example no one has seen locally. A failure found locally becomes an explicit
regression test."""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


#: Most test processes ``-n auto`` starts (pyproject's addopts): the suite is CPU-bound with
#: subprocesses of its own (CLI runs, Dask clusters, process pools), so more processes than
#: cores only add contention, and each worker holds its own compiled kernels in memory.
MAX_TEST_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core this process may use, at most :data:`MAX_TEST_WORKERS`
    (``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides, as in pytest-xdist)."""
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                      # not Linux
        cores = os.cpu_count() or 1
    files = {a.split("::")[0] for a in config.args}
    if files and all(f.endswith(".py") for f in files):     # named test files only
        if len(files) == 1:
            return 0            # one file goes to one worker anyway (``--dist loadfile``): run here
        cores = min(cores, len(files))
    return max(1, min(cores, MAX_TEST_WORKERS))
