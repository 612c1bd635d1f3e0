"""Bad input raises ValueError or TypeError with a message, and a fitted model survives it."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono.experts import MLP

from .conftest import small_expert, small_mono


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


@pytest.fixture(scope="module")
def fitted_mlp(antiderivative_small):
    expert = NeuralOperatorRegressor(module=MLP, module__width=8, module__n_layers=2, max_epochs=2)
    return small_mono(2, expert=expert, leaf_epochs=2).fit(*antiderivative_small)


@pytest.mark.parametrize("name, make, error, match", BAD_PREDICT, ids=[b[0] for b in BAD_PREDICT])
def test_bad_predict_input_leaves_model_usable(
    name, make, error, match, fitted_small, fitted_mlp, antiderivative_small
):
    X, _ = antiderivative_small
    if make is None:
        model, bad = fitted_mlp, X[:, None, ::2]
    else:
        model, bad = fitted_small, make(X)
    before = model.predict(X)
    state = dict(vars(model))
    with pytest.raises(error, match=match):
        model.predict(bad)
    with pytest.raises(error, match=match):
        model.apply(bad)
    assert vars(model).keys() == state.keys()
    assert all(vars(model)[k] is state[k] for k in state)
    np.testing.assert_array_equal(model.predict(X), before)


BAD_FIT = [
    ("nan in y", lambda X, y: (X, _with(y, (0, 0), np.nan)), ValueError, "Input y contains NaN"),
    ("inf in X", lambda X, y: (_with(X, (2, 2), np.inf), y), ValueError, "Input X contains infinity"),
    ("lengths", lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
    ("y grid", lambda X, y: (X, y[:, None, :8, None]), ValueError, "does not fit the grid"),
    ("no y", lambda X, y: (X, None), ValueError, "requires y to be passed"),
    ("object", lambda X, y: (_with(X, (0, 0), {"a": 1}), y), TypeError, "float"),
    ("grid_shape", lambda X, y: (X, y), ValueError, "cannot be folded"),
    ("device", lambda X, y: (X, y), ValueError, "device must be"),
    ("expert", lambda X, y: (X, y), TypeError, "NeuralOperatorRegressor"),
    ("expert parameter", lambda X, y: (X, y), InvalidParameterError, "max_epochs"),
]
_BAD_PARAMS = {
    "grid_shape": {"grid_shape": (5, 5)},
    "device": {"device": "tpu"},
    "expert": {"expert": Ridge()},
    "expert parameter": {"expert": small_expert(max_epochs=0)},
}


@pytest.mark.parametrize("name, make, error, match", BAD_FIT, ids=[b[0] for b in BAD_FIT])
def test_bad_fit_input_keeps_the_previous_fit(name, make, error, match, antiderivative_small):
    X, y = antiderivative_small
    model = small_mono(4, expert=small_expert(max_epochs=2), leaf_epochs=1).fit(X, y)
    params = model.get_params(deep=False)
    before = model.predict(X)
    state = dict(vars(model))
    model.set_params(**_BAD_PARAMS.get(name, {}))
    with pytest.raises(error, match=match):
        model.fit(*make(X, y))
    fitted = {k for k in state if k.endswith("_")}
    assert all(vars(model)[k] is state[k] for k in fitted)
    assert model.n_features_in_ == 16
    model.set_params(**params)
    np.testing.assert_array_equal(model.predict(X), before)


def test_unfitted_model_says_so(antiderivative_small):
    for method in ("predict", "apply"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(MoNORegressor(), method)(antiderivative_small[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_requested_without_cuda(antiderivative_small, device):
    with pytest.raises(ValueError, match="CUDA is not available"):
        MoNORegressor(n_leaves=1, device=device).fit(*antiderivative_small)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_leaves": 0}, "n_leaves"),
        ({"encoder": "wavelet"}, "encoder"),
        ({"min_samples_leaf": 0}, "min_samples_leaf"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"leaf_epochs": 0}, "leaf_epochs"),
        ({"grid_ndim": 4}, "grid_ndim"),
        ({"device": 0}, "device"),
        ({"expert": "fno"}, "expert"),
        ({"expert": MLP}, "expert"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_invalid_parameter_values(params, match, antiderivative_small):
    with pytest.raises(InvalidParameterError, match=match):
        MoNORegressor(**params).fit(*antiderivative_small)


class _IgnoresChannels(torch.nn.Module):
    def __init__(self, in_channels, out_channels, grid_shape, pooled=False):
        super().__init__()
        self.map = torch.nn.Conv1d(in_channels, 3, 1)  # wrong number of outputs

    def forward(self, x):
        return self.map(x)


def test_custom_module_with_wrong_output_shape(antiderivative_small):
    X, y = antiderivative_small
    expert = NeuralOperatorRegressor(module=_IgnoresChannels, max_epochs=1)
    with pytest.raises(ValueError, match=r"returned an output of shape \(80, 3, 16\)"):
        small_mono(2, expert=expert).fit(X, y)


def test_other_forms_of_a_query_predict_alike(fitted_small, antiderivative_small):
    # Lists, Fortran-ordered and float32 arrays are read as the plain array is.
    X = antiderivative_small[0][:5]
    expected = fitted_small.predict(X)
    np.testing.assert_array_equal(fitted_small.predict(X.tolist()), expected)
    np.testing.assert_array_equal(fitted_small.predict(np.asfortranarray(X)), expected)
    np.testing.assert_array_equal(fitted_small.predict(X[:, None, :]), expected)
    np.testing.assert_allclose(
        fitted_small.predict(X.astype(np.float32)), expected, rtol=1e-5, atol=1e-6
    )
