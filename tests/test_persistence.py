"""Pickle, joblib and the pickle-free save/load format."""

import io
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from sklearn_mono import FourierEncoder, MoNORegressor, load

from .conftest import SMALL
from .test_regressor import _Linear


def _same(a, b, X, without=()):
    """a and b predict and route alike and report the same fitted attributes;
    ``without`` names expert kwargs that a's file did not hold."""
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.apply(X), b.apply(X))
    for attr in ("n_params_active_", "n_params_total_", "n_params_routing_", "depth_", "n_leaves_", "grid_",
                 "width_", "root_epochs_", "lr_"):
        assert getattr(a, attr) == getattr(b, attr)
    assert a.expert_kwargs_ == {k: v for k, v in b.expert_kwargs_.items() if k not in without}
    # what the experts would drop if trained on (leaves fine-tuned from a
    # root expert drop nothing)
    for net_a, net_b in zip(a.experts_, b.experts_):
        assert getattr(net_a.module_.operator, "dropout", None) == getattr(
            net_b.module_.operator, "dropout", None
        )


@pytest.mark.parametrize(
    "params, target",
    [
        ({}, "function"),
        ({"encoder": "pca"}, "function"),
        ({"encoder": FourierEncoder(n_modes=2), "split": "widest"}, "function"),
        ({"expert": "mlp"}, "function"),
        ({}, "scalar"),
        ({}, "channels"),
    ],
)
def test_save_load_round_trip(params, target, antiderivative_small, tmp_path):
    X, y = antiderivative_small
    y = {"function": y, "scalar": y[:, -1], "channels": np.stack([y, X], axis=1)}[target]
    model = MoNORegressor(n_leaves=4, **SMALL, **params).fit(X, y)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load(path, device="cpu")
    _same(loaded, model, X)
    plain = lambda m: {k: v for k, v in m.get_params().items() if not hasattr(v, "get_params")}  # noqa: E731
    assert plain(loaded) == plain(model)  # "auto" stays "auto"
    assert loaded.get_params()["lr"] == "auto" and loaded.lr_ == model.lr_
    # leaves fine-tuned at 0.3 * lr_ (a scalar target's MSE as well)
    assert [net.lr for net in loaded.experts_] == [net.lr for net in model.experts_]
    assert loaded.predict(X).shape == y.shape


@pytest.mark.parametrize("factorized", [True, False])
def test_save_load_round_trip_on_a_2d_grid(factorized, tmp_path):
    # The default FNO expert has factorised Fourier layers on 2-D grids; full
    # ones are kept on request, and both come back as they were fitted.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8, 8))
    y = np.cumsum(X, axis=2) / 8
    kwargs = {} if factorized else {"expert_kwargs": {"factorized": False}}
    model = MoNORegressor(n_leaves=2, **SMALL, **kwargs).fit(X, y)
    layer = model.experts_[0].module_.operator.spectral[0]
    assert type(layer).__name__ == ("FactorizedSpectralConv" if factorized else "SpectralConv")
    path = tmp_path / "model.npz"
    model.save(path)
    _same(load(path, device="cpu"), model, X)


@pytest.mark.parametrize(
    "option",
    [
        {"positional": "periodic"}, {"residual": False}, {"dropout": 0.3}, {"symmetric": True},
        {"positional": "even"},
    ],
)
def test_save_load_keeps_fno_options(option, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8, 8))
    model = MoNORegressor(n_leaves=2, **SMALL, expert_kwargs=option).fit(X, X)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load(path, device="cpu")
    (name, value), = option.items()
    assert loaded.expert_kwargs_[name] == value
    if name != "dropout":  # the leaves fine-tuned without (see _same)
        assert getattr(loaded.experts_[0].module_.operator, name) == value
    _same(loaded, model, X)
    fine = rng.normal(size=(5, 16, 16))
    np.testing.assert_array_equal(loaded.predict(fine), model.predict(fine))


@pytest.mark.parametrize("n_leaves, root_epochs, expected", [(1, 5, 0.3), (2, 5, 0.0), (2, 0, 0.3)])
def test_loaded_experts_drop_as_they_trained(n_leaves, root_epochs, expected, tmp_path):
    # Leaves fine-tuned from a root expert drop nothing; a lone expert, or
    # leaves trained from scratch, keep the dropout they trained with.
    X = np.random.default_rng(0).normal(size=(40, 8, 8))
    params = {**SMALL, "n_leaves": n_leaves, "root_epochs": root_epochs}
    model = MoNORegressor(**params, expert_kwargs={"dropout": 0.3}).fit(X, X)
    model.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz", device="cpu")
    for fitted in (model, loaded):
        assert [net.module_.operator.dropout for net in fitted.experts_] == [expected] * n_leaves
        assert fitted.expert_kwargs_["dropout"] == 0.3


def test_save_load_keeps_feature_names(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    model = MoNORegressor(n_leaves=2, **SMALL).fit(frame, y)
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    assert list(loaded.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_custom_expert_needs_custom_objects(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, expert=_Linear, **SMALL).fit(X, y)
    model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="custom_objects"):
        load(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz", custom_objects={"_Linear": _Linear})
    _same(loaded, model, X)


def test_pickle_and_joblib_round_trips(fitted_small, antiderivative_small):
    import joblib

    X, _ = antiderivative_small
    _same(pickle.loads(pickle.dumps(fitted_small)), fitted_small, X)
    buffer = io.BytesIO()
    joblib.dump(fitted_small, buffer)
    buffer.seek(0)
    _same(joblib.load(buffer), fitted_small, X)


def test_truncated_file_is_refused(fitted_small, tmp_path):
    path = tmp_path / "m.npz"
    fitted_small.save(path)
    data = path.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.npz").write_bytes(data[:size])
        with pytest.raises(ValueError, match="truncated or corrupted"):
            load(tmp_path / "cut.npz")


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_tampered_weights_and_description_are_refused(fitted_small, tmp_path):
    path = tmp_path / "m.npz"

    def weight(arrays):
        key = next(k for k in arrays if k.startswith("experts/0/operator"))
        arrays[key].flat[0] += 1.0

    def description(arrays):
        meta = arrays["__meta__"].tobytes().replace(b'"n_leaves_": 4', b'"n_leaves_": 5')
        arrays["__meta__"] = np.frombuffer(meta, dtype=np.uint8)

    for change in (weight, description):
        fitted_small.save(path)
        _rewrite(path, change)
        with pytest.raises(ValueError, match="integrity check"):
            load(path)


def test_pickled_payload_is_never_executed(tmp_path):
    ran = []

    class Payload:
        def __reduce__(self):
            return (ran.append, ("executed",))

    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        buffer = io.BytesIO()
        np.save(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
        archive.writestr("__meta__.npy", buffer.getvalue())
    with pytest.raises(ValueError, match="not a readable sklearn_mono model file"):
        load(path)
    assert ran == []


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match="description is missing"):
        load(path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_save_refuses_what_it_cannot_describe(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    with pytest.raises(NotFittedError):
        MoNORegressor().save(tmp_path / "m.npz")
    model = MoNORegressor(n_leaves=2, encoder=PCA(n_components=2), **SMALL).fit(X, y)
    with pytest.raises(TypeError, match="joblib.dump"):
        model.save(tmp_path / "m.npz")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_model_loads_on_cpu(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, **{**SMALL, "device": "cuda"}).fit(X, y)
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz", device="cpu")
    assert loaded.experts_[0].device == "cpu"
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-4, atol=1e-5)


def test_a_plain_array_file_is_refused(tmp_path):
    np.save(tmp_path / "weights.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a readable sklearn_mono model file"):
        load(tmp_path / "weights.npy")


def _resign(path, change_meta):
    """Edit the description and recompute the digest, as an attacker could."""
    import json

    from sklearn_mono._persistence import _digest

    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    arrays.pop("__digest__")
    change_meta(meta)
    meta_bytes = json.dumps(meta).encode()
    arrays["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    digest = _digest(meta_bytes, {k: v for k, v in arrays.items() if k != "__meta__"})
    arrays["__digest__"] = np.frombuffer(digest.encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_consistent_digest_but_inconsistent_model_is_refused(fitted_small, tmp_path):
    path = tmp_path / "m.npz"

    def huge_width(meta):  # would allocate terabytes if built before checking
        meta["state"]["expert"]["kwargs"]["width"] = 10**6

    def bad_parameter(meta):
        meta["params"]["n_leaves"] = -3

    def missing_part(meta):
        del meta["state"]["tree"]

    for change in (huge_width, bad_parameter, missing_part):
        fitted_small.save(path)
        _resign(path, change)
        with pytest.raises(ValueError, match="consistent model"):
            load(path)


def _loaded_as_version(tmp_path, version, without):
    """A small 2-D model fitted with ``expert_kwargs=without``, its file
    rewritten as one of ``version`` whose expert kwargs did not have those
    keywords, and the model loaded from it: ``(model, loaded, X)``. Before
    version 8 the experts' GELUs were tanh approximations; ``model`` has
    them too, as the release that wrote such a file trained it."""
    X = np.random.default_rng(0).normal(size=(40, 8, 8))
    model = MoNORegressor(n_leaves=2, **SMALL, expert_kwargs=without).fit(X, X)
    if version < 8:
        _gelus_as_tanh(model)
    path = tmp_path / "m.npz"
    model.save(path)
    _resign(path, _as_version(version, without=without))
    return model, load(path, device="cpu"), X


def _gelus(model):
    """Every GELU layer of a fitted model's experts."""
    return [m for net in model.experts_ for m in net.module_.modules() if isinstance(m, torch.nn.GELU)]


def _gelus_as_tanh(model):
    """Turn every GELU of a fitted model's experts into its tanh
    approximation, as releases before format 8 trained them; return how many."""
    gelus = _gelus(model)
    for gelu in gelus:
        gelu.approximate = "tanh"
    return len(gelus)


def _as_version(version, without):
    """Make a file's description one of ``version``, whose expert kwargs did
    not have the keywords ``without``."""
    def change(meta):
        meta["version"] = version
        for name in without:
            del meta["state"]["expert"]["kwargs"][name]
            del meta["params"]["expert_kwargs"][name]

    return change


def test_files_of_version_2_load_with_full_fourier_layers(tmp_path):
    # Version 2 files predate factorised layers (and residual blocks and
    # dropout): their FNO kwargs do not name ``factorized`` and their experts
    # have full layers, the FNO's default.
    old = {"factorized": False, "residual": False, "dropout": 0.0}
    model, loaded, X = _loaded_as_version(tmp_path, 2, without=old)
    assert type(loaded.experts_[0].module_.operator.spectral[0]).__name__ == "SpectralConv"
    _same(loaded, model, X, without=old)
    # and a loaded model saves again, as it was built
    loaded.save(tmp_path / "again.npz")
    _same(load(tmp_path / "again.npz", device="cpu"), model, X, without=old)


def test_files_of_version_4_load_with_plain_fourier_layers(tmp_path):
    # Version 4 files predate residual blocks (and symmetric experts and
    # dropout, version 6): their FNO kwargs name none of them, and their
    # experts have plain layers with complex weights and linear coordinates,
    # the FNO's defaults.
    plain = {"residual": False, "dropout": 0.0}
    model, loaded, X = _loaded_as_version(tmp_path, 4, without=plain)
    operator = loaded.experts_[0].module_.operator
    assert not operator.residual and not operator.symmetric and operator.dropout == 0
    assert operator.positional == "linear"
    _same(loaded, model, X, without=plain)


def test_files_of_version_6_load_with_single_member_experts(tmp_path):
    # Version 6 files predate experts with several members: their FNO kwargs
    # do not name ``n_members`` and their experts have one member, the
    # FNO's default.
    single = {"n_members": 1}
    model, loaded, X = _loaded_as_version(tmp_path, 6, without=single)
    operator = loaded.experts_[0].module_.operator
    assert operator.residual and operator.n_members == 1
    assert operator.lift.out_channels == SMALL["width"]
    _same(loaded, model, X, without=single)


def test_files_of_version_7_load_with_the_tanh_gelu(tmp_path):
    # Until format 8 the FNO experts used GELU's tanh approximation on every
    # grid; 2-D and 3-D experts now use its exact form. A version-7 file loads
    # with the form it was trained with, and predicts what it predicted then.
    X = np.random.default_rng(0).normal(size=(40, 8, 8))
    model = MoNORegressor(n_leaves=2, **SMALL).fit(X, X)
    gelus = _gelus(model)
    assert gelus and all(g.approximate == "none" for g in gelus)
    exact = model.predict(X)
    path = tmp_path / "m.npz"
    model.save(path)
    assert load(path, device="cpu").predict(X) == pytest.approx(exact, abs=1e-6)

    assert _gelus_as_tanh(model) == 2 * 2  # two experts: the blocks' GELU and the projection's
    old = model.predict(X)
    assert np.abs(old - exact).max() > 1e-4  # the two forms are told apart below
    _resign(path, _as_version(7, without=()))
    loaded = load(path, device="cpu")
    assert loaded.predict(X) == pytest.approx(old, abs=1e-6)
    # a loaded model saves again (as format 8) and keeps the tanh form
    loaded.save(tmp_path / "again.npz")
    assert load(tmp_path / "again.npz", device="cpu").predict(X) == pytest.approx(old, abs=1e-6)


def test_one_dimensional_experts_keep_the_tanh_gelu(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, **SMALL).fit(X, y)
    gelus = _gelus(model)
    assert gelus and all(g.approximate == "tanh" for g in gelus)


def test_experts_with_members_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8, 8))
    model = MoNORegressor(n_leaves=2, **SMALL, expert_kwargs={"n_members": 2}).fit(X, X)
    assert model.experts_[0].module_.operator.n_members == 2
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = load(path, device="cpu")
    assert loaded.experts_[0].module_.operator.n_members == 2
    assert loaded.n_params_active_ == model.n_params_active_
    _same(loaded, model, X)


def test_files_from_before_auto_defaults_load_with_the_values_they_name(antiderivative_small, tmp_path):
    # Files written before width, root_epochs and lr could be "auto" hold
    # numbers there and not the fitted width_, root_epochs_ and lr_, which are
    # then read from the parameters; an "auto" left without them is resolved
    # for the fitted grid and expert, as at fit.
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, **{**SMALL, "lr": 2e-3}).fit(X, y)
    path = tmp_path / "m.npz"
    model.save(path)

    def without_resolved(meta):
        for name in ("width_", "root_epochs_", "lr_"):
            del meta["state"]["fitted"][name]

    _resign(path, without_resolved)
    loaded = load(path, device="cpu")
    assert (loaded.width_, loaded.root_epochs_, loaded.lr_) == (8, 5, 2e-3)
    assert [net.lr for net in loaded.experts_] == pytest.approx([6e-4, 6e-4])  # 0.3 * lr_
    _same(loaded, model, X)
    # an "auto" left without them is resolved, the width read from the experts
    model.set_params(width="auto", root_epochs="auto", lr="auto").save(path)
    _resign(path, without_resolved)
    loaded = load(path, device="cpu")
    assert (loaded.width_, loaded.root_epochs_, loaded.lr_) == (8, 150, 6e-3)  # a 1-D FNO


def test_files_keep_what_auto_became(antiderivative_small, tmp_path):
    # A file holds the values the model trained with, whatever its parameters
    # say after fit, and a model fitted before they were kept saves too.
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, **{**SMALL, "lr": 2e-3}).fit(X, y)
    model.set_params(lr="auto", root_epochs="auto")  # would resolve to 6e-3 and 150
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = load(path, device="cpu")
    assert (loaded.root_epochs_, loaded.lr_) == (5, 2e-3)
    assert [net.lr for net in loaded.experts_] == pytest.approx([6e-4, 6e-4])  # 0.3 * lr_
    for name in ("width_", "root_epochs_", "lr_", "expert_kwargs_"):
        delattr(model, name)
    model.set_params(lr=2e-3, root_epochs=5).save(path)
    loaded = load(path, device="cpu")
    assert (loaded.width_, loaded.root_epochs_, loaded.lr_) == (8, 5, 2e-3)


def test_other_format_versions_are_refused(fitted_small, tmp_path):
    path = tmp_path / "m.npz"
    fitted_small.save(path)
    _resign(path, lambda meta: meta.update(version=1))
    with pytest.raises(ValueError, match="format version 1; this release reads versions 2, 3, 4, 5, 6, 7"):
        load(path)


def test_save_uses_what_was_fitted_and_numpy_scalars(antiderivative_small, tmp_path):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=np.int64(2), **{**SMALL, "random_state": np.int64(0)}).fit(X, y)
    model.set_params(width=64, expert="mlp")  # changed after fit: not what the experts are
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
