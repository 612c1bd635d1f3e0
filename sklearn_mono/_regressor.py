"""MoNORegressor: a routed mixture of neural operators."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted
from joblib import Parallel, cpu_count, delayed, effective_n_jobs
from tqdm.auto import tqdm

from ._functions import resample, restore_targets, validate_functions, validate_targets
from ._partition import KDPartition
from .encoders import FourierEncoder, PCAEncoder, _FunctionEncoder
from .experts import (
    FNO,
    MLP,
    RelativeL2Loss,
    Standardized,
    StandardizedMSELoss,
    count_parameters,
)
from .experts._net import fno_of, make_net, train_expert
from .experts._spectral import _versioned_weights
from .experts._stack import StackedExperts, stack_signature

_EXPERTS = {"fno": FNO, "mlp": MLP}

# Leaves warm-started from the root expert fine-tune at this fraction of
# ``lr``: a full restart of the step size throws away much of what the root
# learned and overfits the smaller cell (measured on the antiderivative
# operator, test relative L2 0.0091 at 1.0 against 0.0072 at 0.3).
_FINETUNE_LR_FACTOR = 0.3

# What width, root_epochs and lr set to "auto" become: for the FNO expert on
# 1-D grids, for the FNO expert with residual blocks and several members or
# one (two members are its default on 2-D and 3-D grids), and for everything
# else. On both 1-D problems measured
# (Burgers, the antiderivative), plain FNO experts of width 14 trained for
# 150 + 20 epochs at 6e-3 were more accurate than width 24 trained for
# 80 + 20 at 3e-3, with a third of the parameters. On 2-D grids, residual
# experts of width 24 trained for 80 + 20 epochs at 6e-3 were more accurate
# than the best plain ones (3e-3; 6e-3 did worse for those), and 150 root
# epochs overfitted Darcy flow. On 1-D grids residual blocks did worse
# (Burgers 0.0033 to 0.0039). See the user guide's "Choosing a configuration".
# Residual experts with several members (the FNO's ``n_members``), the 2-D
# and 3-D default (two), are 16 channels wide per member, so that two hold
# about as many weights as one of width 24 (67k against 75k on a 16x16 grid),
# and train at 9e-3: on Darcy flow at 16x16, two such members gave 0.0310,
# 0.0293 and 0.0290 on three draws of the data, where one expert of width 24
# at 6e-3 gave 0.0319, 0.0304 and 0.0296, and the members at 6e-3 and 4e-3
# gave 0.0315 and 0.0327 on the first.
_AUTO_FNO_1D = {"width": 14, "root_epochs": 150, "lr": 6e-3}
_AUTO_FNO_RESIDUAL = {"width": 24, "root_epochs": 80, "lr": 6e-3}
_AUTO_FNO_MEMBERS = {"width": 16, "root_epochs": 80, "lr": 9e-3}
_AUTO_N_MEMBERS = 2
_AUTO = {"width": 24, "root_epochs": 80, "lr": 3e-3}

# When predict evaluates the leaves' experts stacked into one grouped FNO
# (see MoNORegressor._stack_for): while the largest leaf group x lifted
# channels x grid points is at most this, and padding the groups to the
# largest adds at most this many queries per leaf with queries.
_STACK_VALUES = 2**17
_STACK_PADDING = 128


def _warm_started(n_leaves, root_epochs):
    """Whether the leaves' experts start from a root expert's weights."""
    return bool(n_leaves > 1 and root_epochs)


def _leaf_lr(lr, n_leaves, root_epochs):
    """Learning rate of the leaves' experts: a fraction of ``lr`` when they are
    warm-started from a root expert, else ``lr``."""
    return lr * (_FINETUNE_LR_FACTOR if _warm_started(n_leaves, root_epochs) else 1.0)


def _resolve_device(device):
    head, _, index = device.partition(":")
    if device not in ("auto", "cpu", "cuda") and not (head == "cuda" and index.isdigit()):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                f"machine; use device='auto' or device='cpu'."
            )
        if int(index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    return device


def _warn_or_raise(net, notes, name):
    """Pass training notes on as warnings; fail when no attempt succeeded."""
    for note in notes:
        warnings.warn(note, UserWarning)
    if net is None:
        raise RuntimeError(
            f"Training of {name} diverged at every learning rate tried (see the "
            f"warnings). Lower lr, standardise the data, or check it for outliers."
        )


def _leaf_devices(device, n_leaves):
    """Device of each leaf: plain "cuda" spreads leaves over all visible GPUs."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(n_leaves)]
    return [device] * n_leaves


def _channel_stats(A):
    """Per-channel mean and standard deviation, shaped to broadcast over ``A``."""
    axes = (0,) + tuple(range(2, A.ndim))
    shift = A.mean(axis=axes, keepdims=True)
    scale = A.std(axis=axes, keepdims=True)
    scale[scale < 1e-12 * np.maximum(1.0, np.abs(shift))] = 1.0
    return (
        torch.as_tensor(shift, dtype=torch.float32),
        torch.as_tensor(scale, dtype=torch.float32),
    )


class MoNORegressor(RegressorMixin, BaseEstimator):
    """Mixture of neural operators: route each input function to one expert.

    Each input function is encoded to a short vector (its low Fourier modes,
    or principal components); a balanced k-d-tree-like partition of those
    vectors sends it to exactly one leaf; and the leaf's expert, a small
    neural operator trained only on the samples of its cell, predicts the
    output function. Only that expert is evaluated for a query, which is what
    Kratsios et al. (2024) call the *active* model: see ``n_params_active_``,
    ``n_params_total_`` and ``depth_``.

    Read ``docs/data_layout.rst`` for how arrays map to grids and channels;
    in short, ``X`` is ``(n_samples, n_features)`` (a 1-D function, or one
    folded by ``grid_shape``) or ``(n_samples, [n_channels,] *grid)``, and
    ``y`` lives on the same grid with its own channels, or is one or several
    scalars per sample.

    Parameters
    ----------
    n_leaves : int, default=4
        Number of cells of the partition, hence of experts.
    min_samples_leaf : int, default=10
        Fewest training samples a cell may hold. Fitting needs at least
        ``n_leaves * min_samples_leaf`` samples.
    encoder : {"fourier", "pca"} or transformer, default="fourier"
        How inputs are encoded for routing: a :class:`~sklearn_mono.encoders.FourierEncoder`
        with 4 modes per axis, a :class:`~sklearn_mono.encoders.PCAEncoder`
        with 8 components, or any scikit-learn transformer (cloned at fit).
        Encoders of this package receive the functions on their own grid;
        other transformers receive rows flattened on the fit grid.
    split : {"pca", "widest"}, default="pca"
        Direction along which a cell is halved at its median: the cell's
        principal direction, or its coordinate of largest spread.
    expert : {"fno", "mlp"} or torch.nn.Module subclass, default="fno"
        The operator at each leaf. A class of your own is constructed as
        ``expert(in_channels, out_channels, grid_shape, pooled=..., **expert_kwargs)``
        and maps ``(n, in_channels, *grid)`` to ``(n, out_channels, *grid)``,
        or to ``(n, out_channels)`` when ``pooled`` is true (scalar targets).
        It may evaluate on other grids if it sets ``resolution_invariant = True``.
        The built-in FNO expert uses factorised Fourier layers on 2-D and 3-D
        grids (one 1-D transform per axis, see
        :class:`~sklearn_mono.experts.FactorizedSpectralConv`); pass
        ``expert_kwargs={"factorized": False}`` for full multi-dimensional ones.
    width : int or "auto", default="auto"
        Hidden channels of the built-in experts, per member for an FNO
        expert with several (see ``expert_kwargs``). "auto" means 14 for the
        FNO expert on 1-D grids, 16 per member for the FNO expert with
        residual blocks and several members (its default on 2-D and 3-D
        grids), and 24 otherwise. A grid's
        axes are those of ``X`` at fit, after ``grid_shape`` and
        ``grid_ndim`` (``grid_``): 2-D ``X`` without ``grid_shape`` is a
        1-D grid. On 1-D grids the
        narrow expert holds a third of the parameters of width 24 and,
        trained longer (see ``root_epochs``), was more accurate on both 1-D
        problems measured. Each of ``width``, ``root_epochs`` and ``lr``
        left at "auto" is resolved on its own: ``width=32`` on a 1-D grid
        still trains for 150 root epochs at 6e-3. The value used is
        ``width_``.
    n_modes : int, default=16
        Fourier modes per axis of the FNO expert, capped by the fit grid.
    n_layers : int, default=4
        Layers of the built-in experts.
    expert_kwargs : dict, default=None
        Further keyword arguments for the expert class, e.g.
        ``{"positional": "periodic"}`` or ``{"symmetric": True}`` for the
        FNO (see :class:`~sklearn_mono.experts.FNO`). They override what
        this estimator passes: ``width``, ``n_modes`` and ``n_layers``,
        ``factorized=True`` for the FNO, and, for the FNO on 2-D and 3-D
        grids, residual blocks, ``{"residual": True}``, with two members,
        ``{"n_members": 2}``: each expert is two FNOs evaluated together,
        each trained on its own loss, their predictions averaged (see
        :class:`~sklearn_mono.experts.FNO` and the user guide's "Choosing a
        configuration"), 16 channels wide each when ``width`` is "auto".
        ``{"n_members": 1}`` gives one residual expert (24 wide, trained at
        6e-3 when ``width`` and ``lr`` are "auto": the earlier 2-D
        defaults), and ``{"residual": False}`` plain layers with one member,
        ``lr="auto"`` then meaning 3e-3 (the 2-D defaults before those).
        Only 2-D problems were measured; 3-D grids get the same layers. The FNO's
        ``dropout`` acts in the first half of the root expert's epochs (see
        ``root_epochs``); the leaves warm-started from it fine-tune
        without. ``{"dropout": 0.1}`` helped
        Darcy flow sampled coarsely from finer fields on one draw of the
        data and not on others (see the user guide's "Choosing a
        configuration"). What the experts were built with is
        ``expert_kwargs_``.
    max_epochs : int, default=20
        Training epochs of each leaf's expert on the samples of its cell.
    root_epochs : int or "auto", default="auto"
        Epochs of a shared expert trained on all samples before the leaves:
        every leaf's expert starts from its weights and fine-tunes at
        ``0.3 * lr`` (a hierarchical warm start), so that small cells do not
        starve. 0 starts every leaf from a fresh initialisation at ``lr``
        (and an FNO's ``dropout`` then acts in the first half of every
        leaf's epochs).
        With a single leaf (``n_leaves=1``, or a tree that could not be
        split) the one expert is the root: it trains for
        ``root_epochs + max_epochs`` epochs at ``lr``, so that the training
        budget does not depend on the number of leaves. "auto" means 150
        for the FNO expert on 1-D grids, whose narrow experts keep improving
        with training, and 80 otherwise (see ``width`` for what a 1-D grid
        is). The value used is ``root_epochs_``. Most of the
        training belongs here: with four leaves and plain layers of width 24
        at ``lr=3e-3``, 80 + 20 epochs gave lower test error than 50 + 50 on Darcy flow,
        Burgers and the antiderivative; on Darcy flow, with residual layers
        at 6e-3, 150 + 20 overfitted (see the user guide's "Choosing a
        configuration").
    overlap : float, default=0.2
        At training time only, the fraction of each node's samples nearest
        to its split that both children train on, so that experts also see
        the borders of their cells. Routing at predict is unaffected.
    lr : float or "auto", default="auto"
        Initial learning rate of Adam; it decays to zero on a cosine schedule.
        "auto" means 9e-3 for the FNO expert with residual blocks and
        several members (its default on 2-D and 3-D grids, see
        ``expert_kwargs``), 6e-3 for the FNO expert on 1-D grids or with
        residual blocks and one member, and 3e-3 otherwise (see the user
        guide's "Choosing a configuration"). The value used is ``lr_``.
    batch_size : int, default=32
        Mini-batch size in training.
    predict_batch_size : int, default=1024
        Queries encoded, routed and evaluated together in ``predict`` and
        ``apply``; it bounds the memory these use beyond the input and output
        arrays, whatever the number of queries.
    loss : {"auto", "relative_l2", "mse"}, default="auto"
        Training loss. "auto" uses the relative L2 loss for function targets
        and the mean squared error for scalar targets.
    grid_shape : tuple of int, default=None
        Grid onto which each row of 2-D ``X`` (and of 2-D ``y``) is folded,
        C order, channels first; lets the estimator follow tabular steps in a
        Pipeline. When None, 2-D ``X`` is a 1-D function.
    grid_ndim : int, default=None
        Number of grid axes of N-D ``X``. When None, every axis after the
        first is a grid axis (a single channel); set it to mark the axis after
        the samples as channels, e.g. ``grid_ndim=1`` for ``X`` of shape
        ``(n_samples, n_channels, n_points)``.
    device : str, default="auto"
        Torch device for training and prediction: "auto" (CUDA when
        available), "cpu", "cuda" or "cuda:N". With "cuda" or "auto" and
        several visible GPUs, the leaves' experts are spread over them.
        Predictions are numpy arrays; a model trained on a GPU unpickles on a
        machine without one and then predicts on its CPU.
    n_jobs : int, default=None
        Number of leaves' experts trained concurrently, through joblib, after
        the root expert. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context (which may also route the
        work to a Dask cluster); -1 means all cores. Each worker process gets
        its share of the CPU threads. A given ``n_jobs`` reproduces its
        results bitwise; across values of ``n_jobs`` they agree to float32
        rounding, since the number of torch threads per expert changes the
        order of floating-point sums.
    random_state : int, RandomState instance or None, default=None
        Seeds the encoder and the initialisation and shuffling of each
        expert; an int makes CPU fits reproducible.
    verbose : int, default=0
        Above zero, show a progress bar over leaves and epochs during fit.

    Attributes
    ----------
    encoder_ : transformer
        The fitted encoder.
    tree_ : KDPartition
        The fitted partition (directions, thresholds, children, leaf samples).
    experts_ : list of skorch.NeuralNetRegressor
        One trained net per leaf; its module reads and writes raw arrays.
    n_leaves_ : int
        Number of leaves fitted; smaller than ``n_leaves`` only when cells of
        identical encodings cannot be split.
    depth_ : int
        Depth of the tree: comparisons needed to route one query.
    n_params_active_ : int
        Parameters of the largest expert: what one query loads and evaluates
        (all its members, for an FNO expert with several).
    n_params_routing_ : int
        Numbers stored by the encoder and the tree to route a query.
    n_params_total_ : int
        Parameters of all experts plus ``n_params_routing_``.
    width_ : int or None
        Hidden channels of the built-in experts (per member): ``width``, what
        "auto" became, or a width given in ``expert_kwargs``; None for an
        expert class of your own, which ``width`` does not reach.
    root_epochs_ : int
        ``root_epochs``, or what "auto" became. A single leaf trained for
        ``root_epochs_ + max_epochs`` epochs.
    lr_ : float
        ``lr``, or what "auto" became.
    expert_kwargs_ : dict
        Keyword arguments every leaf's expert was built with (besides the
        channels, grid and ``pooled``): what this estimator passes for the
        fitted grid, updated with ``expert_kwargs``. An FNO's ``dropout``
        acts in the first half of an expert's training epochs, and only in
        the root expert when there is one (several leaves and
        ``root_epochs_ > 0``): the leaves' FNOs, fine-tuned from it or
        falling back to it, then have ``dropout`` 0. A model loaded from a
        file written by an earlier version has the keywords that file names;
        the others take the expert class's defaults.
    leaf_sizes_ : ndarray of shape (`n_leaves_`,)
        Training samples routed to each leaf. Each expert also trains on the
        samples that ``overlap`` shares across the borders of its cell.
    device_ : str
        Device the experts were trained on.
    grid_ : tuple of int
        Grid of ``X`` at fit.
    n_channels_in_ : int
        Input channels.
    n_features_in_ : int
        Values per sample of ``X`` at fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen at fit, when ``X`` had string column names.

    See Also
    --------
    sklearn_mono.encoders.FourierEncoder : The default routing encoder.
    sklearn_mono.experts.FNO : The default expert.
    sklearn_mono.metrics.relative_l2_error : The field's headline metric.

    Notes
    -----
    Kratsios, Furuya, Lara Benitez, Lassas and de Hoop, "Mixtures of Neural
    Operators Reduce Active Complexity in Operator Learning", arXiv 2404.09101.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mono import MoNORegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 32)).cumsum(axis=1) / 8
    >>> y = np.cumsum(X, axis=1) / 32           # an antiderivative
    >>> model = MoNORegressor(n_leaves=2, width=8, max_epochs=5, random_state=0)
    >>> model.fit(X, y).predict(X[:3]).shape
    (3, 32)
    >>> model.apply(X[:3]).shape
    (3,)
    >>> model.n_params_active_ < model.n_params_total_
    True
    """

    _parameter_constraints: dict = {
        "n_leaves": [Interval(Integral, 1, None, closed="left")],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left")],
        "encoder": [StrOptions({"fourier", "pca"}), HasMethods(["fit", "transform"])],
        "split": [StrOptions({"pca", "widest"})],
        "expert": [StrOptions(set(_EXPERTS)), type],
        "width": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "n_modes": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "expert_kwargs": [dict, None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "root_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "overlap": [Interval(Real, 0, 1, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "predict_batch_size": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"auto", "relative_l2", "mse"})],
        "grid_shape": ["array-like", None],
        "grid_ndim": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str],
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_leaves=4,
        *,
        min_samples_leaf=10,
        encoder="fourier",
        split="pca",
        expert="fno",
        width="auto",
        n_modes=16,
        n_layers=4,
        expert_kwargs=None,
        max_epochs=20,
        root_epochs="auto",
        overlap=0.2,
        lr="auto",
        batch_size=32,
        predict_batch_size=1024,
        loss="auto",
        grid_shape=None,
        grid_ndim=None,
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_leaves = n_leaves
        self.min_samples_leaf = min_samples_leaf
        self.encoder = encoder
        self.split = split
        self.expert = expert
        self.width = width
        self.n_modes = n_modes
        self.n_layers = n_layers
        self.expert_kwargs = expert_kwargs
        self.max_epochs = max_epochs
        self.root_epochs = root_epochs
        self.overlap = overlap
        self.lr = lr
        self.batch_size = batch_size
        self.predict_batch_size = predict_batch_size
        self.loss = loss
        self.grid_shape = grid_shape
        self.grid_ndim = grid_ndim
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the encoder, the partition and one expert per leaf.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions.
        y : array-like of shape (n_samples,), (n_samples, n_outputs), (n_samples, \\*grid) or (n_samples, n_channels, \\*grid)
            Output functions on the grid of ``X``, or scalars per sample.

        Returns
        -------
        self : MoNORegressor
            The fitted estimator.
        """
        before = self.__dict__.copy()
        try:
            return self._fit(X, y)
        except BaseException:
            # A failed fit leaves a previously fitted model as it was.
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        F, layout = validate_functions(
            self, X, reset=True, grid_shape=self.grid_shape, grid_ndim=self.grid_ndim
        )
        Y, y_layout = validate_targets(y, layout, self.grid_shape)
        check_consistent_length(F, Y)
        n = len(F)
        needed = self.n_leaves * self.min_samples_leaf
        if n < needed:
            raise ValueError(
                f"n_samples={n} is too few for n_leaves={self.n_leaves} with "
                f"min_samples_leaf={self.min_samples_leaf}: at least {needed} samples "
                f"are needed. Pass more samples or lower n_leaves or min_samples_leaf."
            )
        expert_cls = self._expert_class()
        device = _resolve_device(self.device)
        rng = check_random_state(self.random_state)

        encoder = self._make_encoder(rng, len(layout.grid))
        Z = encoder.fit_transform(self._encoder_input(encoder, F))
        tree = KDPartition(self.n_leaves, self.min_samples_leaf, self.split).fit(Z)
        if tree.n_leaves_fitted < self.n_leaves:
            warnings.warn(
                f"Only {tree.n_leaves_fitted} of n_leaves={self.n_leaves} leaves could "
                f"be formed: the remaining cells hold identical encodings or too few "
                f"samples to split.",
                UserWarning,
            )
        pooled = y_layout.kind != "function"
        stats = _channel_stats(F) + _channel_stats(Y)
        criterion, criterion_kwargs = self._criterion(pooled, Y, stats)
        kwargs = self._expert_kwargs(expert_cls, len(layout.grid))
        resolved = self._resolve_auto(len(layout.grid), expert_cls, kwargs)
        if expert_cls in (FNO, MLP):
            kwargs = {"width": resolved["width"], **kwargs}  # a width in expert_kwargs wins
        Xt, Yt = _as_tensor(F, "cpu"), _as_tensor(Y, "cpu")
        root_seed, *seeds = rng.randint(np.iinfo(np.int32).max, size=tree.n_leaves_fitted + 1)

        def new_operator(seed):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                operator = expert_cls(F.shape[1], Y.shape[1], layout.grid, pooled=pooled, **kwargs)
            return Standardized(operator, *stats)

        common = dict(criterion=criterion, criterion_kwargs=criterion_kwargs, batch_size=self.batch_size)
        n_leaves = tree.n_leaves_fitted
        if n_leaves > 1:
            root_epochs, leaf_epochs = resolved["root_epochs"], self.max_epochs
        else:
            # A single leaf is its own root: it gets the whole budget, so that
            # models with one and with several leaves train for as long.
            root_epochs, leaf_epochs = 0, resolved["root_epochs"] + self.max_epochs
        with tqdm(
            total=root_epochs + n_leaves * leaf_epochs,
            disable=not self.verbose,
            unit="epoch",
            desc="MoNO fit",
        ) as bar:
            root = None
            if root_epochs:
                bar.set_description("MoNO root")
                root, notes = train_expert(
                    new_operator(root_seed), Xt, Yt, lr=resolved["lr"], max_epochs=root_epochs,
                    seed=root_seed, device=device, bar=bar, name="the root expert", **common,
                )
                _warn_or_raise(root, notes, "the root expert")
                # Leaves start from CPU copies; each is moved to its own device.
                root = root.module_.to("cpu")
            cells = tree.training_samples(Z, self.overlap if n_leaves > 1 else 0.0)
            devices = _leaf_devices(device, n_leaves)
            jobs = [
                dict(
                    module=_fine_tuning_copy(root) if root is not None else new_operator(seed),
                    X=Xt[idx], y=Yt[idx], seed=seed, device=devices[leaf], name=f"leaf {leaf}",
                    lr=_leaf_lr(resolved["lr"], n_leaves, resolved["root_epochs"]),
                    max_epochs=leaf_epochs, **common,
                )
                for leaf, (idx, seed) in enumerate(zip(cells, seeds))
            ]
            results = self._train_leaves(jobs, bar)
            experts = [
                self._leaf_or_fallback(net, notes, leaf, root, devices[leaf], resolved["lr"], common)
                for leaf, (net, notes) in enumerate(results)
            ]

        sizes = [count_parameters(net.module_.operator) for net in experts]
        self.encoder_ = encoder
        self.tree_ = tree
        self.experts_ = experts
        self._expert_stack = _ExpertStack()
        self.n_leaves_ = tree.n_leaves_fitted
        self.depth_ = tree.depth
        self.leaf_sizes_ = np.array([len(idx) for idx in tree.leaf_samples])
        self.n_params_active_ = int(max(sizes))
        self.n_params_routing_ = int(tree.n_params + _count_encoder_params(encoder))
        self.n_params_total_ = int(sum(sizes) + self.n_params_routing_)
        for name, value in self._trained_settings(len(layout.grid), expert_cls, kwargs).items():
            setattr(self, name, value)
        self.device_ = device
        self.grid_ = layout.grid
        self.n_channels_in_ = layout.n_channels
        self._y_layout = y_layout
        self.expert_kwargs_ = dict(kwargs)
        self._expert_spec = (expert_cls, kwargs)  # what was fitted, for save()
        self._resolution_invariant = bool(getattr(expert_cls, "resolution_invariant", False))
        return self

    def _criterion(self, pooled, Y, stats):
        """The training loss class and its keyword arguments."""
        loss = self.loss
        if loss == "auto":
            loss = "mse" if pooled else "relative_l2"
        if loss == "mse":
            return StandardizedMSELoss, {"scale": stats[3]}
        # Samples whose target is (nearly) zero are divided by a thousandth of
        # the typical norm instead of by almost nothing.
        typical = float(np.linalg.norm(Y.reshape(len(Y), -1), axis=1).mean())
        return RelativeL2Loss, {"floor": 1e-3 * typical if typical > 0 else 1.0}

    def _train_leaves(self, jobs, bar):
        """Train every leaf's expert, in this process or side by side through joblib."""
        n_workers = min(effective_n_jobs(self.n_jobs), len(jobs))
        if n_workers == 1:
            results = []
            for leaf, job in enumerate(jobs):
                bar.set_description(f"MoNO leaf {leaf + 1}/{len(jobs)}")
                results.append(train_expert(**job, bar=bar))
            return results
        # Each worker process gets its share of the cores.
        threads = max(1, cpu_count() // n_workers)
        bar.set_description(f"MoNO {len(jobs)} leaves, {n_workers} workers")
        results = []
        tasks = (delayed(train_expert)(**job, n_threads=threads) for job in jobs)
        for job, result in zip(jobs, Parallel(n_jobs=self.n_jobs, return_as="generator")(tasks)):
            results.append(result)
            bar.update(job["max_epochs"])
        return results

    def _leaf_or_fallback(self, net, notes, leaf, root, device, lr, common):
        """A leaf's trained net; the root expert's when its training failed."""
        if net is not None or root is None:
            _warn_or_raise(net, notes, f"leaf {leaf}")
            return net
        for note in notes:
            warnings.warn(note, UserWarning)
        warnings.warn(
            f"Leaf {leaf} could not be trained at any learning rate tried; it falls "
            f"back to the root expert, trained on all samples.",
            UserWarning,
        )
        fallback = make_net(
            _fine_tuning_copy(root), lr=lr, max_epochs=self.max_epochs, device=device,
            **common,
        )
        fallback.initialize()
        fallback.module_.eval()
        return fallback

    def _expert_class(self):
        if isinstance(self.expert, str):
            return _EXPERTS[self.expert]
        if not issubclass(self.expert, torch.nn.Module):
            raise TypeError(
                f"expert must be 'fno', 'mlp' or a subclass of torch.nn.Module, got "
                f"{self.expert!r}."
            )
        return self.expert

    def _resolve_auto(self, grid_ndim, expert_cls, expert_kwargs):
        """``width``, ``root_epochs`` and ``lr``, "auto" resolved for the grid
        and expert (and, for an FNO expert, its residual blocks and members)."""
        if expert_cls is FNO and grid_ndim == 1:
            preset = _AUTO_FNO_1D
        elif expert_cls is FNO and expert_kwargs.get("residual", False):
            n_members = expert_kwargs.get("n_members", 1)
            several = isinstance(n_members, Integral) and n_members > 1
            preset = _AUTO_FNO_MEMBERS if several else _AUTO_FNO_RESIDUAL
        else:
            preset = _AUTO
        return {
            name: preset[name] if isinstance(getattr(self, name), str) else getattr(self, name)
            for name in ("width", "root_epochs", "lr")
        }

    def _trained_settings(self, grid_ndim, expert_cls, expert_kwargs):
        """``width_``, ``root_epochs_`` and ``lr_``: the parameters with "auto"
        resolved, and the width the built-in experts are built with from
        ``expert_kwargs`` (None for experts of one's own)."""
        resolved = self._resolve_auto(grid_ndim, expert_cls, expert_kwargs)
        width = expert_kwargs.get("width", resolved["width"]) if expert_cls in (FNO, MLP) else None
        return {
            "width_": None if width is None else int(width),
            "root_epochs_": int(resolved["root_epochs"]),
            "lr_": float(resolved["lr"]),
        }

    def _expert_kwargs(self, expert_cls, grid_ndim):
        """The experts' keyword arguments but the width: this estimator's for
        the built-in experts (for the FNO expert on 2-D and 3-D grids,
        residual blocks and, with them, two members), updated with
        ``expert_kwargs``."""
        kwargs = {}
        given = self.expert_kwargs or {}
        if expert_cls is FNO:
            kwargs = dict(n_modes=self.n_modes, n_layers=self.n_layers, factorized=True)
            if grid_ndim > 1:
                kwargs["residual"] = True
                if given.get("residual", True) and "n_members" not in given:
                    kwargs["n_members"] = _AUTO_N_MEMBERS
        elif expert_cls is MLP:
            kwargs = dict(n_layers=self.n_layers)
        kwargs.update(given)
        return kwargs

    def _make_encoder(self, rng, grid_ndim):
        seed = rng.randint(np.iinfo(np.int32).max)
        if self.encoder == "fourier":
            return FourierEncoder(n_modes=4, grid_ndim=grid_ndim)
        if self.encoder == "pca":
            return PCAEncoder(n_components=8, grid_ndim=grid_ndim, random_state=seed)
        encoder = clone(self.encoder)
        if isinstance(encoder, _FunctionEncoder):
            # It receives (n_samples, n_channels, *grid) arrays.
            encoder.set_params(grid_ndim=grid_ndim, grid_shape=None)
        return encoder

    @staticmethod
    def _encoder_input(encoder, F):
        """Our encoders read functions on their grid; others read flat rows."""
        if isinstance(encoder, _FunctionEncoder):
            return F
        return F.reshape(len(F), -1)

    # -------------------------------------------------------------- predict

    def _validate_query(self, X):
        check_is_fitted(self)
        step = self.predict_batch_size
        if not isinstance(step, Integral) or step < 1:
            raise ValueError(f"predict_batch_size must be a positive integer, got {step!r}.")
        F, layout = validate_functions(
            self, X, reset=False, grid_shape=self.grid_shape, fitted_grid_ndim=len(self.grid_)
        )
        if layout.n_channels != self.n_channels_in_:
            raise ValueError(
                f"X has {layout.n_channels} input channel(s), but {type(self).__name__} "
                f"was fitted with {self.n_channels_in_}."
            )
        if layout.grid != self.grid_ and not self._resolution_invariant:
            raise ValueError(
                f"X is sampled on the grid {layout.grid}, but the model was fitted on "
                f"{self.grid_} and its expert {self._expert_class().__name__} works at "
                f"one resolution only. Resample X to {self.grid_}, or use expert='fno'."
            )
        return F, layout

    def _encode(self, F):
        encoder = self.encoder_
        if type(encoder) in (FourierEncoder, PCAEncoder):
            # F is already validated and in the encoder's layout. (A subclass
            # may override transform, so it goes through transform.)
            return encoder._transform_functions(F)
        if F.shape[2:] != self.grid_:
            F = resample(F, self.grid_)
        return encoder.transform(self._encoder_input(encoder, F))

    def apply(self, X):
        """Return the index of the leaf each sample is routed to.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions.

        Returns
        -------
        leaves : ndarray of shape (n_samples,)
            Leaf index in ``range(n_leaves_)``; ``experts_[leaves[i]]``
            predicts sample ``i``.
        """
        F, _ = self._validate_query(X)
        step = self.predict_batch_size
        chunks = range(0, len(F), step)
        return np.concatenate([self.tree_.apply(self._encode(F[i : i + step])) for i in chunks])

    def predict(self, X):
        """Route each input to its leaf and evaluate that leaf's expert.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions. With the FNO expert, N-D input may be sampled on
            another grid than at fit (e.g. finer, for super-resolution); the
            output is then on that grid.

        Returns
        -------
        y_pred : ndarray
            Predictions in the layout ``y`` had at fit, on the grid of ``X``;
            float32 for float32 input, float64 otherwise.
        """
        F, layout = self._validate_query(X)
        y_layout = self._y_layout
        if y_layout.kind == "function":
            out_shape = (y_layout.n_channels,) + layout.grid
        else:
            out_shape = (y_layout.n_channels,)
        dtype = np.float32 if F.dtype == np.float32 else np.float64
        P = np.empty((len(F),) + out_shape, dtype=dtype)
        # Chunks bound the memory used beyond the input and the output.
        step = self.predict_batch_size
        for start in range(0, len(F), step):
            chunk = F[start : start + step]
            leaves = self.tree_.apply(self._encode(chunk))
            if len(chunk) == 1:  # a single query: no grouping by leaf
                P[start] = _evaluate(self.experts_[leaves[0]], chunk)[0]
                continue
            rows = [np.flatnonzero(leaves == leaf) for leaf in range(len(self.experts_))]
            stack = self._stack_for([len(r) for r in rows], layout.grid)
            outs = None if stack is None else _evaluate_stacked(stack, self.experts_, chunk, rows)
            if outs is not None:
                for leaf_rows, out in zip(rows, outs):
                    P[start + leaf_rows] = out
                continue
            for leaf, leaf_rows in enumerate(rows):
                if len(leaf_rows):
                    P[start + leaf_rows] = _evaluate(self.experts_[leaf], chunk[leaf_rows])
        return restore_targets(P, y_layout)

    def _stack_for(self, sizes, grid):
        """The leaves' experts as one grouped FNO (see ``experts._stack``),
        when a chunk whose leaves get ``sizes`` queries on ``grid`` is
        evaluated faster that way, else None.

        Leaf by leaf, each forward pass has a fixed price (its operations'
        overhead), which dominates on small experts and small groups, so a
        batch's cost per query grows with the number of leaves it reaches.
        A stacked pass evaluates every leaf at once, each on as many queries
        as the largest group, the others padded. Its grouped layers are
        slower than one pass per leaf on large groups, so it is taken while
        the largest group x the experts' lifted channels (``n_members x
        width``) x the points of the queries' grid is at most
        ``_STACK_VALUES``, and the padding adds at most ``_STACK_PADDING``
        queries per leaf with queries. Measured on 1000 queries: Burgers'
        defaults (16 points, width 14, 4 leaves, largest group 305) 4.1
        against 5.3 ms leaf by leaf; 64 points at width 14 (4 leaves), 17.3
        against 13.6 ms, and 256 points at width 32, 250 against 112 ms
        (neither taken); the benchmark's growth model with 32 leaves (16
        points, width 12) 4.8 against 25.8 ms, and 11.6 against 25.4 ms on
        queries needing 2.4 times as many padded. Darcy flow (16x16, width
        24, 4 leaves): 14.1 against 17.1 ms for 64 queries, 305 against 229
        ms for 1000 (not taken).

        Experts are evaluated leaf by leaf unless they are all plain FNOs of
        one architecture on one device, in evaluation mode, without hooks or
        inference-mode weights, and for chunks with a query whose
        standardised value is not finite (see ``StackedExperts.evaluate``).
        """
        cache = self.__dict__.get("_expert_stack")
        present = sum(1 for s in sizes if s)
        if cache is None or present < 2:
            return None
        fno = fno_of(self.experts_[0].module_)
        if fno is None:
            return None
        largest = max(sizes)
        if largest * fno.lift.out_channels * int(np.prod(grid)) > _STACK_VALUES:
            return None
        if len(sizes) * largest - sum(sizes) > _STACK_PADDING * present:
            return None
        return cache.get([net.module_ for net in self.experts_])

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R² of the predictions.

        Every value of a sample's output (channels and grid points) is one
        output, and the outputs are averaged weighted by their variance,
        i.e. ``1 - SSE / SST`` over all values.

        Parameters
        ----------
        X : array-like
            Input functions.
        y : array-like
            True outputs, in the layout used at fit.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R² of ``self.predict(X)`` against ``y``.
        """
        y_pred = self.predict(X)
        y = np.asarray(y)
        n = len(y)
        return r2_score(
            y.reshape(n, -1),
            y_pred.reshape(n, -1),
            sample_weight=sample_weight,
            multioutput="variance_weighted",
        )

    def save(self, path):
        """Write the fitted model to ``path`` in a safe, pickle-free format.

        The file holds the weights as numpy arrays and a plain JSON
        description, with a SHA-256 digest over both; :func:`sklearn_mono.load`
        reads it without running any code from the file. Training history
        and optimiser state are not kept. Models with a user's expert class
        are saved too (load them with ``custom_objects``); a model with an
        encoder other than this package's cannot be, use ``joblib.dump``.

        Parameters
        ----------
        path : str or path-like
            Destination file; conventionally ``*.npz``.

        Returns
        -------
        self : MoNORegressor
            The model, unchanged.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from sklearn_mono import MoNORegressor, load
        >>> X = np.random.default_rng(0).normal(size=(40, 16))
        >>> model = MoNORegressor(n_leaves=2, min_samples_leaf=5, width=4, max_epochs=2,
        ...                       root_epochs=2, random_state=0).fit(X, X)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> _ = model.save(path)
        >>> same = load(path)
        >>> bool(np.array_equal(same.predict(X), model.predict(X)))
        True
        """
        from ._persistence import save_model

        save_model(self, path)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.three_d_array = True
        return tags


def _fine_tuning_copy(root):
    """A leaf's starting module: a copy of the root expert's that drops
    nothing if it is an FNO. Dropout regularises the root, trained on every
    sample; the leaves' short fine-tuning without it did as well on Darcy
    flow sampled at 16x16 from 32x32 solutions (four residual experts,
    dropout 0.1 in all epochs, seeds 0, 1, 2: 0.0311, 0.0315, 0.0311
    against 0.0312, 0.0314, 0.0311 with dropout in the leaves too; 0.0322
    with dropout in the leaves only, seed 0) and better on Darcy flow
    solved at 16x16 (0.0122 against 0.0133, seed 0)."""
    return _without_dropout(copy.deepcopy(root))


def _without_dropout(module):
    """``module`` (a ``Standardized`` expert) set to drop nothing when its
    operator is an FNO; other experts, and FNOs inside them, are left as
    they are."""
    fno = fno_of(module)
    if fno is not None:
        fno.dropout = 0.0
    return module


def _as_tensor(A, device):
    """A float32 tensor copy of the numpy array ``A``. torch refuses negative
    strides (reversed views such as ``X[::-1]``), which numpy keeps even on
    arrays it calls contiguous (on axes of length 1)."""
    if any(stride < 0 for stride in A.strides):
        A = A.copy()
    return torch.tensor(A, dtype=torch.float32, device=device)


def _evaluate(net, A):
    """Forward pass of a trained expert's module on a numpy batch, back to numpy."""
    module = net.module_
    was_training = module.training  # trained experts are left in eval mode
    if was_training:
        module.eval()
    try:
        # The experts' weights change only through fit, which trains them:
        # their spectral layers may check their inference factors by version.
        with torch.inference_mode(), _versioned_weights():
            out = module(_as_tensor(A, net.device))
    finally:
        if was_training:
            module.train()
    return out.cpu().numpy()


def _evaluate_stacked(stack, nets, A, rows):
    """Outputs of ``nets[e]`` on ``A[rows[e]]`` for every expert ``e``, from
    their stacked grouped FNO, as numpy arrays."""
    with torch.inference_mode(), _versioned_weights():
        x = _as_tensor(A, nets[0].device)
        outs = stack.evaluate([x[torch.as_tensor(r, device=x.device)] for r in rows])
    return None if outs is None else [out.cpu().numpy() for out in outs]


class _ExpertStack:
    """Holds the fitted experts stacked into one grouped FNO, built on the
    first batch that takes it and rebuilt when an expert changes (see
    ``StackedExperts.holds_for``). It pickles and copies as empty: the
    stack is derived from the experts."""

    stack = None  # also what pickle protocols 0 and 1 restore, without __setstate__

    def __init__(self):
        self.stack = None

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()

    def __deepcopy__(self, memo):
        return _ExpertStack()

    def get(self, modules):
        """The stack of ``modules``, or None when they do not stack."""
        if self.stack is not None and self.stack.holds_for(modules):
            return self.stack
        self.stack = None
        if any(m.training for m in modules) or stack_signature(modules) is None:
            return None
        try:
            with torch.inference_mode(False):
                self.stack = StackedExperts(modules)
        except (TypeError, ValueError):
            # Experts whose settings today's FNO refuses (saved by an older
            # version): they still predict leaf by leaf.
            return None
        return self.stack


def _count_encoder_params(encoder):
    """Stored numbers a fitted encoder needs to transform one query."""
    if isinstance(encoder, PCAEncoder):
        pca = encoder.pca_
        return pca.components_.size + pca.mean_.size
    if isinstance(encoder, FourierEncoder):
        return 0
    return sum(
        np.size(value)
        for name, value in vars(encoder).items()
        if name.endswith("_") and not name.startswith("_") and isinstance(value, np.ndarray)
    )
