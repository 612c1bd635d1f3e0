"""Safe model files: weights as numpy arrays plus a plain JSON description.

A file written by :meth:`MoNORegressor.save` is a zip archive of ``.npy``
arrays (numpy's ``.npz``), read back with ``allow_pickle=False``: loading it
runs no code from the file. One array holds the JSON description of the model
(its parameters and everything learned that is not a weight); another holds a
SHA-256 digest of all the others, so a truncated or altered file is refused
with a ``ValueError``. The digest guards against damage and careless edits;
the format itself (no pickle) is what keeps a file from executing code.

Only the package's own encoders and experts are rebuilt by name. A model
with a user's expert class is loaded by passing that class in
``custom_objects``; nothing is ever imported by a name read from a file.
"""

import hashlib
import json
import zipfile
from numbers import Integral

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from ._functions import TargetLayout
from ._partition import KDPartition
from .encoders import FourierEncoder, PCAEncoder
from ._regressor import (
    _EXPERTS,
    MoNORegressor,
    _ExpertStack,
    _leaf_lr,
    _resolve_device,
    _warm_started,
    _without_dropout,
)
from .experts import FNO, RelativeL2Loss, Standardized, StandardizedMSELoss
from .experts._net import make_net

FORMAT = "sklearn_mono.MoNORegressor"
# 2: the FNO expert uses the tanh approximation of GELU (1 used the exact form).
# 3: the FNO expert may have factorised Fourier layers (its ``factorized``
#    keyword); files of version 2 have full ones, the FNO's default, and read
#    as they were written.
# 4: the FNO expert may read periodic coordinates (its ``positional``
#    keyword); files of versions 2 and 3 have linear ones, the default.
# 5: the FNO expert may have residual blocks (its ``residual`` keyword);
#    files of versions 2 to 4 have plain layers, the default.
# 6: the FNO expert may be symmetric under reflections (its ``symmetric``
#    keyword, with real spectral weights, and ``positional="even"``) and
#    may drop activations in training (its ``dropout`` keyword, which
#    changes no weights); files of versions 2 to 5 have none of these, the
#    default.
# 7: the FNO expert may hold several members evaluated together (its
#    ``n_members`` keyword); files of versions 2 to 6 have one, the default.
# 8: the FNO expert uses the exact GELU on 2-D and 3-D grids; the file
#    records each expert's GELU forms. Files of versions 2 to 7 used the
#    tanh approximation on every grid, and their experts load with it.
VERSION = 8
_READABLE = (2, 3, 4, 5, 6, 7, 8)
_META, _DIGEST = "__meta__", "__digest__"
_BUILTIN_EXPERTS = {cls.__name__: cls for cls in _EXPERTS.values()}
_PCA_ARRAYS = (
    "components_", "mean_", "explained_variance_", "explained_variance_ratio_", "singular_values_",
)
_ENCODERS = {"FourierEncoder": FourierEncoder, "PCAEncoder": PCAEncoder}
_TREE_ARRAYS = (
    "direction", "threshold", "children_left", "children_right", "parent", "leaf_id",
    "node_depth", "leaf_nodes",
)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not plain data")


def _jsonable(value, what):
    try:
        json.dumps(value, default=_json_default)
    except TypeError:
        raise TypeError(
            f"{what}={value!r} cannot be written to a model file, which holds only "
            f"plain data; use joblib.dump for such a model."
        ) from None
    return value


def _digest(meta_bytes, arrays):
    h = hashlib.sha256(meta_bytes)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _encoder_state(encoder, arrays):
    name = type(encoder).__name__
    if name not in _ENCODERS or type(encoder) is not _ENCODERS[name]:
        raise TypeError(
            f"save() supports the encoders 'fourier' and 'pca' (FourierEncoder, "
            f"PCAEncoder); this model's encoder is {name}. Use joblib.dump instead."
        )
    state = {
        "class": name,
        "params": _jsonable(_plain(encoder.get_params()), "encoder parameters"),
        "grid": list(encoder.grid_),
        "n_channels": encoder.n_channels_,
        "n_features_in": encoder.n_features_in_,
    }
    if isinstance(encoder, FourierEncoder):
        arrays["encoder/modes"] = encoder.modes_
    else:
        pca = encoder.pca_
        state["n_components"] = encoder.n_components_
        state["pca"] = {
            "n_components_": int(pca.n_components_),
            "n_samples_": int(pca.n_samples_),
            "noise_variance_": float(pca.noise_variance_),
            "n_features_in_": int(pca.n_features_in_),
        }
        for attr in _PCA_ARRAYS:
            arrays[f"encoder/pca/{attr}"] = getattr(pca, attr)
    return state


def _plain(params):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def _make_encoder(spec):
    if spec["class"] not in _ENCODERS:
        raise ValueError(f"Unknown encoder class {spec['class']!r} in the model file.")
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["params"].items()}
    return _ENCODERS[spec["class"]](**params)


def _build_encoder(state, arrays):
    encoder = _make_encoder(state)
    encoder.grid_ = tuple(state["grid"])
    encoder.n_channels_ = state["n_channels"]
    encoder.n_features_in_ = state["n_features_in"]
    if isinstance(encoder, FourierEncoder):
        encoder.modes_ = arrays["encoder/modes"]
    else:
        encoder.n_components_ = state["n_components"]
        pca = PCA(n_components=state["pca"]["n_components_"], whiten=encoder.whiten)
        for attr, value in state["pca"].items():
            setattr(pca, attr, value)
        for attr in _PCA_ARRAYS:
            setattr(pca, attr, arrays[f"encoder/pca/{attr}"])
        encoder.pca_ = pca
    return encoder


def _resolved_of(model):
    """The fitted ``width_``, ``root_epochs_`` and ``lr_``.

    A model fitted by a release without them (and unpickled here) held
    numbers for ``width``, ``root_epochs`` and ``lr``, and its experts their
    width: those are what it trained with.
    """
    if hasattr(model, "lr_"):
        return {"width_": model.width_, "root_epochs_": model.root_epochs_, "lr_": model.lr_}
    return model._trained_settings(len(model.grid_), *model._expert_spec)


def save_model(model, path):
    """Write a fitted ``MoNORegressor`` to ``path`` (see the module docstring)."""
    check_is_fitted(model)
    arrays = {}
    params = model.get_params(deep=False)
    expert = params["expert"]
    if not isinstance(expert, str):
        params["expert"] = {"custom": expert.__qualname__}
    if not isinstance(params["encoder"], str):
        # An unfitted encoder of this package, given as a parameter.
        params["encoder"] = {
            "class": type(params["encoder"]).__name__,
            "params": _plain(params["encoder"].get_params()),
        }
    if isinstance(params["random_state"], Integral):
        params["random_state"] = int(params["random_state"])
    else:
        params["random_state"] = None  # a RandomState instance is not plain data
    if params["grid_shape"] is not None:
        params["grid_shape"] = [int(g) for g in params["grid_shape"]]
    _jsonable(params, "the model's parameters")

    tree = model.tree_
    for name in _TREE_ARRAYS:
        arrays[f"tree/{name}"] = getattr(tree, name)
    arrays["tree/leaf_samples"] = np.concatenate(tree.leaf_samples)
    arrays["tree/leaf_offsets"] = np.cumsum([0] + [len(s) for s in tree.leaf_samples])

    expert_cls, expert_kwargs = model._expert_spec
    experts = []
    for leaf, net in enumerate(model.experts_):
        for key, value in net.module_.state_dict().items():
            arrays[f"experts/{leaf}/{key}"] = value.detach().cpu().numpy()
        experts.append(sorted(net.module_.state_dict()))
    y_layout = model._y_layout
    state = {
        "encoder": _encoder_state(model.encoder_, arrays),
        "tree": {
            "n_leaves": tree.n_leaves,
            "min_samples_leaf": tree.min_samples_leaf,
            "split": tree.split,
        },
        "expert": {
            "class": expert_cls.__name__,
            "kwargs": _jsonable(expert_kwargs, "expert_kwargs"),
            "in_channels": model.n_channels_in_,
            "out_channels": y_layout.n_channels,
            "pooled": y_layout.kind != "function",
            "loss": type(model.experts_[0].criterion_).__name__,
            "floor": getattr(model.experts_[0].criterion_, "floor", None),
            "state_keys": experts,
            "gelu": [_gelu_forms(net.module_) for net in model.experts_],
        },
        "y_layout": vars(y_layout),
        "fitted": {
            "n_leaves_": model.n_leaves_,
            "depth_": model.depth_,
            "n_params_active_": model.n_params_active_,
            "n_params_routing_": model.n_params_routing_,
            "n_params_total_": model.n_params_total_,
            **_resolved_of(model),
            "leaf_sizes_": [int(s) for s in model.leaf_sizes_],
            "device_": model.device_,
            "grid_": list(model.grid_),
            "n_channels_in_": model.n_channels_in_,
            "n_features_in_": model.n_features_in_,
            "feature_names_in_": (
                [str(f) for f in model.feature_names_in_]
                if hasattr(model, "feature_names_in_") else None
            ),
            "_resolution_invariant": model._resolution_invariant,
        },
    }
    meta = json.dumps(
        {"format": FORMAT, "version": VERSION, "params": params, "state": state},
        default=_json_default,
    )
    meta_bytes = meta.encode()
    arrays[_META] = np.frombuffer(meta_bytes, dtype=np.uint8)
    digest = _digest(meta_bytes, {k: v for k, v in arrays.items() if k != _META})
    arrays[_DIGEST] = np.frombuffer(digest.encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _read(path):
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it is a single array, not an archive")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(
            f"{path} is not a readable sklearn_mono model file: it may be truncated or "
            f"corrupted ({type(exc).__name__}: {exc})."
        ) from None
    if _META not in arrays or _DIGEST not in arrays:
        raise ValueError(f"{path} is not a sklearn_mono model file: its description is missing.")
    meta_bytes = arrays.pop(_META).tobytes()
    digest = arrays.pop(_DIGEST).tobytes().decode("ascii", errors="replace")
    if _digest(meta_bytes, arrays) != digest:
        raise ValueError(
            f"{path} failed its integrity check: the file was altered or damaged after "
            f"it was saved. Refusing to load it."
        )
    meta = json.loads(meta_bytes)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} holds {meta.get('format')!r}, not a {FORMAT} model.")
    if meta.get("version") not in _READABLE:
        raise ValueError(
            f"{path} was written in format version {meta.get('version')}; this release "
            f"reads versions {', '.join(map(str, _READABLE))}."
        )
    return meta, arrays


def load_model(path, *, device="auto", custom_objects=None):
    """Read a model written by :meth:`MoNORegressor.save`."""
    meta, arrays = _read(path)
    try:
        return _rebuild(path, meta, arrays, device, custom_objects)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(
            f"{path} passed its integrity check but does not describe a consistent "
            f"model ({type(exc).__name__}: {exc})."
        ) from None


def _rebuild(path, meta, arrays, device, custom_objects):
    params, state = meta["params"], meta["state"]
    custom_objects = custom_objects or {}
    spec = state["expert"]
    if isinstance(params["expert"], dict):
        name = params["expert"]["custom"]
        if name not in custom_objects:
            raise ValueError(
                f"{path} uses the expert class {name!r}; pass it to load, as "
                f"custom_objects={{{name!r}: {name}}}. Classes are never imported from "
                f"names in a file."
            )
        expert_cls = params["expert"] = custom_objects[name]
    elif spec["class"] in _BUILTIN_EXPERTS:
        expert_cls = _BUILTIN_EXPERTS[spec["class"]]
    else:
        raise ValueError(f"Unknown expert class {spec['class']!r} in the model file.")
    if isinstance(params["encoder"], dict):
        params["encoder"] = _make_encoder(params["encoder"])
    if params["grid_shape"] is not None:
        params["grid_shape"] = tuple(params["grid_shape"])

    model = MoNORegressor(**params)
    model._validate_params()
    device = _resolve_device(device)
    model.encoder_ = _build_encoder(state["encoder"], arrays)
    tree = KDPartition(**state["tree"])
    for name in _TREE_ARRAYS:
        setattr(tree, name, arrays[f"tree/{name}"])
    offsets = arrays["tree/leaf_offsets"]
    flat = arrays["tree/leaf_samples"]
    tree.leaf_samples = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    tree.node_samples = None
    n_experts = len(spec["state_keys"])
    leaf_ids = tree.leaf_id[tree.children_left < 0]
    children = np.concatenate([tree.children_left, tree.children_right])
    if (
        sorted(leaf_ids.tolist()) != list(range(n_experts))
        or children.max(initial=-1) >= len(tree.threshold)
        or tree.direction.shape[0] != len(tree.threshold)
    ):
        raise ValueError("the partition tree does not match the experts")
    model.tree_ = tree

    grid = tuple(state["fitted"]["grid_"])
    # Files written before "auto" defaults hold the values they trained with
    # as parameters (and the experts' width in their kwargs); later ones also
    # hold what "auto" became.
    settings = model._trained_settings(len(grid), expert_cls, spec["kwargs"])
    settings.update((k, state["fitted"][k]) for k in settings if k in state["fitted"])
    leaf_lr = _leaf_lr(settings["lr_"], n_experts, settings["root_epochs_"])
    warm_started = _warm_started(n_experts, settings["root_epochs_"])
    experts = []
    for leaf, keys in enumerate(spec["state_keys"]):
        tensors = {k: torch.from_numpy(arrays[f"experts/{leaf}/{k}"].copy()) for k in keys}
        # Built without memory first, so that sizes read from the file are
        # checked against the stored weights before anything is allocated.
        with torch.device("meta"):
            operator = expert_cls(
                spec["in_channels"], spec["out_channels"], grid, pooled=spec["pooled"],
                **spec["kwargs"],
            )
            module = Standardized(
                operator, *(torch.empty(tensors[k].shape) for k in
                            ("x_shift", "x_scale", "y_shift", "y_scale"))
            )
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        if expected != {k: tuple(v.shape) for k, v in tensors.items()}:
            raise ValueError(f"the weights of expert {leaf} do not fit its architecture")
        module.load_state_dict(tensors, assign=True)
        if meta["version"] >= 8:
            _set_gelu_forms(module, spec["gelu"][leaf])
        elif issubclass(expert_cls, FNO):
            _set_gelu_forms(module, ["tanh"] * len(_gelus(module)))
        if warm_started:
            _without_dropout(module)  # as the leaves fine-tuned
        if spec["loss"] == "StandardizedMSELoss":
            criterion, kwargs = StandardizedMSELoss, {"scale": tensors["y_scale"]}
        else:
            criterion, kwargs = RelativeL2Loss, {"floor": state["expert"]["floor"]}
        net = make_net(
            module, criterion=criterion, criterion_kwargs=kwargs, lr=leaf_lr,
            max_epochs=model.max_epochs, batch_size=model.batch_size, device=device,
        )
        net.initialize()
        net.module_.eval()
        experts.append(net)
    model.experts_ = experts
    model._expert_stack = _ExpertStack()
    model.expert_kwargs_ = dict(spec["kwargs"])
    model._expert_spec = (expert_cls, spec["kwargs"])  # what it was built with, for save()
    model._y_layout = TargetLayout(**state["y_layout"])
    fitted = dict(state["fitted"])
    model._resolution_invariant = fitted.pop("_resolution_invariant")
    names = fitted.pop("feature_names_in_")
    if names is not None:
        model.feature_names_in_ = np.array(names, dtype=object)
    for attr, value in fitted.items():
        setattr(model, attr, value)
    for attr, value in settings.items():
        setattr(model, attr, value)
    model.grid_ = grid
    model.leaf_sizes_ = np.array(model.leaf_sizes_)
    model.device_ = device
    return model


def _gelus(module):
    """The GELU layers of ``module``, in module order."""
    return [layer for layer in module.modules() if isinstance(layer, torch.nn.GELU)]


def _gelu_forms(module):
    """The ``approximate`` setting of each GELU in ``module``, in module order."""
    return [layer.approximate for layer in _gelus(module)]


def _set_gelu_forms(module, forms):
    """Give the GELUs of ``module`` the forms recorded by :func:`_gelu_forms`."""
    gelus = _gelus(module)
    if len(forms) != len(gelus) or not set(forms) <= {"none", "tanh"}:
        raise ValueError(f"the GELU forms {forms!r} do not fit the expert's {len(gelus)} GELUs")
    for layer, form in zip(gelus, forms):
        layer.approximate = form


def load(path, *, device="auto", custom_objects=None):
    """Load a model written by :meth:`MoNORegressor.save`, running no code from the file.

    Parameters
    ----------
    path : str or path-like
        The model file.
    device : str, default="auto"
        Where the experts are placed: "auto" (CUDA when available), "cpu",
        "cuda" or "cuda:N". A model saved on a GPU machine loads on a CPU-only
        one.
    custom_objects : dict of str to class, default=None
        The user's expert classes, by ``__qualname__``, for models trained
        with one. Classes are never imported by a name read from the file.

    Returns
    -------
    model : MoNORegressor
        The fitted model; it predicts what the saved model predicted.

    Raises
    ------
    ValueError
        When the file is truncated, corrupted or altered (failed integrity
        check), of another format or version, or needs a class not given in
        ``custom_objects``.
    """
    return load_model(path, device=device, custom_objects=custom_objects)
