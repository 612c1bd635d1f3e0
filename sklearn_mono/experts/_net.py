"""skorch wrapping of the experts: standardisation, loss, training loop."""

import copy

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback, LRScheduler
from torch import nn

from ._fno import FNO


class Standardized(nn.Module):
    """Wrap an operator so that it reads and writes data in physical units.

    The wrapped operator sees inputs shifted and scaled per channel and its
    outputs are scaled back, so that the skorch net around it trains and
    predicts on the user's raw arrays.

    Parameters
    ----------
    operator : torch.nn.Module
        Maps standardised inputs to standardised outputs.
    x_shift, x_scale : torch.Tensor
        Per-channel statistics of the inputs, broadcastable to them.
    y_shift, y_scale : torch.Tensor
        Per-channel statistics of the outputs, broadcastable to them.

    Notes
    -----
    In training mode, an operator with several members (an FNO with
    ``n_members > 1``, or any operator with such an ``n_members`` and a
    ``members`` method) gives every member's prediction, shape
    ``(n, n_members, *target shape)``, so that the losses of this module
    (:class:`RelativeL2Loss`, :class:`StandardizedMSELoss`) train each member
    on its own error; in evaluation mode it gives their mean.
    """

    def __init__(self, operator, x_shift, x_scale, y_shift, y_scale):
        super().__init__()
        self.operator = operator
        self.register_buffer("x_shift", x_shift)
        self.register_buffer("x_scale", x_scale)
        self.register_buffer("y_shift", y_shift)
        self.register_buffer("y_scale", y_scale)

    def forward(self, x):
        x = (x - self.x_shift) / self.x_scale
        operator = self.operator
        if self.training and getattr(operator, "n_members", 1) > 1 and hasattr(operator, "members"):
            # The statistics broadcast from the right, over the member axis too.
            z = operator.members(x)
        else:
            z = operator(x)
        return z * self.y_scale + self.y_shift


def _member_axis(pred, target):
    """``target`` with a member axis when ``pred`` has one (one more axis
    after the samples': the members of an expert in training)."""
    return target.unsqueeze(1) if pred.ndim == target.ndim + 1 else target


class RelativeL2Loss(nn.Module):
    """Mean over samples of ``||pred - target|| / ||target||``.

    When ``pred`` has one more axis than ``target``, after the samples'
    (``(n, n_members, ...)``: the members of an expert in training), each
    member's error counts on its own and the loss is their mean.

    The norms run over every channel and grid point of a sample; on a uniform
    grid they are proportional to the L2 norm of the sampled function, so the
    loss is the field's relative L2 error and does not depend on resolution.

    Parameters
    ----------
    floor : float, default=1e-8
        Smallest denominator, so that a target equal to zero does not divide
        by zero. ``MoNORegressor`` sets it to a thousandth of the mean target
        norm.
    """

    def __init__(self, floor=1e-8):
        super().__init__()
        self.floor = floor

    def forward(self, pred, target):
        start = 2 if pred.ndim == target.ndim + 1 else 1  # norms per sample (and member)
        target = _member_axis(pred, target)
        error = (pred - target).flatten(start).norm(dim=-1)
        size = target.flatten(start).norm(dim=-1).clamp_min(self.floor)
        return (error / size).mean()


class StandardizedMSELoss(nn.Module):
    """Mean squared error measured in units of each output's standard deviation.

    Dividing by the scale before squaring keeps the loss near 1 for any
    units of the targets, so that it neither overflows float32 for large
    targets nor vanishes for small ones.

    Parameters
    ----------
    scale : torch.Tensor
        Per-output standard deviations, broadcastable to the targets.
    """

    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, pred, target):
        # With a member axis, the mean runs over members too.
        return (((pred - _member_axis(pred, target)) / self.scale) ** 2).mean()


class TrainingDiverged(Exception):
    """Raised inside training when a batch loss is not finite."""


class StopOnDivergence(Callback):
    """Stop training at the first batch whose loss is NaN or infinite."""

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training and loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
            raise TrainingDiverged


def fno_of(module):
    """The FNO a ``Standardized`` expert wraps, or None when its operator is
    not an FNO (or a subclass). FNOs inside experts of one's own are not
    looked for: dropout handling leaves them as they are."""
    operator = getattr(module, "operator", None)
    return operator if isinstance(operator, FNO) else None


class EarlyDropout(Callback):
    """Let an FNO expert drop activations in the first half of training only.

    The FNO's ``dropout`` acts for the first ``ceil(max_epochs / 2)``
    epochs of a training run and is paused for the rest ("early dropout").
    The pause is a flag on the FNO that every run clears when it starts and
    ends; the FNO's ``dropout`` itself never changes, so a run that stops
    with an exception changes nothing the next run sees. Experts that are
    not an FNO (or a subclass), and FNOs inside experts of one's own, are
    left as they are.
    """

    def on_train_begin(self, net, **kwargs):
        self.operator_ = fno_of(net.module_)
        self.until_ = -(-net.max_epochs // 2)
        self.epoch_ = 0
        self._pause(False)

    def on_epoch_begin(self, net, **kwargs):
        self._pause(self.epoch_ >= self.until_)
        self.epoch_ += 1

    def on_train_end(self, net, **kwargs):
        self._pause(False)
        self.operator_ = None  # the net holds the module; no second reference

    def _pause(self, paused):
        if self.operator_ is not None:
            self.operator_._dropout_paused = paused


class EpochProgress(Callback):
    """Advance a progress bar by one step at the end of every epoch."""

    def __init__(self, bar=None):
        self.bar = bar

    def on_epoch_end(self, net, **kwargs):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{net.history[-1, 'train_loss']:.3g}", refresh=False)

    def __getstate__(self):
        # The bar holds a lock and a stream: it is never pickled.
        state = self.__dict__.copy()
        state["bar"] = None
        return state


def make_net(module, *, criterion, lr, max_epochs, batch_size, device, bar=None, criterion_kwargs=None):
    """A skorch regressor that trains ``module`` with Adam and a cosine schedule.

    All training data are used (no validation split, so small leaves are
    never refused), the data are shuffled each epoch, an FNO's dropout acts
    in the first half of the epochs only (:class:`EarlyDropout`), and
    skorch's printing callbacks are off.
    """
    return NeuralNetRegressor(
        module=module,
        criterion=criterion,
        **{f"criterion__{key}": value for key, value in (criterion_kwargs or {}).items()},
        optimizer=torch.optim.AdamW, optimizer__weight_decay=1e-4,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        device=device,
        callbacks=[
            ("lr_schedule", LRScheduler(policy="CosineAnnealingLR", T_max=max_epochs)),
            ("divergence", StopOnDivergence()),
            ("early_dropout", EarlyDropout()),
            ("progress", EpochProgress(bar)),
        ],
        callbacks__print_log=None,
        callbacks__valid_loss=None,
        verbose=0,
    )


# A training run has failed when its last epoch's loss is this many times the
# largest of: the loss of predicting every output's training mean, the loss of
# the starting weights, and 1 (both losses are scale-free, and 1 is what
# predicting zeros, relative L2, or the mean, standardised MSE, costs). That is,
# training made the expert much worse than where it started and than trivial.
EXPLODED = 10.0
RETRIES = 2


def train_expert(
    module,
    X,
    y,
    *,
    criterion,
    lr,
    max_epochs,
    batch_size,
    device,
    seed,
    criterion_kwargs=None,
    n_threads=None,
    bar=None,
    name="expert",
):
    """Train ``module`` on ``(X, y)`` in a skorch net, retrying when training fails.

    A run fails when a batch loss is NaN or infinite, a weight is not
    finite, or the last epoch's loss exceeds ``EXPLODED`` times the largest
    of the loss of predicting the training mean, the loss of the starting
    weights, and 1. A failed run is retried from the same
    starting weights with a ten times smaller learning rate, up to
    ``RETRIES`` times.

    The global torch generator is forked, so the seed fixes initialisation
    noise and shuffling without touching the caller's random state. With
    ``n_threads``, torch uses that many CPU threads for the duration, so that
    experts trained side by side in worker processes do not oversubscribe the
    cores. A module-level function, so that joblib can send it to workers.

    Returns
    -------
    net : skorch.NeuralNetRegressor or None
        The trained net, or None when every attempt failed.
    notes : list of str
        One sentence per failed attempt, for the caller to warn with (warnings
        raised in joblib workers would not reach the user).
    """
    threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    notes = []
    try:
        baseline = max(
            _trivial_loss(y, criterion, criterion_kwargs),
            _initial_loss(module, X, y, criterion, criterion_kwargs),
            1.0,
        )
        for attempt in range(RETRIES + 1):
            with torch.random.fork_rng(devices=[] if device == "cpu" else None):
                torch.manual_seed(int(seed))
                net = make_net(
                    copy.deepcopy(module),
                    criterion=criterion,
                    criterion_kwargs=criterion_kwargs,
                    lr=lr,
                    max_epochs=max_epochs,
                    batch_size=min(batch_size, len(X)),
                    device=device,
                    bar=bar,
                )
                try:
                    net.fit(X, y)
                    failure = _failure(net, baseline)
                except TrainingDiverged:
                    failure = "the training loss became NaN or infinite"
            if failure is None:
                net.set_params(batch_size=batch_size)
                net.module_.eval()  # ready to predict
                return net, notes
            retry = f"; retrying with lr={lr / 10:g}" if attempt < RETRIES else ""
            notes.append(f"Training of {name} failed at lr={lr:g}: {failure}{retry}.")
            lr /= 10
    finally:
        torch.set_num_threads(threads)
    return None, notes


def _trivial_loss(y, criterion, criterion_kwargs):
    """Loss of predicting each output's training mean for every sample."""
    mean = y.mean(dim=0, keepdim=True).expand_as(y)
    with torch.no_grad():
        return float(criterion(**(criterion_kwargs or {}))(mean, y))


def _initial_loss(module, X, y, criterion, criterion_kwargs, chunk=1024):
    """Loss of the starting weights on the training data (0 when not finite).

    Also checks that the module's output has the targets' shape, so that a
    user's expert that ignores ``pooled`` or the channel count fails with a
    clear message rather than inside the loss.
    """
    loss = criterion(**(criterion_kwargs or {}))
    was_training = module.training
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    loss = loss.to(device)
    module.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                part = slice(start, start + chunk)
                out = module(X[part].to(device))
                if tuple(out.shape) != tuple(y[part].shape):
                    raise ValueError(
                        f"The expert {type(getattr(module, 'operator', module)).__name__} "
                        f"returned an output of shape {tuple(out.shape)} for targets of "
                        f"shape {tuple(y[part].shape)}; it must map (n, in_channels, *grid) "
                        f"to (n, out_channels, *grid), or to (n, out_channels) when pooled."
                    )
                total += float(loss(out, y[part].to(device))) * len(out)
    finally:
        module.train(was_training)
    total /= max(len(X), 1)
    return total if np.isfinite(total) else 0.0


def _failure(net, baseline):
    """Why a finished training run is unusable, or None."""
    if not all(torch.isfinite(p).all() for p in net.module_.parameters()):
        return "a weight became NaN or infinite"
    last = net.history[-1, "train_loss"]
    if not last <= EXPLODED * baseline:
        return (
            f"the final training loss {last:.3g} is over {EXPLODED:g} times that of "
            f"the starting weights, of predicting the mean, and of 1 ({baseline:.3g})"
        )
    return None


def count_parameters(module):
    """Number of real numbers in the trainable parameters of ``module``."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())
