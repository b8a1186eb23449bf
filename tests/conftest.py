"""Test-run settings. Hypothesis explores new random examples on every local run; CI
(``.ci/run`` sets ``HYPOTHESIS_PROFILE=ci``) runs a fixed, derandomized set so that a gate does
not turn red on an example no one has seen locally. A failure found locally becomes an explicit
regression test."""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
