"""An operator that ends the worker process of its first training run (for fault tests).

It lives in a module of its own so that Dask's worker processes can import it.
"""

import os

from sklearn_mono.experts import FNO


class CrashesOnce(FNO):
    """An FNO whose first training step outside process ``parent`` ends its process,
    once: it leaves the file ``marker`` behind, and trains normally while it exists."""

    def __init__(self, *args, marker, parent, **kwargs):
        super().__init__(*args, **kwargs)
        self.marker, self.parent = marker, parent

    def forward(self, x):
        if self.training and os.getpid() != self.parent and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().forward(x)
