"""NeuralOperatorRegressor: one neural operator as a skorch regressor."""

import contextlib
import copy
import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.validation import check_consistent_length, check_is_fitted
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring, PrintLog

from .._layout import restore_targets, validate_functions, validate_query, validate_targets
from ..metrics import _flat_r2_score
from ._fno import FNO
from ._losses import RelativeL2Loss, Standardized, StandardizedMSELoss

# What "auto" and unset module options become, by operator and grid; the one
# place where defaults depend on the data (see docs/model.rst).
_FNO_MODULE = {"n_modes": 16, "n_layers": 4, "factorized": True}
_DEFAULTS = {
    ("FNO", 1): dict(module={**_FNO_MODULE, "width": 14}, max_epochs=170, lr=6e-3),
    ("FNO", 2): dict(module={**_FNO_MODULE, "width": 16, "residual": True, "n_members": 2},
                     max_epochs=100, lr=9e-3),
    "other": dict(module={}, max_epochs=100, lr=3e-3),
}
_DEFAULTS[("FNO", 3)] = _DEFAULTS[("FNO", 2)]

# A run fails when its last loss exceeds EXPLODED times the largest of 1 and the
# losses of the starting weights and of predicting the mean; it is retried from
# the same weights at a ten times smaller learning rate, RETRIES times.
EXPLODED = 10.0
RETRIES = 2


def _defaults(module, grid_ndim):
    """The row of ``_DEFAULTS`` for an operator class on a grid of ``grid_ndim`` axes."""
    if isinstance(module, type) and issubclass(module, FNO):
        return _DEFAULTS[("FNO", grid_ndim)]
    return _DEFAULTS["other"]


class TrainingDiverged(Exception):
    """Raised inside training when a batch loss is not finite."""


class TrainingFailed(RuntimeError):
    """Raised by ``fit`` when training failed at every learning rate tried."""


class StopOnDivergence(Callback):
    """Stop training at the first batch whose loss is NaN or infinite."""

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training and loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
            raise TrainingDiverged


class CosineSchedule(Callback):
    """Decay the learning rate from ``net.lr_`` to zero on a cosine over the run's epochs."""

    def on_train_begin(self, net, **kwargs):
        self.epoch_ = 0

    def on_epoch_begin(self, net, **kwargs):
        lr = 0.5 * net.lr_ * (1 + math.cos(math.pi * self.epoch_ / net.max_epochs_))
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        self.epoch_ += 1


def _channel_stats(A):
    """Per-channel mean and standard deviation, shaped to broadcast over ``A``."""
    axes = (0,) + tuple(range(2, A.ndim))
    shift = A.mean(axis=axes, keepdims=True)
    scale = A.std(axis=axes, keepdims=True)
    scale[scale < 1e-12 * np.maximum(1.0, np.abs(shift))] = 1.0
    return torch.as_tensor(shift, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)


def _as_tensor(A):
    """A float32 tensor holding a copy of the numpy array ``A``."""
    return torch.from_numpy(np.array(A, dtype=np.float32, order="C"))


class NeuralOperatorRegressor(NeuralNetRegressor):
    """One neural operator trained as a scikit-learn regressor (a skorch net).

    Builds ``module(in_channels, out_channels, grid_shape, pooled=...,
    **module__options)`` from the data (layout: ``docs/data_layout.rst``) and
    wraps it in :class:`~sklearn_mono.experts.Standardized`, so it trains on
    data standardised per channel while ``fit`` and ``predict`` use raw
    arrays. Training uses AdamW with a cosine decay of the learning rate to
    zero; a run whose loss becomes NaN or explodes is retried from the same
    weights at a ten times smaller learning rate, twice, with a warning. It
    is the expert of :class:`~sklearn_mono.MoNORegressor`.

    Unset ``module__*`` options, ``lr="auto"`` and ``max_epochs="auto"``
    take the defaults of the operator and grid:

    ===============  ========================================  ==========  ======
    operator, grid   module options                            max_epochs  lr
    ===============  ========================================  ==========  ======
    FNO, 1-D         width 14, 16 modes, 4 layers              170         6e-3
    FNO, 2-D, 3-D    two residual members of width 16, 16      100         9e-3
                     modes, 4 factorised layers
    other modules    the module's own defaults                 100         3e-3
    ===============  ========================================  ==========  ======

    Parameters
    ----------
    module : torch.nn.Module subclass, default=FNO
        The operator class. Maps ``(n, in_channels, *grid)`` to
        ``(n, out_channels, *grid)``, or to ``(n, out_channels)`` when
        ``pooled``; ``resolution_invariant = True`` lets it use other grids.
    criterion : "auto" or torch loss class, default="auto"
        :class:`~sklearn_mono.experts.RelativeL2Loss` for function targets,
        :class:`~sklearn_mono.experts.StandardizedMSELoss` for scalar ones.
    optimizer : torch optimizer class, default=torch.optim.AdamW
        The optimizer; ``optimizer__weight_decay`` defaults to 1e-4.
    lr : float or "auto", default="auto"
        Initial learning rate; the value used is ``lr_``.
    max_epochs : int or "auto", default="auto"
        Training epochs; the value used is ``max_epochs_``.
    batch_size : int, default=32
        Mini-batch size in training. Prediction runs in batches of
        ``iterator_valid__batch_size`` samples, 1024 unless set.
    grid_shape : tuple of int, default=None
        Grid onto which each row of 2-D ``X`` and ``y`` is folded.
    grid_ndim : int, default=None
        Number of grid axes of N-D ``X``; None means every axis after the first.
    random_state : int or None, default=None
        Seeds initialisation and shuffling, leaving torch's global generator
        as it was.
    warm_start : bool, default=False
        Whether ``fit`` on a fitted net trains its weights further (keeping
        the standardisation), with a new optimizer and schedule.
    device : str, default="cpu"
        Torch device, as in skorch.
    verbose : int, default=0
        Above zero, print skorch's table of epochs.
    **kwargs
        Any other skorch parameter (``module__*``, ``optimizer__*``,
        ``callbacks``, ...).

    Attributes
    ----------
    module_ : Standardized
        The trained operator (``module_.operator``) and its standardisation.
    module_params_ : dict
        Keyword arguments the operator was built with.
    lr_ : float
        Initial learning rate of the successful training run.
    max_epochs_ : int
        Epochs of a training run.
    n_params_ : int
        Trainable parameters of the operator (complex ones count twice).
    grid_ : tuple of int
        Grid of ``X`` at fit.
    n_channels_in_ : int
        Input channels.
    n_features_in_ : int
        Values per sample of ``X`` at fit.
    history_ : skorch.History
        Training losses per epoch.

    See Also
    --------
    sklearn_mono.MoNORegressor : A routed mixture of these experts.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mono.experts import NeuralOperatorRegressor
    >>> X = np.random.default_rng(0).normal(size=(64, 32)).cumsum(axis=1) / 8
    >>> y = np.cumsum(X, axis=1) / 32
    >>> net = NeuralOperatorRegressor(module__width=8, max_epochs=5, random_state=0)
    >>> net.fit(X, y).predict(X[:3]).shape
    (3, 32)
    """

    _parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "grid_shape": ["array-like", None],
        "grid_ndim": [Interval(Integral, 1, 3, closed="both"), None],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "module": [type],
    }

    def __init__(
        self, module=FNO, *, criterion="auto", optimizer=torch.optim.AdamW, lr="auto",
        max_epochs="auto", batch_size=32, grid_shape=None, grid_ndim=None, random_state=None,
        warm_start=False, device="cpu", verbose=0, **kwargs,
    ):
        kwargs.setdefault("optimizer__weight_decay", 1e-4)
        kwargs.setdefault("iterator_train__shuffle", True)
        kwargs.setdefault("train_split", None)
        super().__init__(
            module, criterion=criterion, optimizer=optimizer, lr=lr, max_epochs=max_epochs,
            batch_size=batch_size, warm_start=warm_start, device=device, verbose=verbose,
            **kwargs,
        )
        self.grid_shape = grid_shape
        self.grid_ndim = grid_ndim
        self.random_state = random_state

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("lr_schedule", CosineSchedule()),
            ("divergence", StopOnDivergence()),
            ("print_log", PrintLog()),
        ]

    def initialize_module(self):
        if not isinstance(self.module, type) or not issubclass(self.module, torch.nn.Module):
            raise TypeError(f"module must be a subclass of torch.nn.Module, got {self.module!r}.")
        defaults = _defaults(self.module, len(self.grid_))["module"]
        self.module_params_ = {**defaults, **self.get_params_for("module")}
        operator = self.module(
            self.n_channels_in_, self.n_channels_out_, self.grid_, pooled=self._pooled,
            **self.module_params_,
        )
        self.module_ = Standardized(operator, *(s.clone() for s in self.stats_))
        return self

    def initialize_criterion(self):
        criterion, kwargs = self.criterion, self.get_params_for("criterion")
        if isinstance(criterion, str):  # "auto"
            criterion = StandardizedMSELoss if self._pooled else RelativeL2Loss
        if criterion is StandardizedMSELoss and "scale" not in kwargs:
            kwargs["scale"] = self.stats_[3]
        self.criterion_ = self.initialized_instance(criterion, kwargs)
        return self

    @property
    def _pooled(self):
        return self.target_layout_.kind != "function"

    def fit(self, X, y):
        """Train the operator on input functions ``X`` and outputs ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions.
        y : array-like of shape (n_samples, ...)
            Output functions on the grid of ``X``, or scalars per sample.

        Returns
        -------
        self : NeuralOperatorRegressor
            The fitted estimator.
        """
        return self._fit(X, y, continuing=self.warm_start and self.__sklearn_is_fitted__())

    def partial_fit(self, X, y):
        """Train the current weights further (``fit`` when not fitted yet).

        Keeps the standardisation and grid of the first fit; runs
        ``max_epochs`` epochs with a new optimizer and schedule.

        Parameters
        ----------
        X : array-like
            Input functions, in the layout of the first fit.
        y : array-like
            Outputs, in the layout of the first fit.

        Returns
        -------
        self : NeuralOperatorRegressor
            The estimator, trained further.
        """
        return self._fit(X, y, continuing=self.__sklearn_is_fitted__())

    def _fit(self, X, y, continuing):
        self._validate_own_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if continuing:
            F, layout = validate_query(self, X, self.grid_shape, resolution_invariant=False)
            Y, _ = validate_targets(y, layout, self.grid_shape)
            if Y.shape[1:] != (self.n_channels_out_,) + (self.grid_ if not self._pooled else ()):
                raise ValueError(
                    f"y has shape {np.shape(y)}, which differs from the targets this "
                    f"warm-started {type(self).__name__} was fitted on."
                )
        else:
            F, layout = validate_functions(
                self, X, reset=True, grid_shape=self.grid_shape, grid_ndim=self.grid_ndim
            )
            Y, self.target_layout_ = validate_targets(y, layout, self.grid_shape)
            self.grid_, self.n_channels_in_ = layout.grid, layout.n_channels
            self.n_channels_out_ = Y.shape[1]
        check_consistent_length(F, Y)
        defaults = _defaults(self.module, len(self.grid_))
        auto = self.max_epochs == "auto"
        self.max_epochs_ = defaults["max_epochs"] if auto else int(self.max_epochs)
        self.lr_ = defaults["lr"] if self.lr == "auto" else float(self.lr)
        with _seeded(self.random_state, self.device):
            if not continuing:
                self.stats_ = _channel_stats(F) + _channel_stats(Y)
                self.initialize()
            self._train(_as_tensor(F), _as_tensor(Y), self.lr_)
        self.n_params_ = sum(
            p.numel() * (2 if p.is_complex() else 1) for p in self.module_.operator.parameters()
        )
        return self

    def _validate_own_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )

    def get_params_for_optimizer(self, prefix, named_parameters):
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        kwargs["lr"] = self.lr_  # "auto" resolved at fit; the schedule sets it per epoch
        return args, kwargs

    def _train(self, X, y, lr):
        """Train from the current weights, retrying with smaller steps when a run fails."""
        start = copy.deepcopy(self.module_.state_dict())
        baseline = self._baseline(X, y)
        notes = []
        for attempt in range(RETRIES + 1):
            self.lr_ = lr
            self.initialize_optimizer()
            try:
                NeuralNetRegressor.partial_fit(self, X, y, epochs=self.max_epochs_)
                failure = self._failure(baseline)
            except TrainingDiverged:
                failure = "the training loss became NaN or infinite"
            if failure is None:
                self.module_.eval()
                for note in notes:
                    warnings.warn(note, UserWarning)
                return
            retry = f"; retrying with lr={lr / 10:g}" if attempt < RETRIES else ""
            name = type(self).__name__
            notes.append(f"Training of {name} failed at lr={lr:g}: {failure}{retry}.")
            self.module_.load_state_dict(start)
            lr /= 10
        raise TrainingFailed(
            " ".join(notes) + " Training diverged at every learning rate tried: lower lr, "
            "standardise the data, or check it for outliers."
        )

    def _baseline(self, X, y):
        """The largest of 1 and the losses of the starting weights (when finite)
        and of predicting the training mean; checks the operator's output shape."""
        self.module_.eval()
        with torch.no_grad():
            out = self._forward(X, 1024)
            if out.shape != y.shape:
                raise ValueError(
                    f"The operator {type(self.module_.operator).__name__} returned an output of "
                    f"shape {tuple(out.shape)} for targets of shape {tuple(y.shape)}; it must "
                    f"map (n, in_channels, *grid) to (n, out_channels, *grid), or to "
                    f"(n, out_channels) when pooled."
                )
            y = y.to(self.device)
            mean = y.mean(dim=0, keepdim=True).expand_as(y)
            losses = [float(self.criterion_(p, y)) for p in (out.to(self.device), mean)]
        self.module_.train()
        return max([1.0] + [loss for loss in losses if np.isfinite(loss)])

    def _failure(self, baseline):
        """Why a finished training run is unusable, or None."""
        if not all(torch.isfinite(p).all() for p in self.module_.parameters()):
            return "a weight became NaN or infinite"
        last = self.history[-1, "train_loss"]
        if not last <= EXPLODED * baseline:
            return (
                f"the final training loss {last:.3g} is over {EXPLODED:g} times that of the "
                f"starting weights, of predicting the mean, and of 1 ({baseline:.3g})"
            )
        return None

    @property
    def nbytes_(self):
        """Bytes of the trained operator's weights and buffers."""
        check_is_fitted(self)
        return sum(t.numel() * t.element_size() for t in self.module_.state_dict().values())

    @property
    def resolution_invariant(self):
        """Whether the operator evaluates on grids other than the fit grid."""
        return bool(getattr(self.module, "resolution_invariant", False))

    def predict(self, X):
        """Evaluate the operator on input functions ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions; N-D input may use another grid than at fit when
            the operator is resolution-invariant (the FNO).

        Returns
        -------
        y_pred : ndarray
            Predictions in the layout of ``y`` at fit, on the grid of ``X``.
        """
        check_is_fitted(self)
        F, _ = validate_query(self, X, self.grid_shape, self.resolution_invariant)
        self.module_.eval()
        with torch.inference_mode():  # without a DataLoader's random draws
            step = self.get_params_for("iterator_valid").get("batch_size", 1024)
            out = self._forward(_as_tensor(F), step)
        return restore_targets(out.numpy().astype(F.dtype, copy=False), self.target_layout_)

    def _forward(self, X, step):
        """The module's output on the tensor ``X``, batch by batch, on the CPU."""
        return torch.cat(
            [self.module_(X[i : i + step].to(self.device)).cpu() for i in range(0, len(X), step)]
        )

    @property
    def predict_proba(self):
        # A regressor: skorch's probabilities of classes do not apply.
        raise AttributeError(f"{type(self).__name__} has no predict_proba; use predict.")

    def score(self, X, y, sample_weight=None):
        """R² over all output values, ``1 - SSE / SST`` (see :meth:`MoNORegressor.score`)."""
        return _flat_r2_score(y, self.predict(X), sample_weight)

    def __sklearn_is_fitted__(self):
        return bool(self.initialized_) and hasattr(self, "grid_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.three_d_array = True
        return tags


@contextlib.contextmanager
def _seeded(random_state, device):
    """Seed torch's generators within the context and restore them after (not for None)."""
    if random_state is None:
        yield
        return
    with torch.random.fork_rng(devices=[] if str(device).startswith("cpu") else None):
        torch.manual_seed(int(random_state))
        yield
