"""Scaling benchmark: leaves trained in parallel, and memory of batched prediction.

Prints two markdown tables:

* fit time with ``n_jobs=1`` and ``n_jobs=2`` on the same data and seed, and the
  speed-up as a ratio measured in this run;
* peak resident memory of ``predict`` on 10,000 and 100,000 queries, with the
  default ``predict_batch_size`` and with one batch holding every query. Each
  measurement runs in a fresh process; "working memory" is the peak minus the
  memory held before ``predict`` started and minus the returned array (Linux:
  the peak is read from ``/proc/self/status`` after resetting it).

Run ``python benchmarks/scaling.py`` (``--quick`` for a smaller run).
"""

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

from sklearn_mono import MoNORegressor
from sklearn_mono.datasets import make_antiderivative

CHILD = r"""
import pickle, sys
import numpy as np

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

model = pickle.load(open(sys.argv[1], "rb"))
n, batch = int(sys.argv[2]), int(sys.argv[3])
model.set_params(predict_batch_size=batch)
X = np.random.default_rng(0).normal(size=(n, model.grid_[0]))
model.predict(X[:10])  # warm up the allocator and torch
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS:")
y = model.predict(X)
print(before, status("VmHWM:"), y.nbytes)
"""


def fit_speedup(n_samples, n_points, max_epochs, repeats):
    X, y = make_antiderivative(n_samples=n_samples, n_points=n_points, random_state=0)
    rows = []
    for n_jobs in (1, 2):
        times = []
        for _ in range(repeats):
            # Width and lr fixed (the 1-D defaults before "auto"), so that the
            # measurement does not move with presets.
            model = MoNORegressor(
                n_leaves=4, width=24, max_epochs=max_epochs, root_epochs=0, lr=3e-3,
                n_jobs=n_jobs, device="cpu", random_state=0,
            )
            start = time.perf_counter()
            model.fit(X, y)
            times.append(time.perf_counter() - start)
        rows.append((n_jobs, min(times)))
    return rows, model


def predict_memory(model, sizes):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pkl")
        with open(path, "wb") as f:
            pickle.dump(model, f)
        for n in sizes:
            for batch in (model.predict_batch_size, n):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, path, str(n), str(batch)],
                    check=True, capture_output=True, text=True,
                ).stdout.split()
                before, peak, output = map(int, out[-3:])
                rows.append((n, batch, (peak - before) / 2**20, output / 2**20, (peak - before - output) / 2**20))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, one repeat")
    args = parser.parse_args()
    if args.quick:
        fit_rows, model = fit_speedup(400, 64, 10, 1)
        sizes = (2_000, 20_000)
    else:
        fit_rows, model = fit_speedup(1000, 64, 30, 2)
        sizes = (10_000, 100_000)

    print(f"machine: {os.cpu_count()} CPU cores, torch threads {__import__('torch').get_num_threads()}\n")
    print("| n_jobs | fit seconds (best) | speed-up vs n_jobs=1 |")
    print("| --- | --- | --- |")
    base = fit_rows[0][1]
    for n_jobs, seconds in fit_rows:
        print(f"| {n_jobs} | {seconds:.2f} | {base / seconds:.2f}x |")

    print("\n| queries | predict_batch_size | peak growth MiB | output MiB | working memory MiB |")
    print("| --- | --- | --- | --- | --- |")
    for n, batch, growth, output, working in predict_memory(model, sizes):
        print(f"| {n:,} | {batch:,} | {growth:.1f} | {output:.1f} | {working:.1f} |")


if __name__ == "__main__":
    main()
