"""Sphinx configuration of the sklearn_mono documentation."""

import sklearn_mono

project = "sklearn_mono"
author = "the sklearn_mono developers"
copyright = "2026, the sklearn_mono developers"
release = sklearn_mono.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    # scikit-learn's metadata-routing setters: generated, and documented there
    "exclude-members": (
        "set_fit_request,set_predict_request,set_score_request,set_transform_request,"
        "set_output"
    ),
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = []
exclude_patterns = ["_build", "_static/examples/*.txt"]
html_theme = "alabaster"
html_static_path = ["_static"]
html_theme_options = {"description": "Mixtures of neural operators for scikit-learn"}
