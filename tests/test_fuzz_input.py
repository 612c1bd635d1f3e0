"""Property-based bad-input suite (hypothesis).

Random shapes, dtypes, non-finite values, empty and single-sample arrays,
grids and channel counts that differ from fit, too few samples for the
leaves, and mismatched lengths are thrown at ``fit`` and ``predict``. Every
case must either work correctly or raise ``ValueError``/``TypeError`` from
this package or scikit-learn (never from inside torch) with a message; a
fitted model is unchanged by a failed ``predict``.
"""

import os
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import small_expert, small_mono


def tiny_mono(n_leaves, **params):
    """A mixture of the smallest experts, one epoch each."""
    return small_mono(n_leaves, expert=small_expert(module__width=4, max_epochs=1),
                      leaf_epochs=1, **params)

PREDICT_CASES = int(os.environ.get("SKLEARN_MONO_FUZZ_PREDICT", 500))
FIT_CASES = int(os.environ.get("SKLEARN_MONO_FUZZ_FIT", 150))
TRIED = {"predict": 0, "fit": 0, "predict worked": 0, "fit worked": 0}

# Valid dtypes and finite values are drawn more often, so that many cases get
# past validation and exercise the layouts.
DTYPES = ["float64"] * 5 + ["float32"] * 2 + ["float16", "int64", "bool", "complex", "object", "str"]
POISONS = [None] * 5 + [np.nan, np.inf, -np.inf]


@st.composite
def arrays(draw, n=None, shape=None):
    """An array of random layout, dtype and contents, possibly non-finite."""
    if shape is None:
        ndim = draw(st.integers(0, 4))
        first = [n] if n is not None and ndim else []
        rest = draw(st.lists(st.integers(0, 20), min_size=max(ndim - len(first), 0), max_size=max(ndim - len(first), 0)))
        shape = tuple(first + rest)
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(size=shape)
    poison = draw(st.sampled_from(POISONS))
    if poison is not None and values.size:
        values.flat[draw(st.integers(0, values.size - 1))] = poison
    if dtype == "complex":
        return values + 1j
    if dtype == "object":
        return values.astype(object)
    if dtype == "str":
        return values.astype(str)
    if dtype in ("int64", "bool"):
        return np.nan_to_num(values, posinf=1e6, neginf=-1e6).astype(dtype)
    return values.astype(dtype)


def _check_error(exc):
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    assert len(str(exc)) > 10, f"uninformative message: {exc!r}"
    origin = traceback.extract_tb(exc.__traceback__)[-1].filename
    assert f"{os.sep}torch{os.sep}" not in origin, f"raised inside torch: {origin}: {exc}"


def _finite_numeric(X):
    try:
        values = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return X.dtype.kind in "fiub" and np.isfinite(values).all()


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 16))
    return tiny_mono(3).fit(X, np.cumsum(X, axis=1)), X


@st.composite
def queries(draw):
    kind = draw(st.sampled_from(["random", "flat", "grid", "channels"]))
    n = draw(st.integers(0, 5))
    if kind == "flat":  # the fit width (16) half of the time
        return draw(arrays(shape=(n, draw(st.one_of(st.just(16), st.integers(0, 40))))))
    if kind == "grid":  # any resolution, often one fine enough for the encoder
        return draw(arrays(shape=(n, 1, draw(st.one_of(st.integers(9, 64), st.integers(1, 40))))))
    if kind == "channels":
        return draw(arrays(shape=(n, draw(st.integers(0, 3)), draw(st.integers(1, 40)))))
    return draw(arrays())


@settings(max_examples=PREDICT_CASES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(X=queries())
def test_predict_works_or_fails_cleanly(model, X):
    fitted, X_ref = model
    TRIED["predict"] += 1
    state = dict(vars(fitted))
    try:
        pred = fitted.predict(X)
    except Exception as exc:  # noqa: BLE001 - the property is about which errors
        _check_error(exc)
        assert vars(fitted).keys() == state.keys()
        assert all(vars(fitted)[k] is state[k] for k in state)
        return
    # it worked: the answer is on the query's grid, and finite for finite input
    TRIED["predict worked"] += 1
    grid = X.shape[-1]
    assert pred.shape == (X.shape[0], grid)
    if _finite_numeric(X):
        assert np.isfinite(pred).all()


@st.composite
def training_sets(draw):
    n = draw(st.integers(0, 12))
    mismatch = draw(st.sampled_from([0, 0, 0, 1, -1]))
    grid = draw(st.integers(1, 12))
    X = draw(st.one_of(arrays(shape=(n, grid)), arrays(shape=(n, 1, grid)), arrays()))
    y_n = max(n + mismatch, 0)
    y = draw(st.one_of(
        arrays(shape=(y_n, grid)), arrays(shape=(y_n,)), arrays(shape=(y_n, 2, grid)), arrays(),
    ))
    n_leaves = draw(st.integers(1, 4))
    return X, y, n_leaves


@settings(max_examples=FIT_CASES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=training_sets())
def test_fit_works_or_fails_cleanly(case):
    X, y, n_leaves = case
    TRIED["fit"] += 1
    model = tiny_mono(n_leaves, min_samples_leaf=1)
    try:
        model.fit(X, y)
    except Exception as exc:  # noqa: BLE001
        _check_error(exc)
        assert not hasattr(model, "experts_")
        return
    TRIED["fit worked"] += 1
    pred = model.predict(X)
    assert pred.shape == np.shape(y)
    if _finite_numeric(X):
        assert np.isfinite(pred).all()


def test_cases_were_tried():
    # Runs after the two properties in file order: every generated case counted.
    if TRIED["predict"] and TRIED["fit"]:
        assert TRIED["predict"] >= PREDICT_CASES // 2
        assert TRIED["fit"] >= FIT_CASES // 2
        print("\nbad-input cases tried:", TRIED)
