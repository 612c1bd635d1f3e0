"""Memory of serving a large mixture: eager against lazy loading of its experts.

Builds mixtures with 1, 64 and 256 leaves of the default 2-D expert (two
residual FNO members of width 16 on a 16x16 grid, trained one epoch, since
this is about memory, and copied to every leaf of a tree of median splits),
saves them, and in a fresh process for every measurement
reports the peak resident memory above the process's baseline (the
interpreter with numpy, torch and sklearn_mono imported):

* eager ``load`` and one query;
* ``load(lazy=True)`` and one query;
* ``load(lazy=True, max_experts_in_memory=8)`` and 1000 queries that visit
  every leaf, in ten batches of 100, with the resident memory after each;

and, in a process that has answered one query, the time of a query to an
expert not yet read (it reads the expert from the file) and of the same query
again. Linux only (it reads ``/proc/self/status``).

Run ``python benchmarks/memory.py`` (``--quick`` for 16 and 64 leaves).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

MEASURE = r"""
import json, sys, time
import numpy as np
import torch
import sklearn_mono

def rss(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
path, mode, queries = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
torch.set_num_threads(1)
base = rss("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak
out = {}
if mode == "eager":
    model = sklearn_mono.load(path, device="cpu")
    model.predict(queries[:1])
elif mode == "lazy":
    model = sklearn_mono.load(path, device="cpu", lazy=True)
    model.predict(queries[:1])
    out["peak"] = rss("VmHWM:") - base
    # A query to another expert, not yet read, in a process that has run one.
    leaves = model.apply(queries)
    other = queries[leaves != leaves[0]][:1]
    if len(other):
        for name in ("cold_ms", "warm_ms"):
            start = time.perf_counter()
            model.predict(other)
            out[name] = 1e3 * (time.perf_counter() - start)
else:
    model = sklearn_mono.load(path, device="cpu", lazy=True, max_experts_in_memory=8)
    out["after_batches"] = []
    for batch in np.split(queries, 10):
        model.predict(batch)
        out["after_batches"].append(rss("VmRSS:") - base)
    out["leaves_visited"] = int(len(np.unique(model.apply(queries))))
    out["resident"] = len(model.experts_.resident())
out.setdefault("peak", rss("VmHWM:") - base)
print(json.dumps(out))
"""


def build(n_leaves, X, y, path):
    """A mixture of ``n_leaves`` copies of one expert, saved to ``path``.

    Memory depends on how many experts a file holds, not on how its tree was
    grown, and ``fit`` keeps only the splits that pay; so the expert is
    fitted alone and the tree is built here, by median splits of the
    encodings along their widest coordinate, largest cell first.
    """
    import copy

    from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, save
    from sklearn_mono._partition import Partition

    expert = NeuralOperatorRegressor(max_epochs=1, random_state=0)
    model = MoNORegressor(1, expert=expert, device="cpu", random_state=0).fit(X, y)
    Z = model.encoder_.transform(X[:, None])
    tree, cells = Partition(Z.shape[1]), {0: np.arange(len(Z))}
    while tree.n_leaves < n_leaves:
        node = max(cells, key=lambda k: len(cells[k]))
        idx = cells.pop(node)
        direction = np.eye(Z.shape[1])[np.argmax(Z[idx].std(axis=0))]
        proj = Z[idx] @ direction
        threshold = np.median(proj)
        left, right = tree.split(node, direction, threshold)
        cells[left], cells[right] = idx[proj <= threshold], idx[proj > threshold]
    root = model.experts_[0]
    model.tree_, model.experts_ = tree, [copy.deepcopy(root) for _ in range(tree.n_leaves)]
    model.n_leaves_, model.depth_ = tree.n_leaves, tree.depth
    model.leaf_sizes_ = np.bincount(tree.apply(Z), minlength=tree.n_leaves)
    model.n_params_routing_ += tree.n_params
    model.n_params_total_ = tree.n_leaves * root.n_params_ + model.n_params_routing_
    save(model, path)
    return model


def measure(path, mode, queries_path):
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, path, mode, queries_path],
        check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 and 64 leaves")
    args = parser.parse_args()
    from sklearn_mono.datasets import make_smoothing_2d

    sizes = (16, 64) if args.quick else (64, 256)
    X, y = make_smoothing_2d(n_samples=4 * max(sizes) + 1000, resolution=16, random_state=0)
    train, queries = slice(0, 4 * max(sizes)), X[-1000:]
    mib = 2.0**-20
    with tempfile.TemporaryDirectory() as folder:
        queries_path = os.path.join(folder, "queries.npy")
        np.save(queries_path, queries)
        rows = []
        for n_leaves in (1,) + sizes:
            path = os.path.join(folder, f"mono{n_leaves}.safetensors")
            start = time.perf_counter()
            model = build(n_leaves, X[train], y[train], path)
            built = time.perf_counter() - start
            eager = measure(path, "eager", queries_path)
            lazy = measure(path, "lazy", queries_path)
            bounded = measure(path, "bounded", queries_path) if n_leaves > 1 else None
            rows.append((n_leaves, model, os.path.getsize(path), built, eager, lazy, bounded))
            print(f"built {n_leaves} leaves in {built:.0f} s", flush=True)
    reference = rows[0][4]["peak"]  # one expert, its router and the torch runtime, loaded eagerly
    print("\n| leaves | file MiB | eager + 1 query MiB | lazy + 1 query MiB | lazy / eager |"
          " lazy / (1-leaf eager) | query to a cold expert ms | same query again ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n_leaves, _, size, _, eager, lazy, _ in rows:
        print(f"| {n_leaves} | {size * mib:.1f} | {eager['peak'] * mib:.1f} | {lazy['peak'] * mib:.1f} |"
              f" {lazy['peak'] / eager['peak']:.2f} | {lazy['peak'] / reference:.2f} |"
              f" {lazy.get('cold_ms', float('nan')):.1f} | {lazy.get('warm_ms', float('nan')):.1f} |")
    print("\nLazy, max_experts_in_memory=8, 1000 queries in ten batches of 100:\n")
    print("| leaves | leaves visited | resident at the end | memory after each batch MiB | spread MiB |")
    print("| --- | --- | --- | --- | --- |")
    for n_leaves, _, _, _, _, _, bounded in rows[1:]:
        after = [a * mib for a in bounded["after_batches"]]
        print(f"| {n_leaves} | {bounded['leaves_visited']} | {bounded['resident']} |"
              f" {', '.join(f'{a:.1f}' for a in after)} | {max(after) - min(after):.1f} |")


if __name__ == "__main__":
    main()
