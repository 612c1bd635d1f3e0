"""Bad input raises ValueError or TypeError with a message, and a fitted model survives it."""

import numpy as np
import pytest
import torch

from sklearn_mono import MoNORegressor

from .conftest import SMALL


def _with(X, index, value):
    X = X.astype(object) if isinstance(value, str) else X.copy()
    X[index] = value
    return X


BAD_PREDICT = [
    ("nan", lambda X: _with(X, (0, 0), np.nan), ValueError, "Input X contains NaN"),
    ("inf", lambda X: _with(X, (1, 3), np.inf), ValueError, "Input X contains infinity"),
    ("1-D", lambda X: X[0], ValueError, "Expected 2D array, got 1D array"),
    ("features", lambda X: X[:, :10], ValueError, "X has 10 features, but MoNORegressor is expecting 16"),
    ("channels", lambda X: np.stack([X, X], axis=1), ValueError, "2 input channel"),
    ("too many axes", lambda X: X[:, None, None, :], ValueError, "2 or 3 dimensions"),
    ("strings", lambda X: _with(X, (0, 0), "a"), ValueError, "could not convert string to float"),
    ("complex", lambda X: X + 1j, ValueError, "Complex data not supported"),
    ("empty", lambda X: X[:0], ValueError, "0 sample"),
    ("coarse grid for MLP", None, ValueError, "one resolution only"),
]


@pytest.mark.parametrize("name, make, error, match", BAD_PREDICT, ids=[b[0] for b in BAD_PREDICT])
def test_bad_predict_input_leaves_model_usable(name, make, error, match, fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    model = fitted_small
    if make is None:
        model = MoNORegressor(n_leaves=2, expert="mlp", **SMALL).fit(*antiderivative_small)
        bad = X[:, None, ::2]
    else:
        bad = make(X)
    before = model.predict(X)
    state = dict(vars(model))
    with pytest.raises(error, match=match):
        model.predict(bad)
    assert vars(model).keys() == state.keys()
    assert all(vars(model)[k] is state[k] for k in state)
    np.testing.assert_array_equal(model.predict(X), before)


BAD_FIT = [
    ("nan in y", lambda X, y: (X, _with(y, (0, 0), np.nan)), ValueError, "Input y contains NaN"),
    ("lengths", lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
    ("y grid", lambda X, y: (X, y[:, None, :8, None]), ValueError, "does not fit the grid"),
    ("no y", lambda X, y: (X, None), ValueError, "requires y to be passed"),
    ("too few samples", lambda X, y: (X[:7], y[:7]), ValueError, "n_samples=7 is too few for n_leaves=4"),
    ("object", lambda X, y: (_with(X, (0, 0), {"a": 1}), y), TypeError, "float"),
    ("grid_shape", lambda X, y: (X, y), ValueError, "cannot be folded"),
    ("device", lambda X, y: (X, y), ValueError, "device must be"),
    ("expert", lambda X, y: (X, y), TypeError, "subclass of torch.nn.Module"),
]
_BAD_PARAMS = {"grid_shape": {"grid_shape": (5, 5)}, "device": {"device": "tpu"}, "expert": {"expert": int}}


@pytest.mark.parametrize("name, make, error, match", BAD_FIT, ids=[b[0] for b in BAD_FIT])
def test_bad_fit_input_keeps_the_previous_fit(name, make, error, match, antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    before = model.predict(X)
    experts = model.experts_
    model.set_params(**_BAD_PARAMS.get(name, {}))
    with pytest.raises(error, match=match):
        model.fit(*make(X, y))
    assert model.experts_ is experts and model.n_features_in_ == 16
    model.set_params(grid_shape=None, device="cpu", expert="fno")
    np.testing.assert_array_equal(model.predict(X), before)


def test_unfitted_model_says_so(antiderivative_small):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted yet"):
        MoNORegressor().predict(antiderivative_small[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_cuda(antiderivative_small):
    with pytest.raises(ValueError, match="CUDA is not available"):
        MoNORegressor(n_leaves=1, device="cuda").fit(*antiderivative_small)


def test_invalid_parameter_values(antiderivative_small):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="n_leaves"):
        MoNORegressor(n_leaves=0).fit(*antiderivative_small)
    with pytest.raises(InvalidParameterError, match="encoder"):
        MoNORegressor(encoder="wavelet").fit(*antiderivative_small)


def test_invalid_settings_found_before_training(fitted_small, antiderivative_small):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = antiderivative_small
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        MoNORegressor(n_jobs=0).fit(X, y)
    fitted_small.set_params(predict_batch_size=0)
    try:
        with pytest.raises(ValueError, match="predict_batch_size must be a positive integer"):
            fitted_small.predict(X)
    finally:
        fitted_small.set_params(predict_batch_size=1024)


class _IgnoresChannels(torch.nn.Module):
    def __init__(self, in_channels, out_channels, grid_shape, pooled=False):
        super().__init__()
        self.map = torch.nn.Conv1d(in_channels, 3, 1)  # wrong number of outputs

    def forward(self, x):
        return self.map(x)


def test_custom_expert_with_wrong_output_shape(antiderivative_small):
    X, y = antiderivative_small
    with pytest.raises(ValueError, match=r"returned an output of shape \(80, 3, 16\)"):
        MoNORegressor(n_leaves=2, expert=_IgnoresChannels, **SMALL).fit(X, y)


def test_fast_and_full_validation_agree(fitted_small, antiderivative_small):
    # Plain float arrays skip scikit-learn's checks; every other form of the
    # same query goes through them and must give the same predictions, and a
    # plain array that fails any check still gets scikit-learn's message.
    X = antiderivative_small[0][:5]
    expected = fitted_small.predict(X)
    np.testing.assert_array_equal(fitted_small.predict(X.tolist()), expected)
    np.testing.assert_array_equal(fitted_small.predict(np.asfortranarray(X)), expected)
    np.testing.assert_allclose(
        fitted_small.predict(X.astype(np.float32)), expected, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="NaN"):
        fitted_small.predict(_with(X, (0, 0), np.nan))
    with pytest.raises(ValueError, match="features, but MoNORegressor is expecting"):
        fitted_small.predict(X[:, :-1])
    with pytest.raises(ValueError, match="0 sample"):
        fitted_small.predict(X[:0])
