"""Saving and loading fitted mixtures: safetensors weights and a JSON description.

A model file is one `safetensors <https://huggingface.co/docs/safetensors>`_
file: the arrays of the encoder, the tree and the experts as tensors, and in
its header a JSON description of everything else with a SHA-256 digest of
description and tensors. Loading runs no code from the file (no pickle),
checks the header's size first, and refuses a file whose digest does not
match with a ``ValueError``. Classes are rebuilt by name only from this
package's encoders, operators and losses, a few torch optimizers, and the
``custom_objects`` passed to :func:`load`.
"""

import hashlib
import json
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from ._layout import TargetLayout
from ._partition import Partition
from ._regressor import MoNORegressor
from ._training import resolve_device
from .encoders import FourierEncoder, PCAEncoder
from .experts import MLP, FNO, NeuralOperatorRegressor, RelativeL2Loss, StandardizedMSELoss

__all__ = ["ExpertFile", "load", "save"]

FORMAT, VERSION = "sklearn_mono.MoNORegressor", 2
MAX_HEADER = 64 * 2**20  # bytes of JSON header a model file may hold
_CLASSES = {
    cls.__name__: cls
    for cls in (FNO, MLP, RelativeL2Loss, StandardizedMSELoss, FourierEncoder, PCAEncoder,
                torch.optim.AdamW, torch.optim.Adam, torch.optim.SGD)
}
_TREE_ARRAYS = ("direction", "threshold", "children_left", "children_right", "parent",
                "leaf_id", "node_depth", "leaf_nodes")
_PCA_ARRAYS = ("components_", "mean_", "explained_variance_", "explained_variance_ratio_",
               "singular_values_")
_PCA_FITTED = ("n_components_", "n_samples_", "noise_variance_", "n_features_in_")
_ENCODER_FITTED = ("grid_", "n_channels_", "n_features_in_")
_EXPERT_FITTED = ("lr_", "max_epochs_", "module_params_", "n_params_")
_EXPERT_LAYOUT = ("grid_", "n_channels_in_", "n_channels_out_", "n_features_in_",
                  "target_layout_")
_MODEL_FITTED = ("n_leaves_", "depth_", "n_params_active_", "n_params_routing_",
                 "n_params_total_", "device_", "grid_", "n_channels_in_", "n_features_in_",
                 "leaf_sizes_")
_FROM_JSON = {"grid_": tuple, "leaf_sizes_": np.asarray,
              "target_layout_": lambda value: TargetLayout(**value)}
_DEFAULT_EXPERT = NeuralOperatorRegressor().get_params(deep=False)


def save(model, path):
    """Write a fitted :class:`~sklearn_mono.MoNORegressor` to ``path``.

    Parameters
    ----------
    model : MoNORegressor
        A fitted model whose encoder is "fourier", "pca" or one of this
        package's encoders; use ``joblib.dump`` for others.
    path : str or path-like
        Destination file; conventionally ``*.safetensors``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, load, save
    >>> X = np.random.default_rng(0).normal(size=(40, 16))
    >>> expert = NeuralOperatorRegressor(module__width=4, max_epochs=2)
    >>> model = MoNORegressor(2, expert=expert, min_samples_leaf=5, leaf_epochs=2,
    ...                       random_state=0).fit(X, X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> save(model, path)
    >>> bool(np.array_equal(load(path).predict(X), model.predict(X)))
    True
    """
    if not isinstance(model, MoNORegressor):
        raise TypeError(f"save() writes a MoNORegressor, got {type(model).__name__}.")
    check_is_fitted(model)
    params = model.get_params(deep=False)
    if params["expert"] is not None:
        params["expert"] = _expert_params(params["expert"])
    if not isinstance(params["encoder"], str):
        params["encoder"] = {"class": _name_of(type(params["encoder"]), "encoder"),
                             "params": params["encoder"].get_params()}
    if not isinstance(params["random_state"], (int, np.integer, type(None))):
        params["random_state"] = None  # a RandomState instance is not plain data
    tree, net = model.tree_, model.experts_[0]
    tensors = {f"tree.{name}": _tensor(getattr(tree, name)) for name in _TREE_ARRAYS}
    experts, weights = [], {}
    for leaf, expert in enumerate(model.experts_):
        state = {f"experts.{leaf}.{key}": value.detach().cpu().contiguous()
                 for key, value in expert.module_.state_dict().items()}
        experts.append({**_attrs(expert, _EXPERT_FITTED), "digest": _digest("", state)})
        weights.update(state)
    description = {
        "format": FORMAT,
        "version": VERSION,
        "params": params,
        "encoder": _encoder_state(model.encoder_, tensors),
        "tree": _attrs(tree, ("n_features",)),
        "expert_params": _expert_params(net, skip=("device", "random_state")),
        "experts": experts,
        "expert_layout": _attrs(net, _EXPERT_LAYOUT),
        "fitted": _attrs(model, _MODEL_FITTED),
        "target_layout_": model.target_layout_,
        "feature_names_in_": getattr(model, "feature_names_in_", None),
    }
    try:
        text = json.dumps(description, default=_plain, sort_keys=True)
    except TypeError as error:
        raise TypeError(
            f"This model cannot be written to a model file, which holds only plain data "
            f"({error}); use joblib.dump for it."
        ) from None
    metadata = {"description": text, "digest": _digest(text, tensors)}
    save_file({**tensors, **weights}, os.fspath(path), metadata=metadata)


def load(path, *, device="auto", custom_objects=None, lazy=False, max_experts_in_memory=None):
    """Read a model written by :func:`save`.

    With ``lazy=True`` only the description, the encoder and the tree are
    read: each expert stays in the file until a query is routed to it, and
    at most ``max_experts_in_memory`` experts are kept, the least recently
    used dropped first (see ``docs/saving.rst``). Predictions are the same
    as after an eager load. Every expert's weights are checked against
    their digest when they are read.

    Parameters
    ----------
    path : str or path-like
        The model file.
    device : str, default="auto"
        Device of the loaded experts: "auto" (CUDA when available), "cpu",
        "cuda" or "cuda:N"; a model saved on a GPU loads on a CPU.
    custom_objects : dict, default=None
        Operator classes of one's own by name, e.g. ``{"MyOperator":
        MyOperator}``, for models whose expert uses them.
    lazy : bool, default=False
        Leave the experts in the file until they are needed; ``experts_`` is
        then an :class:`ExpertFile`.
    max_experts_in_memory : int, default=None
        With ``lazy``, the most experts kept in memory at once; None keeps
        every expert once read.

    Returns
    -------
    model : MoNORegressor
        The fitted model, ready to predict.
    """
    if max_experts_in_memory is not None and not (
        isinstance(max_experts_in_memory, (int, np.integer)) and max_experts_in_memory >= 1
    ):
        raise ValueError(
            f"max_experts_in_memory must be a positive integer or None, got "
            f"{max_experts_in_memory!r}."
        )
    description, tensors = _read(path)
    device, classes = resolve_device(device), {**_CLASSES, **(custom_objects or {})}
    with _rebuilding(path):
        model = _rebuild(description, tensors, classes)
        model.device_ = device
        experts = ExpertFile(path, description, device, classes, max_experts_in_memory)
        model.experts_ = experts if lazy else [experts[leaf] for leaf in range(len(experts))]
    return model


class ExpertFile(Sequence):
    """The experts of a model file, read when first used.

    Indexing it gives the expert of a leaf, read from the file (and checked
    against its digest) when it is not in memory; at most
    ``max_in_memory`` experts are kept, the least recently used dropped
    first. Safe to use from several threads. It pickles and copies as the
    plain list of every expert, read from the file.

    Parameters
    ----------
    path : str or path-like
        The model file.
    description : dict
        The file's checked description.
    device : str
        Device of the experts read.
    classes : dict
        Classes the experts may name, by name.
    max_in_memory : int, default=None
        The most experts kept in memory; None keeps all.
    """

    def __init__(self, path, description, device, classes, max_in_memory=None):
        self.path, self.description = path, description
        self.device, self.classes, self.max_in_memory = device, classes, max_in_memory
        self._resident, self._lock = OrderedDict(), threading.Lock()

    def __len__(self):
        return len(self.description["experts"])

    def __getitem__(self, leaf):
        if isinstance(leaf, slice):
            return [self[i] for i in range(len(self))[leaf]]
        leaf = range(len(self))[leaf]
        with self._lock:
            if leaf in self._resident:
                self._resident.move_to_end(leaf)
                return self._resident[leaf]
            net = _read_expert(self.path, self.description, leaf, self.device, self.classes)
            self._resident[leaf] = net
            while self.max_in_memory is not None and len(self._resident) > self.max_in_memory:
                self._resident.popitem(last=False)
            return net

    def resident(self):
        """The leaves whose experts are in memory, with their bytes of weights.

        Returns
        -------
        resident : dict of int to int
            Bytes of weights and buffers by leaf, least recently used first.
        """
        with self._lock:
            return {leaf: net.nbytes_ for leaf, net in self._resident.items()}

    def __reduce__(self):
        return list, (self[:],)


def _read_expert(path, description, leaf, device, classes):
    """The expert of ``leaf`` read from ``path``, its weights checked against their digest."""
    prefix = f"experts.{leaf}."
    with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
        state = {name: f.get_tensor(name) for name in f.keys() if name.startswith(prefix)}
    fitted = description["experts"][leaf]
    if _digest("", state) != fitted["digest"]:
        raise ValueError(
            f"{path}: the weights of the expert of leaf {leaf} failed their integrity check; "
            f"the file was altered or damaged after it was saved. Refusing to use them."
        )
    state = {name[len(prefix):]: value for name, value in state.items()}
    with _rebuilding(path):
        net = _expert_from(description["expert_params"], classes).set_params(device=device)
        _set(net, {**description["expert_layout"], **_attrs(fitted, _EXPERT_FITTED)})
        net.stats_ = tuple(state[k] for k in ("x_shift", "x_scale", "y_shift", "y_scale"))
        with torch.random.fork_rng(devices=[]):  # the weights are overwritten below
            net.initialize()
        if net.module_params_ != fitted["module_params_"]:
            raise TypeError(
                f"the expert of leaf {leaf} was built with {fitted['module_params_']}, "
                f"which this release's defaults do not rebuild"
            )
        net.module_.load_state_dict(state)
        net.module_.eval()
    return net


@contextmanager
def _rebuilding(path):
    """Errors from rebuilding a described model, as ValueErrors that name the file."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as error:
        raise ValueError(
            f"{path} describes a model that cannot be rebuilt: {type(error).__name__}: {error}"
        ) from None



def _read(path):
    """The description and routing tensors of a model file, checked before use."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
    header = struct.unpack("<Q", head)[0] if len(head) == 8 else None
    if header is None or header > MAX_HEADER or 8 + header > size:
        raise ValueError(
            f"{path} is not a readable sklearn_mono model file: its header is missing, "
            f"oversized or longer than the file ({size} bytes); it may be truncated."
        )
    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()
                       if not name.startswith("experts.")}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable sklearn_mono model file: {error}. It may be truncated "
            f"or corrupted."
        ) from None
    text = metadata.get("description")
    if text is None or _digest(text, tensors) != metadata.get("digest"):
        raise ValueError(
            f"{path} failed its integrity check: its description is missing, or the file "
            f"was altered or damaged after it was saved. Refusing to load it."
        )
    try:
        description = json.loads(text)
    except ValueError:
        description = None
    if not isinstance(description, dict):
        raise ValueError(f"{path} holds something that is not a model description.")
    if description.get("format") != FORMAT or description.get("version") != VERSION:
        raise ValueError(
            f"{path} holds {description.get('format')!r} version "
            f"{description.get('version')!r}; this release reads {FORMAT!r} version {VERSION}."
        )
    return description, tensors


def _rebuild(description, tensors, classes):
    """The model of a description, without its experts."""
    params = dict(description["params"])
    if params["expert"] is not None:
        params["expert"] = _expert_from(params["expert"], classes)
    if isinstance(params["encoder"], dict):
        params["encoder"] = _instance(params["encoder"], classes)
    params["grid_shape"] = _tuple(params["grid_shape"])
    model = MoNORegressor(**params)
    model.encoder_ = _encoder_from(description["encoder"], tensors, classes)
    model.tree_ = Partition(**description["tree"])
    _set(model.tree_, {name: tensors[f"tree.{name}"].numpy() for name in _TREE_ARRAYS})
    _set(model, {**description["fitted"], "target_layout_": description["target_layout_"]})
    if description["feature_names_in_"] is not None:
        model.feature_names_in_ = np.asarray(description["feature_names_in_"], dtype=object)
    return model


def _expert_params(net, skip=()):
    """An expert's parameters as plain data: classes by name, skorch's defaults left out."""
    out = {}
    for key, value in net.get_params(deep=False).items():
        default = key in _DEFAULT_EXPERT and value is _DEFAULT_EXPERT[key]
        if key in skip or key == "_params_to_validate" or default:
            continue
        out[key] = {"class": _name_of(value, key)} if isinstance(value, type) else value
    return out


def _expert_from(spec, classes):
    params = {k: (_class(v["class"], classes) if isinstance(v, dict) and "class" in v else v)
              for k, v in spec.items()}
    params["grid_shape"] = _tuple(params.get("grid_shape"))
    return NeuralOperatorRegressor(**params)


def _instance(spec, classes):
    """An encoder from its saved class name and parameters."""
    params = {**spec["params"], "grid_shape": _tuple(spec["params"].get("grid_shape"))}
    return _class(spec["class"], classes)(**params)


def _name_of(cls, what):
    """The name a class is saved under."""
    name = cls.__name__
    if _CLASSES.get(name, cls) is not cls:
        raise TypeError(f"{what} class {cls.__qualname__} shadows this package's {name}")
    return name


def _class(name, classes):
    if name not in classes:
        raise ValueError(
            f"The model file names the class {name!r}, which is not one of this package's; "
            f"pass it to load() as custom_objects={{{name!r}: {name}}}."
        )
    return classes[name]


def _encoder_state(encoder, tensors):
    if type(encoder) not in (FourierEncoder, PCAEncoder):
        raise TypeError(
            f"save() supports the encoders FourierEncoder and PCAEncoder; this model's "
            f"encoder is {type(encoder).__name__}. Use joblib.dump instead."
        )
    state = {"class": type(encoder).__name__, "params": encoder.get_params(),
             **_attrs(encoder, _ENCODER_FITTED)}
    if isinstance(encoder, FourierEncoder):
        tensors["encoder.modes_"] = _tensor(encoder.modes_)
    else:
        state["n_components_"] = encoder.n_components_
        state["pca"] = _attrs(encoder.pca_, _PCA_FITTED)
        for name in _PCA_ARRAYS:
            tensors[f"encoder.pca.{name}"] = _tensor(getattr(encoder.pca_, name))
    return state


def _encoder_from(state, tensors, classes):
    encoder = _instance(state, classes)
    _set(encoder, {name: state[name] for name in _ENCODER_FITTED})
    if isinstance(encoder, FourierEncoder):
        encoder.modes_ = tensors["encoder.modes_"].numpy()
    else:
        encoder.n_components_ = state["n_components_"]
        encoder.pca_ = PCA(n_components=state["pca"]["n_components_"], whiten=encoder.whiten,
                           random_state=encoder.random_state)
        _set(encoder.pca_, state["pca"])
        _set(encoder.pca_, {n: tensors[f"encoder.pca.{n}"].numpy() for n in _PCA_ARRAYS})
    return encoder


def _attrs(obj, names):
    """Named attributes (or items, of a dict) of ``obj``, as a dict."""
    get = obj.get if isinstance(obj, dict) else lambda name: getattr(obj, name)
    return {name: get(name) for name in names}


def _set(obj, attributes):
    """Set attributes read from JSON, with their Python types back."""
    for name, value in attributes.items():
        setattr(obj, name, _FROM_JSON.get(name, lambda v: v)(value))


def _tensor(array):
    """A contiguous CPU tensor of a numpy array (safetensors stores no strides)."""
    return torch.from_numpy(np.ascontiguousarray(array))


def _tuple(value):
    return None if value is None else tuple(value)


def _plain(value):
    """JSON form of numpy values and target layouts."""
    if isinstance(value, TargetLayout):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not plain data")


def _digest(text, tensors):
    """SHA-256 of the description and every tensor (name, dtype, shape, bytes)."""
    h = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
