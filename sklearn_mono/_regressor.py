"""MoNORegressor: a routed mixture of neural operators."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted
from tqdm.auto import tqdm

from ._layout import resample, restore_targets, validate_functions, validate_query, validate_targets
from ._training import grow, resolve_device
from .encoders import FourierEncoder, PCAEncoder, _FunctionEncoder
from .experts import NeuralOperatorRegressor
from .metrics import _flat_r2_score


class MoNORegressor(RegressorMixin, BaseEstimator):
    """Mixture of neural operators: route each input function to one expert.

    An encoder maps each input function to a short vector (low Fourier modes
    or principal components), a tree of hyperplane splits sends that vector to
    one leaf, and the leaf's expert predicts the output function. A query
    evaluates one expert only, the *active* model of Kratsios et al. (2024).
    ``X`` and ``y`` follow ``docs/data_layout.rst``.

    Fitting trains a root expert on all samples, then grows the tree where
    splitting pays: a leaf is split where its expert's per-sample gradients
    change most across the encodings, each side fine-tunes a copy of the
    leaf's expert (early-stopped on the side's held-out samples, so it
    stays at its parent's weights when training does not help), and the
    split is kept only when the two children lower the held-out error of the
    leaf's samples. ``n_leaves`` is therefore a ceiling: ``n_leaves_`` is
    smaller when further splits did not pay, and 1, the expert alone, when
    none did. See ``docs/model.rst``.

    Parameters
    ----------
    n_leaves : int, default=4
        Most cells of the partition, hence experts; fewer are kept when
        further splits do not lower the held-out error.
    expert : NeuralOperatorRegressor, default=None
        Cloned for the root and copied for every leaf; None means
        ``NeuralOperatorRegressor()``. Set its options as ``expert__param``.
        Its ``random_state``, when set, seeds the root; its ``device`` is
        replaced by ``device``.
    encoder : {"fourier", "pca"} or transformer, default="fourier"
        Routing encoder: :class:`~sklearn_mono.encoders.FourierEncoder` with 4
        modes, :class:`~sklearn_mono.encoders.PCAEncoder` with 8 components,
        or any transformer (cloned at fit; it reads rows flattened on the fit
        grid).
    min_samples_leaf : int, default=10
        Fewest training samples (held-out ones not counted) a split may leave
        on either side; a split also leaves at least a tenth of the cell's.
    validation_fraction : float, default=0.2
        Fraction of the samples held out from the leaves' training to judge
        splits and stop the leaves' fine-tuning.
    leaf_epochs : int, default=20
        Most fine-tuning epochs of a leaf's expert, at the root's learning
        rate on a new cosine schedule.
    grid_shape : tuple of int, default=None
        Grid onto which each row of 2-D ``X`` and ``y`` is folded.
    grid_ndim : int, default=None
        Number of grid axes of N-D ``X``; None means every axis after the first.
    device : str, default="auto"
        "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"; "cuda" with
        several GPUs trains the two sides of a split on two of them.
    n_jobs : int, default=None
        Parallel jobs through joblib for the two experts of a split (more
        than 2 do not help); None means 1 (or the
        :func:`joblib.parallel_config` setting), -1 all cores.
    random_state : int, RandomState instance or None, default=None
        Seeds the encoder and every expert.
    verbose : int, default=0
        Above zero, show a progress bar over the experts during fit.

    Attributes
    ----------
    encoder_ : transformer
        The fitted encoder.
    tree_ : Partition
        The fitted routing tree.
    experts_ : list of NeuralOperatorRegressor
        One trained expert per leaf.
    n_leaves_ : int
        Leaves kept; fewer than ``n_leaves`` when further splits did not pay.
    depth_ : int
        Depth of the tree: comparisons needed to route one query.
    n_params_active_ : int
        Parameters of the largest expert: what one query evaluates.
    n_params_routing_ : int
        Numbers stored by the encoder and the tree for routing.
    n_params_total_ : int
        Parameters of all experts plus ``n_params_routing_``.
    leaf_sizes_ : ndarray of shape (`n_leaves_`,)
        Samples routed to each leaf, held-out ones included.
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
    sklearn_mono.experts.NeuralOperatorRegressor : The expert, usable alone.
    sklearn_mono.encoders.FourierEncoder : The default routing encoder.

    Notes
    -----
    Kratsios, Furuya, Lara Benitez, Lassas and de Hoop, "Mixtures of Neural
    Operators Reduce Active Complexity in Operator Learning", arXiv 2404.09101.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mono import MoNORegressor
    >>> from sklearn_mono.experts import NeuralOperatorRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 32)).cumsum(axis=1) / 8
    >>> y = np.cumsum(X, axis=1) / 32           # an antiderivative
    >>> expert = NeuralOperatorRegressor(module__width=8, max_epochs=5)
    >>> model = MoNORegressor(n_leaves=2, expert=expert, leaf_epochs=2, random_state=0)
    >>> model.fit(X, y).predict(X[:3]).shape
    (3, 32)
    >>> model.apply(X[:3]).shape
    (3,)
    >>> model.n_params_active_ <= model.n_params_total_
    True
    """

    _parameter_constraints: dict = {
        "n_leaves": [Interval(Integral, 1, None, closed="left")],
        "expert": [HasMethods(["fit", "predict"]), None],
        "encoder": [StrOptions({"fourier", "pca"}), HasMethods(["fit", "transform"])],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "leaf_epochs": [Interval(Integral, 1, None, closed="left")],
        "grid_shape": ["array-like", None],
        "grid_ndim": [Interval(Integral, 1, 3, closed="both"), None],
        "device": [str],
        "n_jobs": [Interval(Integral, None, -1, closed="right"),
                   Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self, n_leaves=4, *, expert=None, encoder="fourier", min_samples_leaf=10,
        validation_fraction=0.2, leaf_epochs=20, grid_shape=None, grid_ndim=None,
        device="auto", n_jobs=None, random_state=None, verbose=0,
    ):
        self.n_leaves = n_leaves
        self.expert = expert
        self.encoder = encoder
        self.min_samples_leaf = min_samples_leaf
        self.validation_fraction = validation_fraction
        self.leaf_epochs = leaf_epochs
        self.grid_shape = grid_shape
        self.grid_ndim = grid_ndim
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the encoder, the partition and one expert per leaf.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions.
        y : array-like of shape (n_samples, ...)
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
        expert = self._expert()
        F, layout = validate_functions(
            self, X, reset=True, grid_shape=self.grid_shape, grid_ndim=self.grid_ndim
        )
        Y, y_layout = validate_targets(y, layout, self.grid_shape)
        check_consistent_length(F, Y)
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        encoder_seed, root_seed = rng.randint(np.iinfo(np.int32).max, size=2)

        encoder = self._make_encoder(encoder_seed, len(layout.grid))
        Z = encoder.fit_transform(_encoder_input(encoder, F))
        expert.set_params(grid_shape=None, grid_ndim=len(layout.grid), device=device)
        if expert.random_state is None:
            expert.set_params(random_state=int(root_seed))
        held_out = np.zeros(len(F), dtype=bool)
        held_out[rng.permutation(len(F))[: int(round(self.validation_fraction * len(F)))]] = True
        with tqdm(total=None if self.n_leaves > 1 else 1, disable=not self.verbose,
                  unit="expert", desc="MoNO fit") as bar:
            root = expert.fit(F, Y)
            bar.update(1)
            tree, experts = grow(
                root, F, Y, Z, max_leaves=self.n_leaves, min_samples_leaf=self.min_samples_leaf,
                held_out=held_out, max_epochs=self.leaf_epochs, rng=rng, device=device,
                n_jobs=self.n_jobs, bar=bar,
            )

        sizes = [net.n_params_ for net in experts]
        self.encoder_, self.tree_, self.experts_ = encoder, tree, experts
        self.n_leaves_, self.depth_ = tree.n_leaves, tree.depth
        self.leaf_sizes_ = np.bincount(tree.apply(Z), minlength=tree.n_leaves)
        self.n_params_active_ = int(max(sizes))
        self.n_params_routing_ = int(tree.n_params + _count_encoder_params(encoder))
        self.n_params_total_ = int(sum(sizes) + self.n_params_routing_)
        self.device_, self.grid_, self.n_channels_in_ = device, layout.grid, layout.n_channels
        self.target_layout_ = y_layout
        return self

    def _expert(self):
        """A clone of ``expert``, or the default expert."""
        if self.expert is None:
            return NeuralOperatorRegressor()
        if not isinstance(self.expert, NeuralOperatorRegressor):
            raise TypeError(
                f"expert must be a NeuralOperatorRegressor (see sklearn_mono.experts), got "
                f"{type(self.expert).__name__}. Pass your torch module as "
                f"NeuralOperatorRegressor(module=YourModule)."
            )
        return clone(self.expert)

    def _make_encoder(self, seed, grid_ndim):
        if self.encoder == "fourier":
            return FourierEncoder(n_modes=4, grid_ndim=grid_ndim)
        if self.encoder == "pca":
            return PCAEncoder(n_components=8, grid_ndim=grid_ndim, random_state=int(seed))
        encoder = clone(self.encoder)
        if isinstance(encoder, _FunctionEncoder):
            # It receives (n_samples, n_channels, *grid) arrays.
            encoder.set_params(grid_ndim=grid_ndim, grid_shape=None)
        return encoder

    def _validate_query(self, X):
        check_is_fitted(self)
        expert = NeuralOperatorRegressor() if self.expert is None else self.expert
        return validate_query(self, X, self.grid_shape, expert.resolution_invariant)

    def _route(self, F):
        """Leaf of each canonical function of ``F``."""
        encoder = self.encoder_
        if not isinstance(encoder, _FunctionEncoder) and F.shape[2:] != self.grid_:
            F = resample(F, self.grid_)
        return self.tree_.apply(encoder.transform(_encoder_input(encoder, F)))

    def apply(self, X):
        """Return the index of the leaf each sample is routed to.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions.

        Returns
        -------
        leaves : ndarray of shape (n_samples,)
            Leaf index; ``experts_[leaves[i]]`` predicts sample ``i``.
        """
        F, _ = self._validate_query(X)
        return self._route(F)

    def predict(self, X):
        """Route each input to its leaf and evaluate that leaf's expert.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Input functions; N-D input may use another grid than at fit when
            the expert is resolution-invariant (the FNO).

        Returns
        -------
        y_pred : ndarray
            Predictions in the layout of ``y`` at fit, on the grid of ``X``.
        """
        F, _ = self._validate_query(X)
        leaves = self._route(F)
        out = None
        for leaf in np.unique(leaves):
            rows = np.flatnonzero(leaves == leaf)
            pred = self.experts_[leaf].predict(F[rows])
            if out is None:
                out = np.empty((len(F),) + pred.shape[1:], dtype=pred.dtype)
            out[rows] = pred
        return restore_targets(out, self.target_layout_)

    def resident_experts(self):
        """The leaves whose experts are in memory, with their bytes of weights.

        Every expert of a fitted or eagerly loaded model is in memory; a model
        loaded with ``load(path, lazy=True)`` holds only those read so far
        (see ``docs/saving.rst``).

        Returns
        -------
        resident : dict of int to int
            Bytes of weights and buffers by leaf.
        """
        check_is_fitted(self)
        if hasattr(self.experts_, "resident"):
            return self.experts_.resident()
        return {leaf: net.nbytes_ for leaf, net in enumerate(self.experts_)}

    def score(self, X, y, sample_weight=None):
        """R² of the predictions over all output values, ``1 - SSE / SST``.

        Parameters
        ----------
        X : array-like
            Input functions.
        y : array-like
            True outputs, in the layout of fit.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R² of ``self.predict(X)`` against ``y``.
        """
        return _flat_r2_score(y, self.predict(X), sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.three_d_array = True
        return tags


def _encoder_input(encoder, F):
    """This package's encoders read functions on their grid; others read flat rows."""
    return F if isinstance(encoder, _FunctionEncoder) else F.reshape(len(F), -1)


def _count_encoder_params(encoder):
    """Stored numbers a fitted encoder needs to transform one query."""
    if isinstance(encoder, PCAEncoder):
        return encoder.pca_.components_.size + encoder.pca_.mean_.size
    if isinstance(encoder, FourierEncoder):
        return 0
    fitted = [v for k, v in vars(encoder).items() if k.endswith("_") and not k.startswith("_")]
    return sum(np.size(v) for v in fitted if isinstance(v, np.ndarray))
