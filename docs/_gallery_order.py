"""The order of the examples in the gallery (``within_subsection_order`` in conf.py).

Sphinx-gallery takes the sort key by its importable name, so that the
configuration stays picklable; examples not listed here come last, by name.
"""

ORDER = [
    "quickstart.py",
    "darcy.py",
    "super_resolution.py",
    "burgers.py",
    "active_parameters.py",
]


class ExampleOrder:
    """Sort key: the position of an example's file name in ``ORDER``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = str(filename).rsplit("/", 1)[-1]
        return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name)

    def __repr__(self):
        return f"<{self.__class__.__name__}>"
