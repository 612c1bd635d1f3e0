import numpy as np
import pytest
from sklearn.model_selection import cross_val_score

from sklearn_mono import relative_l2_error, relative_l2_scorer

from .conftest import small_mono


def test_relative_l2_known_values():
    y = np.array([[3.0, 4.0], [1.0, 0.0]])
    pred = np.array([[3.0, 4.0], [1.0, 1.0]])
    # errors: 0 / 5 and 1 / 1
    assert relative_l2_error(y, pred) == pytest.approx(0.5)
    assert relative_l2_error(y, pred, sample_weight=[3, 1]) == pytest.approx(0.25)


def test_relative_l2_over_channels_and_grid():
    y = np.ones((2, 3, 4, 4))
    pred = y.copy()
    pred[0] *= 1.5
    assert relative_l2_error(y, pred) == pytest.approx(0.25)


def test_relative_l2_is_resolution_independent():
    x16, x64 = np.arange(16) / 16, np.arange(64) / 64
    y16, y64 = np.sin(2 * np.pi * x16)[None], np.sin(2 * np.pi * x64)[None]
    assert relative_l2_error(y16, 1.1 * y16) == pytest.approx(relative_l2_error(y64, 1.1 * y64))


def test_relative_l2_zero_truth_is_finite():
    assert np.isfinite(relative_l2_error(np.zeros((1, 3)), np.zeros((1, 3))))
    assert relative_l2_error(np.zeros((1, 3)), np.zeros((1, 3))) == 0.0


def test_relative_l2_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        relative_l2_error(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        relative_l2_error(np.ones((2, 3)), np.ones((3, 3)))


def test_scorer_is_minus_the_error(fitted_small, antiderivative_small):
    X, y = antiderivative_small
    expected = relative_l2_error(y, fitted_small.predict(X))
    assert relative_l2_scorer(fitted_small, X, y) == pytest.approx(-expected)


def test_score_is_r2_over_all_values(fitted_small, antiderivative_small):
    # 1 - SSE / SST, each grid point's values taken about their own mean;
    # as in scikit-learn's variance-weighted R², a point where y is constant
    # (here x = 0, where every antiderivative is 0) is left out
    X, y = antiderivative_small
    varies = y.std(axis=0) > 0
    assert not varies.all()
    sse = np.square(y - fitted_small.predict(X))[:, varies].sum()
    expected = 1 - sse / np.square(y - y.mean(axis=0))[:, varies].sum()
    assert fitted_small.score(X, y) == pytest.approx(expected)


def test_scorer_in_cross_val_score(antiderivative_small):
    X, y = antiderivative_small
    scores = cross_val_score(small_mono(2), X, y, cv=2, scoring=relative_l2_scorer)
    assert scores.shape == (2,)
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
