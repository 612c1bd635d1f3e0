"""Training faults: divergence is detected, retried, or replaced by the root expert."""

import warnings

import numpy as np
import pytest
import torch

from sklearn_mono import MoNORegressor
from sklearn_mono.experts import FNO

from .conftest import SMALL


def test_divergence_retried_with_smaller_step(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=1, **{**SMALL, "root_epochs": 0, "max_epochs": 10, "lr": 1.0})
    with pytest.warns(UserWarning, match=r"Training of leaf 0 failed at lr=1: .*retrying with lr=0.1"):
        model.fit(X, y)
    assert model.experts_[0].lr == pytest.approx(0.1)
    pred = model.predict(X)
    assert np.isfinite(pred).all()
    assert model.score(X, y) > 0  # better than predicting the mean


def test_divergence_at_every_step_raises_and_keeps_the_old_model(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=1, **SMALL).fit(X, y)
    before = model.predict(X)
    model.set_params(lr=3000.0)
    with pytest.warns(UserWarning, match="NaN or infinite|over 10 times"):
        with pytest.raises(RuntimeError, match="leaf 0 diverged at every learning rate"):
            model.fit(X, y)
    np.testing.assert_array_equal(model.predict(X), before)


class _BreaksAfter(FNO):
    """An FNO whose training forward passes return NaN after the first ``limit``.

    Leaves start from deep copies of the trained root, counter included, so
    with ``limit`` equal to the root's number of steps every leaf's training
    produces NaN while the root's does not.
    """

    def __init__(self, *args, limit=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls > self.limit:
                return out * float("nan")
        return out


def test_failed_leaves_fall_back_to_the_root(antiderivative_small):
    X, y = antiderivative_small  # 80 samples: 3 batches of 32 per epoch
    params = {**SMALL, "root_epochs": 30}  # lr "auto": 3e-3 for an expert class of one's own
    kwargs = {"limit": 3 * 30, "width": 8, "n_modes": 4, "dropout": 0.1}
    model = MoNORegressor(n_leaves=2, expert=_BreaksAfter, expert_kwargs=kwargs, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    messages = [str(w.message) for w in caught]
    for leaf in (0, 1):
        assert any(f"Leaf {leaf} could not be trained" in m and "root expert" in m for m in messages)
        assert any(f"Training of leaf {leaf} failed" in m and "NaN" in m for m in messages)
    pred = model.predict(X)
    assert np.isfinite(pred).all()
    # both leaves now hold the root's weights
    a, b = (net.module_.state_dict() for net in model.experts_)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [net.lr for net in model.experts_] == [model.lr_, model.lr_] == [3e-3, 3e-3]
    # like fine-tuned leaves, they drop nothing (the root trained with dropout)
    assert [net.module_.operator.dropout for net in model.experts_] == [0.0, 0.0]
    assert model.score(X, y) > 0


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_same_seed_same_bits(antiderivative_small, n_jobs):
    X, y = antiderivative_small
    a = MoNORegressor(n_leaves=2, n_jobs=n_jobs, **SMALL).fit(X, y).predict(X)
    b = MoNORegressor(n_leaves=2, n_jobs=n_jobs, **SMALL).fit(X, y).predict(X)
    assert a.tobytes() == b.tobytes()
