"""GPU paths: run where CUDA is present, skipped elsewhere (the CPU paths are tested everywhere)."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from .conftest import small_mono

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_auto_device_trains_on_cuda_and_returns_numpy(antiderivative_small):
    X, y = antiderivative_small
    model = small_mono(2, device="auto").fit(X, y)
    assert model.device_ == "cuda"
    assert all(str(net.device).startswith("cuda") for net in model.experts_)
    assert all(p.is_cuda for net in model.experts_ for p in net.module_.parameters())
    pred = model.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == y.shape and pred.dtype == np.float64
    cpu = small_mono(2).fit(X, y).predict(X)
    # same data, same seed: the GPU and CPU models learn nearly the same map
    assert np.abs(pred - cpu).max() < 0.1 * np.abs(cpu).max()


@cuda
def test_scalar_targets_grow_a_tree_on_cuda(antiderivative_small):
    # Scalar targets train with a loss that holds a buffer on the GPU.
    X, y = antiderivative_small
    model = small_mono(4, device="cuda").fit(X, y[:, -1])
    assert model.predict(X).shape == (len(X),)


@cuda
def test_explicit_cuda_device(antiderivative_small):
    X, y = antiderivative_small
    model = small_mono(2, device="cuda:0").fit(X, y)
    assert model.device_ == "cuda:0"
    assert {str(net.device) for net in model.experts_} == {"cuda:0"}
    assert model.predict(X).shape == y.shape


@cuda
def test_cuda_model_unpickles_on_a_cpu_only_process(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = small_mono(2, device="auto").fit(X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, warnings, numpy as np, torch; assert not torch.cuda.is_available();"
        "warnings.simplefilter('ignore');"
        "m = pickle.load(open(sys.argv[1], 'rb'));"
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2])))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "X.npy"), str(tmp_path / "p.npy")],
        check=True, env=env,
    )
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), model.predict(X), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_leaves_spread_over_gpus(antiderivative_small):
    X, y = antiderivative_small
    model = small_mono(4, device="cuda").fit(X, y)
    assert {str(net.device) for net in model.experts_} == {"cuda:0", "cuda:1"}
    for net in model.experts_:
        assert {str(p.device) for p in net.module_.parameters()} == {str(net.device)}
    assert model.predict(X).shape == y.shape


def test_cpu_fallback_on_auto(antiderivative_small, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    X, y = antiderivative_small
    model = small_mono(2, device="auto").fit(X, y)
    assert model.device_ == "cpu"
    assert all(net.device == "cpu" for net in model.experts_)
    assert model.predict(X).shape == y.shape
