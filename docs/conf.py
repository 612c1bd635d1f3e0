"""Sphinx configuration of the sklearn_mono documentation.

The build needs no network: no intersphinx inventories, and the theme and
gallery use only files that ship with them.

The example gallery executes every script in ``examples/`` at build time. By
default it runs them in quick mode (less data, fewer epochs: seconds each),
which is what CI builds; ``SKLEARN_MONO_EXAMPLES_QUICK=0 sphinx-build ...``
runs them at full size.
"""

import os
import re
import sys

import sklearn_mono

os.environ.setdefault("SKLEARN_MONO_EXAMPLES_QUICK", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for _gallery_order

project = "sklearn_mono"
author = "the sklearn_mono developers"
copyright = "2026, the sklearn_mono developers"
release = sklearn_mono.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
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
templates_path = ["_templates"]
exclude_patterns = ["_build"]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # every script is an example and is executed (the default runs plot_*.py only)
    "filename_pattern": re.escape(os.sep),
    "within_subsection_order": "_gallery_order.ExampleOrder",
    "download_all_examples": True,
    "show_memory": False,
    # a failing example fails the build
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
    # link names in the examples' code to this package's API pages; other
    # packages' documentation would need intersphinx, hence the network
    "doc_module": ("sklearn_mono",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "thumbnail_size": (400, 280),
    # show what the examples print, not the repr of a cell's last expression
    "capture_repr": (),
    "remove_config_comments": True,
    # its pages would load jQuery and DataTables from CDNs; the build log
    # prints the same summary
    "write_computation_times": False,
}

html_theme = "pydata_sphinx_theme"
html_title = "sklearn_mono"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "navbar_end": ["theme-switcher"],
    "footer_start": ["copyright"],
    "footer_end": [],
    "secondary_sidebar_items": {"**": ["page-toc"], "index": []},
    "check_switcher": False,
    "show_prev_next": True,
}
html_sidebars = {"index": [], "benchmarks": [], "getting_started": []}


# The benchmark report, benchmarks/run.py's Markdown (paragraphs and pipe
# tables), is shown on the benchmarks page as reStructuredText tables: the line
# ".. benchmark report: PATH" there (a comment if left alone) is replaced by it.
_REPORT = re.compile(r"^\.\. benchmark report: (\S+)$", re.MULTILINE)


def _rst_text(text):
    """Markdown table or paragraph text as literal reStructuredText text."""
    return re.sub(r"([\\*`_|])", r"\\\1", text)


def _report_as_rst(markdown):
    blocks = []
    for block in markdown.strip().split("\n\n"):
        lines = block.strip().splitlines()
        if not lines[0].startswith("|"):
            blocks.append(_rst_text(" ".join(lines)))
            continue
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in lines
            if not set(line) <= set("|-: ")
        ]
        table = [".. list-table::", "   :header-rows: 1", ""]
        for row in rows:
            table.append("   * - " + _rst_text(row[0]))
            table.extend("     - " + _rst_text(cell) for cell in row[1:])
        blocks.append("\n".join(table))
    return "\n\n".join(blocks)


def _insert_benchmark_report(app, docname, source):
    def replace(match):
        path = os.path.join(app.srcdir, match.group(1))
        app.env.note_dependency(path)
        with open(path, encoding="utf-8") as f:
            return _report_as_rst(f.read())

    source[0] = _REPORT.sub(replace, source[0])


def setup(app):
    app.connect("source-read", _insert_benchmark_report)
