"""Every example of the gallery runs in its quick mode and draws legible figures.

The documentation build executes the same scripts with sphinx-gallery, in the
same quick mode (``SKLEARN_MONO_EXAMPLES_QUICK=1``, set in docs/conf.py).
"""

import os
import pathlib
import runpy
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The figures each example draws.
FIGURES = {
    "quickstart": 1,
    "darcy": 2,
    "super_resolution": 1,
    "burgers": 1,
    "active_parameters": 1,
}


def _legible(image):
    """An RGB(A) image of a figure with something drawn on it."""
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_every_example_is_listed():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == set(FIGURES)
    # the gallery's order places every example
    order = runpy.run_path(str(ROOT / "docs" / "_gallery_order.py"))["ORDER"]
    assert sorted(order) == sorted(f"{name}.py" for name in FIGURES)


@pytest.mark.filterwarnings("ignore:FigureCanvasAgg is non-interactive")
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_example_runs_and_draws_figures(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKLEARN_MONO_EXAMPLES_QUICK", "1")
    monkeypatch.chdir(tmp_path)  # where quickstart.py writes its PNG
    plt.close("all")
    try:
        runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
        assert capsys.readouterr().out.strip()  # it reports what it measured
        numbers = plt.get_fignums()
        assert len(numbers) == FIGURES[name]
        for number in numbers:
            figure = plt.figure(number)
            figure.canvas.draw()
            _legible(np.asarray(figure.canvas.buffer_rgba()) / 255)
    finally:
        plt.close("all")


def test_quickstart_runs_from_the_shell(tmp_path):
    # The README's command, `python examples/quickstart.py`, in quick mode.
    env = {**os.environ, "SKLEARN_MONO_EXAMPLES_QUICK": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "test relative L2" in run.stdout and "active parameters" in run.stdout
    _legible(matplotlib.image.imread(tmp_path / "quickstart.png"))
