"""Shared test settings: strict rank promotion, explicit keys.

JAX's 64-bit mode is NOT switched on here: ionspike's entry points choose their own precision
(ionspike.precision), and the tests must see them as a user does. A test that calls a low-level
law in float64 wraps it in ``with precision.float64():``."""

import os
import tempfile

# One persistent XLA compilation cache for the whole run (both xdist workers and every `ionspike`
# subprocess a test starts inherit it): the same simulation and training kernels are compiled by
# dozens of tests, and each CLI subprocess would compile them afresh. Set before JAX is imported;
# entries are keyed by the program and JAX's version, so a stale entry is never used.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ionspike-tests-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

import ionspike  # noqa: E402,F401
from ionspike import map_limit  # noqa: E402


@pytest.fixture(autouse=True)
def _release_compiled_programs_before_the_map_limit():
    """A test worker compiles thousands of distinct programs (every shape and option the suite tries),
    far more than a user's process, and XLA:CPU keeps memory mappings for each. Without this, one worker
    of every full run (three here, one in CI) died near the end with SIGSEGV or SIGABRT while
    (de)serialising an executable for the persistent cache, at 65 086 mappings against the default
    vm.max_map_count of 65 530. ionspike's own guard
    (simulate calls it before compiling a new program, train before training) acts at 3/4 of the limit; between tests the caches
    are dropped at 1/2, silently: a test that needs a dropped program reads it back from the persistent
    compilation cache."""
    yield
    map_limit.release_if_near_limit(0.5, warn=False)


@pytest.fixture
def getkey():
    keys = iter(jax.random.split(jax.random.key(1234), 1000))
    return lambda: next(keys)


def shared_data_dir():
    """../shared/data next to the repository, if present."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "shared", "data"))


def shared_data(name):
    """Path of a measured-data file in ../shared/data (or $IONSPIKE_SHARED_DATA). Absent: the test
    fails with a clear message under CI=true (CI must have the data) and is skipped otherwise."""
    from pathlib import Path

    root = Path(os.environ.get("IONSPIKE_SHARED_DATA") or shared_data_dir())
    path = root / name
    if not path.is_file():
        msg = (f"measured data {path} is absent (expected ../shared/data next to the repository, "
               "or set IONSPIKE_SHARED_DATA)")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path
