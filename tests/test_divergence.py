"""Training faults: divergence is detected, retried, or replaced by the root expert."""

import warnings

import numpy as np
import pytest
import torch

from sklearn_mono.experts import FNO

from .conftest import small_expert, small_mono


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


class _BreaksFirst(FNO):
    """An FNO whose first ``limit`` training forward passes return NaN."""

    def __init__(self, *args, limit=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls <= self.limit:
                return out * float("nan")
        return out


def test_divergence_retried_with_smaller_step(antiderivative_small):
    # The first run turns NaN at its first step; the retry, from the same
    # starting weights at a ten times smaller step, trains.
    X, y = antiderivative_small
    net = small_expert(module=_BreaksFirst, lr=0.2, max_epochs=8, random_state=0)
    message = r"failed at lr=0\.2: the training loss became NaN or infinite; retrying with lr=0\.02\."
    with pytest.warns(UserWarning, match=message) as caught:
        net.fit(X, y)
    assert len([w for w in caught if "failed at" in str(w.message)]) == 1
    assert net.lr_ == pytest.approx(0.02) and net.lr == 0.2
    assert net.module_.operator.calls == 1 + 8 * 3  # one failed step, then 8 epochs of 3 batches
    losses = net.history[-8:, "train_loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    pred = net.predict(X)
    assert np.isfinite(pred).all()
    assert net.score(X, y) > 0.3  # measured 0.59 to 0.71 over seeds 0-2


def test_an_exploding_loss_is_retried(antiderivative_small):
    # A finite loss far above that of the starting weights fails the run too
    # (measured: 1.5e8 at lr=30 and 1.6e3 at lr=3 against a limit of 11;
    # lr=0.3 ends at 1.3).
    X, y = antiderivative_small
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = small_expert(lr=30.0, max_epochs=5, random_state=0).fit(X, y)
    messages = [str(w.message) for w in caught]
    assert any("failed at lr=30: the final training loss" in m and "retrying with lr=3." in m
               for m in messages)
    assert any("over 10 times that of the starting weights" in m for m in messages)
    assert net.lr_ < 30.0
    assert net.history[-1, "train_loss"] < 10 * 1.2
    assert np.isfinite(net.predict(X)).all()


def test_divergence_at_every_step_raises(antiderivative_small):
    X, y = antiderivative_small
    net = small_expert(lr=1e5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the failures are in the error, not warned
        with pytest.raises(RuntimeError) as error:
            net.fit(X, y)
    text = str(error.value)
    assert "failed at lr=100000: " in text and "retrying with lr=10000" in text
    assert "failed at lr=1000: " in text
    assert "Training diverged at every learning rate tried: lower lr" in text
    assert "NaN or infinite" in text or "over 10 times" in text


def test_a_mixture_that_diverges_at_every_step_keeps_its_old_model(antiderivative_small):
    X, y = antiderivative_small
    model = small_mono(1).fit(X, y)
    before = model.predict(X)
    model.set_params(expert__lr=1e5)
    with pytest.raises(RuntimeError, match="Training diverged at every learning rate tried"):
        model.fit(X, y)
    np.testing.assert_array_equal(model.predict(X), before)


def test_a_split_whose_leaves_fail_is_dropped(antiderivative_small):
    X, y = antiderivative_small  # 80 samples: 3 batches of 32 per epoch
    expert = small_expert(module=_BreaksAfter, module__limit=3 * 5, max_epochs=5)
    model = small_mono(2, expert=expert)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    messages = [str(w.message) for w in caught]
    assert any("Node 0: Training of NeuralOperatorRegressor failed" in m and "NaN" in m
               for m in messages)
    assert any("A split of node 0 was dropped" in m for m in messages)
    # the model is the root alone, with its learning rate (the FNO row of the
    # defaults: _BreaksAfter is an FNO)
    assert model.n_leaves_ == 1 and [net.lr_ for net in model.experts_] == [6e-3]
    assert np.isfinite(model.predict(X)).all()
    assert model.score(X, y) > 0


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_same_seed_same_bits(antiderivative_small, n_jobs):
    X, y = antiderivative_small
    a = small_mono(2, n_jobs=n_jobs).fit(X, y).predict(X)
    b = small_mono(2, n_jobs=n_jobs).fit(X, y).predict(X)
    assert a.tobytes() == b.tobytes()
