"""Lazy loading: experts read from the model file when a query needs them."""

import copy
import json
import pickle
import struct
import threading

import numpy as np
import pytest
from sklearn.base import clone

from sklearn_mono import load, save
from sklearn_mono.persistence import ExpertFile

from .conftest import small_expert, small_mono


@pytest.fixture(scope="module")
def saved(antiderivative_small, tmp_path_factory):
    X, y = antiderivative_small
    model = small_mono(8, expert=small_expert(module__width=4, max_epochs=2), leaf_epochs=1,
                       min_samples_leaf=4).fit(X, y)
    path = tmp_path_factory.mktemp("lazy") / "model.safetensors"
    save(model, path)
    return model, path


def test_lazy_predictions_equal_eager_ones(saved, antiderivative_small):
    model, path = saved
    X, _ = antiderivative_small
    lazy = load(path, lazy=True)
    assert isinstance(lazy.experts_, ExpertFile) and lazy.resident_experts() == {}
    np.testing.assert_array_equal(lazy.predict(X), load(path).predict(X))
    np.testing.assert_array_equal(lazy.predict(X), model.predict(X))
    np.testing.assert_array_equal(lazy.apply(X), model.apply(X))


def test_only_the_routed_experts_are_read(saved, antiderivative_small):
    model, path = saved
    X, _ = antiderivative_small
    lazy = load(path, lazy=True)
    lazy.apply(X)  # routing reads no expert
    assert lazy.resident_experts() == {}
    leaves = model.apply(X)
    lazy.predict(X[leaves == leaves[0]])
    resident = lazy.resident_experts()
    assert list(resident) == [leaves[0]]
    assert resident[leaves[0]] == model.experts_[leaves[0]].nbytes_ > 0
    assert model.resident_experts() == {i: e.nbytes_ for i, e in enumerate(model.experts_)}


@pytest.mark.parametrize("bound", [1, 3])
def test_the_lru_bound_holds(saved, antiderivative_small, bound):
    model, path = saved
    X, _ = antiderivative_small
    lazy = load(path, lazy=True, max_experts_in_memory=bound)
    leaves = model.apply(X)
    order = list(dict.fromkeys(leaves))  # leaves in order of first appearance
    assert len(order) > bound
    for leaf in order:
        np.testing.assert_array_equal(
            lazy.predict(X[leaves == leaf]), model.predict(X[leaves == leaf])
        )
        resident = list(lazy.resident_experts())
        assert len(resident) <= bound and resident[-1] == leaf
    assert list(lazy.resident_experts()) == order[-bound:]  # the most recently used
    lazy.predict(X)  # every leaf in one call
    assert len(lazy.resident_experts()) == bound


def _flip_a_byte(path, tensor):
    """Change one byte of ``tensor``'s data in a safetensors file."""
    data = bytearray(path.read_bytes())
    (size,) = struct.unpack("<Q", data[:8])
    start, _ = json.loads(data[8 : 8 + size])[tensor]["data_offsets"]
    data[8 + size + start] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_tampered_expert_is_refused_when_first_read(saved, antiderivative_small, tmp_path):
    model, path = saved
    X, _ = antiderivative_small
    leaves = model.apply(X)
    bad_leaf = int(leaves[0])
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(path.read_bytes())
    _flip_a_byte(tampered, f"experts.{bad_leaf}.operator.lift.weight")
    lazy = load(tampered, lazy=True)  # the routing part is intact
    good = X[leaves != bad_leaf]
    np.testing.assert_array_equal(lazy.predict(good), model.predict(good))
    with pytest.raises(ValueError, match=f"expert of leaf {bad_leaf} failed their integrity"):
        lazy.predict(X[leaves == bad_leaf])
    with pytest.raises(ValueError, match=f"leaf {bad_leaf}"):
        load(tampered)  # an eager load reads every expert


def test_concurrent_predicts_from_threads(saved, antiderivative_small):
    model, path = saved
    X, _ = antiderivative_small
    lazy = load(path, lazy=True, max_experts_in_memory=2)
    chunks = np.array_split(np.tile(X, (3, 1)), 12)
    expected = [model.predict(chunk) for chunk in chunks]
    results, errors = [None] * len(chunks), []

    def run(i):
        try:
            results[i] = lazy.predict(chunks[i])
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(chunks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    assert len(lazy.resident_experts()) <= 2


def test_a_lazy_model_stays_an_estimator(saved, antiderivative_small):
    model, path = saved
    X, y = antiderivative_small
    lazy = load(path, lazy=True, max_experts_in_memory=1)
    params = clone(lazy).get_params(deep=False)
    assert params.keys() == model.get_params(deep=False).keys()
    assert params["n_leaves"] == model.n_leaves
    for copied in (pickle.loads(pickle.dumps(lazy)), copy.deepcopy(lazy)):
        assert isinstance(copied.experts_, list) and len(copied.experts_) == model.n_leaves_
        np.testing.assert_array_equal(copied.predict(X), model.predict(X))
    refitted = clone(lazy).fit(X, y)
    assert isinstance(refitted.experts_, list)


def test_bad_bounds_are_refused(saved):
    _, path = saved
    for bound in (0, -1, 2.5, "8"):
        with pytest.raises(ValueError, match="max_experts_in_memory must be a positive integer"):
            load(path, lazy=True, max_experts_in_memory=bound)
