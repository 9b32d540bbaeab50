"""Shared test settings: float64 on, strict rank promotion, explicit keys."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import ionspike  # noqa: E402,F401  (sets x64 too)


@pytest.fixture
def getkey():
    keys = iter(jax.random.split(jax.random.key(1234), 1000))
    return lambda: next(keys)


def shared_data_dir():
    """../shared/data next to the repository, if present."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "shared", "data"))
