"""Offline tasks of the network layer: shapes, splits, determinism, no global-RNG side effects."""

import numpy as np
import pytest

from ionspike.errors import ParameterError
from ionspike.network import tasks


def test_mnist1d_is_the_published_split_and_leaves_numpy_state_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    t = tasks.mnist1d()
    assert np.array_equal(np.random.get_state()[1], before)
    assert t.x_train.shape == (4000, 40, 1) and t.x_test.shape == (1000, 40, 1)
    assert t.x_train.dtype == np.float32 and t.y_train.dtype == np.int32
    assert set(np.unique(t.y_train)) == set(range(10))
    assert np.all(np.bincount(t.y_train) > 350)                    # ~400 per class
    x = np.concatenate([t.x_train, t.x_test])
    assert abs(x.mean()) < 1e-3 and x.std() == pytest.approx(1.0, abs=1e-3)
    again = tasks.mnist1d()
    np.testing.assert_array_equal(t.x_test, again.x_test)          # deterministic
    assert not np.array_equal(tasks.mnist1d(seed=7).x_test, t.x_test)


def test_digits_row_by_row_stratified():
    t = tasks.digits()
    assert t.steps == 8 and t.channels == 8
    assert t.x_train.shape[0] + t.x_test.shape[0] == 1797
    assert t.x_test.shape[0] == pytest.approx(0.2 * 1797, abs=10)
    assert 0.0 <= t.x_train.min() and t.x_train.max() <= 1.0
    share = np.bincount(t.y_test) / t.y_test.size
    assert np.all(np.abs(share - 0.1) < 0.02)                       # stratified


def test_working_memory_cue_delay_recall():
    t = tasks.working_memory(n_train=50, n_test=10, n_cues=3, cue_steps=4, delay_steps=30, recall_steps=2, noise=0.0)
    assert t.x_train.shape == (50, 36, 4)
    x, y = t.x_train, t.y_train
    assert np.all(x[np.arange(50), 0, y] == 1.0) and np.all(x[:, :4, :3].sum(axis=2) == 1.0)   # one cue channel
    assert np.all(x[:, 4:34, :] == 0.0)                                                          # silent delay
    assert np.all(x[:, 34:, 3] == 1.0) and np.all(x[:, :34, 3] == 0.0)                          # go at the end


def test_unknown_task_and_bad_sizes_are_refused():
    with pytest.raises(ParameterError, match="unknown"):
        tasks.load("cifar")
    with pytest.raises(ParameterError, match="delay_steps"):
        tasks.working_memory(delay_steps=-1)
    with pytest.raises(ParameterError, match="test_fraction"):
        tasks.digits(test_fraction=1.5)
