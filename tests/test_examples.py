"""Every example runs (in its quick mode) and writes legible figures."""

import importlib.util
import pathlib

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
FIGURES = {
    "quickstart": ["quickstart.png"],
    "darcy": ["darcy_predictions.png", "darcy_leaves.png"],
    "super_resolution": ["super_resolution.png"],
    "grid_search": ["grid_search.png"],
    "burgers": ["burgers.png"],
}


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_listed():
    assert {p.stem for p in EXAMPLES.glob("*.py")} == set(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_example_runs_and_writes_figures(name, tmp_path, capsys):
    _load(name).main(quick=True, output_dir=str(tmp_path))
    assert capsys.readouterr().out.strip()  # it reports what it measured
    for figure in FIGURES[name]:
        image = matplotlib.image.imread(tmp_path / figure)
        assert image.shape[0] > 300 and image.shape[1] > 400
        assert image.std() > 0.05  # not a blank canvas
