"""save/load (one safetensors file, no pickle), pickle and joblib."""

import copy
import io
import json
import pathlib
import pickle
import struct

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from sklearn_mono import FourierEncoder, MoNORegressor, PCAEncoder, load, save
from sklearn_mono import persistence
from sklearn_mono.experts import MLP, NeuralOperatorRegressor

from .conftest import WrapsFNO, small_expert, small_mono

_FITTED = ("n_leaves_", "depth_", "n_params_active_", "n_params_routing_", "n_params_total_",
           "device_", "grid_", "n_channels_in_", "n_features_in_", "target_layout_")
_NET_FITTED = ("module_params_", "lr_", "max_epochs_", "n_params_", "grid_", "n_channels_in_",
               "n_channels_out_", "n_features_in_", "target_layout_")


def _fit(X, y, n_leaves=2, expert=None, **params):
    """A quick mixture: two leaves, experts trained for two epochs."""
    expert = expert or small_expert(max_epochs=2)
    return small_mono(n_leaves, expert=expert, leaf_epochs=2, **params).fit(X, y)


def _reload(model, tmp_path, **kwargs):
    path = tmp_path / "model.safetensors"
    save(model, path)
    return load(path, **{"device": "cpu", **kwargs})


def _params(estimator):
    """Parameters, with nested estimators as (class, their parameters)."""
    out = {}
    for key, value in estimator.get_params(deep=False).items():
        if key == "_params_to_validate":
            continue
        if hasattr(value, "get_params") and not isinstance(value, type):
            value = (type(value), _params(value))
        out[key] = value
    return out


def _same(a, b, X):
    """a, loaded, and b, the model it was saved from, predict and route
    bitwise alike and have the same parameters and fitted state."""
    pa, pb = a.predict(X), b.predict(X)
    assert pa.dtype == pb.dtype and pa.shape == pb.shape
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(a.apply(X), b.apply(X))
    assert _params(a) == _params(b)
    for name in _FITTED:
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.leaf_sizes_, b.leaf_sizes_)
    assert hasattr(a, "feature_names_in_") == hasattr(b, "feature_names_in_")
    if hasattr(b, "feature_names_in_"):
        np.testing.assert_array_equal(a.feature_names_in_, b.feature_names_in_)
    # the encoder
    ea, eb = a.encoder_, b.encoder_
    assert type(ea) is type(eb) and ea.get_params() == eb.get_params()
    for name in ("grid_", "n_channels_", "n_features_in_"):
        assert getattr(ea, name) == getattr(eb, name), name
    if isinstance(eb, FourierEncoder):
        np.testing.assert_array_equal(ea.modes_, eb.modes_)
    else:
        assert ea.n_components_ == eb.n_components_
        for name in ("components_", "mean_", "explained_variance_"):
            np.testing.assert_array_equal(getattr(ea.pca_, name), getattr(eb.pca_, name))
    # the tree
    for name in persistence._TREE_ARRAYS:
        ta, tb = getattr(a.tree_, name), getattr(b.tree_, name)
        assert ta.dtype == tb.dtype
        np.testing.assert_array_equal(ta, tb)
    # the experts
    assert len(a.experts_) == len(b.experts_) == a.n_leaves_
    for na, nb in zip(a.experts_, b.experts_):
        for name in _NET_FITTED:
            assert getattr(na, name) == getattr(nb, name), name
        assert type(na.module_.operator) is type(nb.module_.operator)
        assert not na.module_.training
        sa, sb = na.module_.state_dict(), nb.module_.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key].cpu(), sb[key].cpu()), key


@pytest.fixture(scope="module")
def grid_2d():
    X = np.random.default_rng(0).normal(size=(40, 8, 8))
    return X, np.cumsum(X, axis=2) / 8


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("target", ["function", "scalar", "vector", "channels"])
def test_round_trip_1d(target, antiderivative_small, tmp_path):
    X, y = antiderivative_small
    y = {"function": y, "scalar": y[:, -1], "vector": y[:, [0, -1]],
         "channels": np.stack([y, X], axis=1)}[target]
    model = _fit(X, y)
    loaded = _reload(model, tmp_path)
    _same(loaded, model, X)
    assert loaded.predict(X).shape == y.shape
    assert loaded.predict(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    "params",
    [
        {"encoder": "pca"},
        {"encoder": PCAEncoder(n_components=3, whiten=True, random_state=0)},
        {"encoder": FourierEncoder(n_modes=2, grid_shape=(16,)), "validation_fraction": 0.3},
        {"n_leaves": 1},
        {"n_leaves": 3, "random_state": np.int64(1)},
    ],
    ids=["pca", "pca-object", "fourier-object", "one-leaf", "three-leaves"],
)
def test_round_trip_encoders_and_trees(params, antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = _fit(X, y, **params)
    _same(_reload(model, tmp_path), model, X)


def test_round_trip_pca_of_many_samples_on_a_coarse_grid(antiderivative_small, tmp_path):
    # With ten times more samples than grid points, PCA solves for the
    # covariance's eigenvectors and its components_ are not C-contiguous.
    X, y = antiderivative_small
    X, y = X[:, ::2], y[:, ::2]
    model = _fit(X, y, encoder="pca")
    assert not model.encoder_.pca_.components_.flags["C_CONTIGUOUS"]
    _same(_reload(model, tmp_path), model, X)


@pytest.mark.parametrize("factorized", [True, False])
def test_round_trip_2d(factorized, grid_2d, tmp_path):
    X, y = grid_2d
    model = _fit(X, y, expert=small_expert(max_epochs=2, module__factorized=factorized))
    layer = model.experts_[0].module_.operator.spectral[0]
    assert type(layer).__name__ == ("FactorizedSpectralConv" if factorized else "SpectralConv")
    loaded = _reload(model, tmp_path)
    assert type(loaded.experts_[0].module_.operator.spectral[0]) is type(layer)
    _same(loaded, model, X)
    finer = np.random.default_rng(1).normal(size=(5, 16, 16))  # resolution invariance
    np.testing.assert_array_equal(loaded.predict(finer), model.predict(finer))


def test_round_trip_flat_rows_with_grid_shape(grid_2d, tmp_path):
    X, y = grid_2d
    flat_X, flat_y = X.reshape(len(X), -1), y.reshape(len(y), -1)
    model = _fit(flat_X, flat_y, grid_shape=(8, 8))
    loaded = _reload(model, tmp_path)
    assert loaded.grid_shape == (8, 8) and loaded.grid_ == (8, 8)
    _same(loaded, model, flat_X)
    assert loaded.predict(flat_X).shape == flat_y.shape


def test_round_trip_keeps_feature_names(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    model = _fit(frame, y)
    loaded = _reload(model, tmp_path)
    assert list(loaded.feature_names_in_) == list(frame.columns)
    _same(loaded, model, frame)


@pytest.mark.parametrize(
    "option",
    [
        {"symmetric": True},
        {"residual": True},
        {"residual": False},
        {"n_members": 3},
        {"positional": "periodic"},
        {"positional": "even"},
        {"padding": 0.25},
        {"positional": None},  # None given explicitly, as the default value is
    ],
    ids=lambda option: "-".join(f"{k}={v}" for k, v in option.items()),
)
def test_round_trip_keeps_fno_options(option, antiderivative_small, tmp_path):
    X, y = antiderivative_small
    expert = small_expert(max_epochs=2, **{f"module__{k}": v for k, v in option.items()})
    model = _fit(X, y, expert=expert)
    loaded = _reload(model, tmp_path)
    (name, value), = option.items()
    assert loaded.experts_[0].module_params_[name] == value
    assert loaded.get_params()[f"expert__module__{name}"] == value
    _same(loaded, model, X)


def test_round_trip_2d_symmetric_members(grid_2d, tmp_path):
    X, y = grid_2d
    expert = small_expert(max_epochs=2, module__symmetric=True, module__n_members=3)
    model = _fit(X, y, expert=expert)
    loaded = _reload(model, tmp_path)
    assert loaded.experts_[0].module_.operator.n_members == 3
    _same(loaded, model, X)


def test_round_trip_mlp_expert(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    expert = NeuralOperatorRegressor(MLP, module__width=8, module__n_layers=1, max_epochs=2,
                                     lr=1e-3, batch_size=16)
    model = _fit(X, y, expert=expert)
    loaded = _reload(model, tmp_path)
    assert isinstance(loaded.experts_[0].module_.operator, MLP)
    _same(loaded, model, X)


def test_round_trip_of_the_fixture_and_again(fitted_small, antiderivative_small, tmp_path):
    # A loaded model saves again to the same description and tensors.
    X, _ = antiderivative_small
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save(fitted_small, str(first))  # str and path-like paths
    loaded = load(first, device="cpu")
    _same(loaded, fitted_small, X)
    save(loaded, second)
    # the same header and tensor bytes (safetensors writes the two metadata
    # entries in no fixed order, so the files' bytes may differ)
    (ha, body_a), (hb, body_b) = _header(first), _header(second)
    assert ha == hb and body_a == body_b


def test_loading_leaves_the_global_torch_generator_alone(fitted_small, tmp_path):
    path = tmp_path / "m.safetensors"
    save(fitted_small, path)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load(path, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_loaded_model_is_a_normal_estimator(fitted_small, antiderivative_small, tmp_path):
    X, y = antiderivative_small
    loaded = _reload(fitted_small, tmp_path)
    assert _params(clone(loaded)) == _params(fitted_small)
    assert loaded.get_params()["expert__module__width"] == 8
    loaded.set_params(n_leaves=2, leaf_epochs=1, expert__max_epochs=1).fit(X, y)
    assert loaded.n_leaves_ == 2 and loaded.predict(X).shape == y.shape
    assert all(net.max_epochs_ == 1 for net in loaded.experts_)


def test_file_holds_only_tensors_and_json(fitted_small, tmp_path):
    path = tmp_path / "m.safetensors"
    save(fitted_small, path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__")
    assert set(metadata) == {"description", "digest"}
    description = json.loads(metadata["description"])
    assert (description["format"], description["version"]) == (persistence.FORMAT, 2)
    assert len(metadata["digest"]) == 64
    for name, entry in header.items():
        assert name.split(".")[0] in ("tree", "encoder", "experts")
        assert set(entry) == {"dtype", "shape", "data_offsets"}
    leaves = {name.split(".")[1] for name in header if name.startswith("experts.")}
    assert leaves == {"0", "1", "2", "3"}
    # what follows the header is the tensors' bytes, end to end
    assert max(entry["data_offsets"][1] for entry in header.values()) == len(data) - 8 - n


# ------------------------------------------------------- pickle and joblib


def test_pickle_and_joblib_round_trips(fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    _same(pickle.loads(pickle.dumps(fitted_small)), fitted_small, X)
    buffer = io.BytesIO()
    joblib.dump(fitted_small, buffer)
    buffer.seek(0)
    _same(joblib.load(buffer), fitted_small, X)


# ---------------------------------------------------------- custom classes


def test_custom_operator_needs_custom_objects(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = _fit(X, y, expert=small_expert(module=WrapsFNO, max_epochs=2))
    path = tmp_path / "m.safetensors"
    save(model, path)
    with pytest.raises(ValueError, match=r"'WrapsFNO'.*custom_objects"):
        load(path)
    loaded = load(path, device="cpu", custom_objects={"WrapsFNO": WrapsFNO})
    assert isinstance(loaded.experts_[0].module_.operator, WrapsFNO)
    _same(loaded, model, X)


def test_a_class_that_shadows_one_of_the_package_is_not_saved(fitted_small, tmp_path):
    model = copy.deepcopy(fitted_small)
    model.set_params(expert__module=type("FNO", (WrapsFNO,), {}))
    with pytest.raises(TypeError, match="shadows"):
        save(model, tmp_path / "m.safetensors")


# ------------------------------------------------------- refused on save


def test_save_refuses_what_it_cannot_describe(fitted_small, antiderivative_small, tmp_path):
    X, y = antiderivative_small
    path = tmp_path / "m.safetensors"
    with pytest.raises(NotFittedError):
        save(MoNORegressor(), path)
    with pytest.raises(TypeError, match="MoNORegressor"):
        save(fitted_small.experts_[0], path)
    model = _fit(X, y, encoder=PCA(n_components=2))
    with pytest.raises(TypeError, match="joblib"):
        save(model, path)
    model = copy.deepcopy(fitted_small)
    model.set_params(expert__optimizer__betas=object())  # not plain data
    with pytest.raises(TypeError, match="joblib"):
        save(model, path)
    assert not path.exists()


# ------------------------------------------------------- refused on load


def _header(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _write(path, header, body):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + body)


def _resign(path, change):
    """Change the description and write a valid digest, as anyone can."""
    with safe_open(str(path), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
        description = json.loads(f.metadata()["description"])
    text = change(description)
    text = text if isinstance(text, str) else json.dumps(description)
    routing = {name: t for name, t in tensors.items() if not name.startswith("experts.")}
    save_file(tensors, str(path), metadata={"description": text,
                                            "digest": persistence._digest(text, routing)})


@pytest.fixture
def saved(fitted_small, tmp_path):
    path = tmp_path / "m.safetensors"
    save(fitted_small, path)
    return path


def test_truncated_file_is_refused(saved, tmp_path):
    data = saved.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for size in (0, 5, 8, 8 + n // 2, 8 + n, 8 + n + 10, len(data) // 2, len(data) - 1):
        cut = tmp_path / "cut.safetensors"
        cut.write_bytes(data[:size])
        with pytest.raises(ValueError, match="truncated"):
            load(cut)


@pytest.mark.parametrize(
    "prefix", ["experts.0.", "experts.3.operator.", "tree.threshold", "encoder."]
)
def test_tampered_tensor_bytes_are_refused(prefix, saved):
    header, body = _header(saved)
    name = next(k for k in sorted(header) if k.startswith(prefix))
    start = header[name]["data_offsets"][0]
    body = bytearray(body)
    body[start] ^= 1
    _write(saved, header, bytes(body))
    with pytest.raises(ValueError, match="integrity"):
        load(saved)


@pytest.mark.parametrize(
    "old, new",
    [('"n_leaves_": 4', '"n_leaves_": 5'), ('"module__width": 8', '"module__width": 9')],
)
def test_tampered_description_is_refused(old, new, saved):
    header, body = _header(saved)
    text = header["__metadata__"]["description"]
    assert old in text
    header["__metadata__"]["description"] = text.replace(old, new)
    _write(saved, header, body)
    with pytest.raises(ValueError, match="integrity"):
        load(saved)


def test_tampered_digest_is_refused(saved):
    header, body = _header(saved)
    header["__metadata__"]["digest"] = "0" * 64
    _write(saved, header, body)
    with pytest.raises(ValueError, match="integrity"):
        load(saved)


def test_oversized_header_is_refused_before_reading(saved, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(persistence, "safe_open", never)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**62) + b'{"__metadata__": {}}')
    with pytest.raises(ValueError, match="header"):
        load(huge)
    monkeypatch.setattr(persistence, "MAX_HEADER", 64)  # a real file, over the limit
    with pytest.raises(ValueError, match="oversized"):
        load(saved)


class _Touch:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_pickle_payloads_are_never_executed(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Touch(control)))
    assert control.exists()  # the payload is live

    marker = tmp_path / "marker"
    payload = pickle.dumps(_Touch(marker))
    files = {
        "pickle": payload,
        "length-prefixed": struct.pack("<Q", len(payload)) + payload,
        "header": struct.pack("<Q", 8) + b"{}      " + payload,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    joblib.dump(_Touch(marker), tmp_path / "joblib")
    torch.save({"x": _Touch(marker)}, tmp_path / "torch")
    for name in [*files, "joblib", "torch"]:
        with pytest.raises(ValueError):
            load(tmp_path / name)
    assert not marker.exists()


def test_other_files_are_refused(tmp_path, rng):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    noise = tmp_path / "noise"
    noise.write_bytes(rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    small = tmp_path / "small"  # a small header length, then noise
    small.write_bytes(struct.pack("<Q", 100) + rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
    for path in (empty, noise, small):
        with pytest.raises(ValueError, match="not a readable sklearn_mono model file"):
            load(path)
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3)}, str(plain))
    with pytest.raises(ValueError, match="description is missing"):
        load(plain)
    save_file({"weight": torch.zeros(3)}, str(plain), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="description is missing"):
        load(plain)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(version=1), "version 1"),
        (lambda d: d.update(version=3), "version 3"),
        (lambda d: d.update(version=0), "version 0"),
        (lambda d: d.pop("version"), "version None"),
        (lambda d: d.update(format="another.Model"), "'another.Model'"),
        (lambda d: "[1, 2]", "not a model description"),
        (lambda d: "not json", "not a model description"),
    ],
    ids=["version-1", "version-3", "version-0", "no-version", "format", "list", "not-json"],
)
def test_other_formats_and_versions_are_refused(change, message, saved):
    _resign(saved, change)
    with pytest.raises(ValueError, match=message):
        load(saved)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("tree"),
        lambda d: d["params"].update(colour="blue"),
        lambda d: d["expert_params"].update(module={"class": "os.system"}),
        lambda d: d["experts"].append(d["experts"][0]),  # an expert without tensors
        lambda d: d["expert_layout"].update(n_channels_in_=3),  # weights of another shape
    ],
    ids=["missing-part", "unknown-parameter", "unknown-class", "missing-tensors", "shapes"],
)
def test_consistent_digest_but_inconsistent_model_is_refused(change, saved):
    _resign(saved, change)
    with pytest.raises(ValueError):
        load(saved)


# ----------------------------------------------------------------- devices


def test_load_device_is_checked(saved):
    with pytest.raises(ValueError, match="device"):
        load(saved, device="tpu")
    loaded = load(saved, device="auto")
    assert loaded.device_ == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_model_loads_on_cpu(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = _fit(X, y, device="cuda")
    path = tmp_path / "m.safetensors"
    save(model, path)
    on_cpu = load(path, device="cpu")
    assert on_cpu.device_ == "cpu"
    assert all(net.device == "cpu" for net in on_cpu.experts_)
    assert all(p.device.type == "cpu" for net in on_cpu.experts_ for p in net.module_.parameters())
    np.testing.assert_allclose(on_cpu.predict(X), model.predict(X), rtol=1e-4, atol=1e-5)
    on_gpu = load(path, device="cuda")
    np.testing.assert_allclose(on_gpu.predict(X), model.predict(X), rtol=1e-6, atol=1e-7)
    # and a model saved on the CPU loads on the GPU
    save(on_cpu, path)
    again = load(path, device="cuda")
    assert all(p.device.type == "cuda" for p in again.experts_[0].module_.parameters())
    np.testing.assert_allclose(again.predict(X), on_cpu.predict(X), rtol=1e-4, atol=1e-5)
