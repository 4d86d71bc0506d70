# SPDX-License-Identifier: Apache-2.0
"""
Beyond one machine: lifted training on a Dask cluster
=====================================================

Train a lifted network on row-chunked Dask arrays: the rows stay on the workers, the client
solves only the small systems of the weight steps.

What this example teaches
-------------------------
1. Lifted training is data-parallel by construction. The state and output steps are independent
   across rows, so each worker solves them for the rows it holds; a weight step needs only sums
   over rows (Grams, moments, per-column sums along a line), which the workers add up and send to
   the client. A sweep is a few such *rounds*; what crosses the network is the size of the
   weights, never of the data.
2. The same call trains either way: ``LiftedNetwork.fit`` on a Dask array runs
   :class:`~cvx_lifted.distributed.DaskBCDSolver` on the active ``distributed.Client`` (here a
   ``LocalCluster`` of two worker processes; on Slurm, Kubernetes or over SSH the client is all
   that changes), and ``predict`` on a Dask array returns a Dask array.
3. The iterates are the in-memory path's: the kernels are the same, called per chunk. The script
   trains the same network in memory and compares the objectives.
4. ``history.residuals`` records, per sweep, the rounds and the bytes the client exchanged;
   :mod:`cvx_lifted.distributed.costmodel` predicts them.

Run it with ``python examples/dask_local_cluster.py`` (it needs ``pip install 'cvx-lifted[dask]'``).
The data are synthetic: 40,000 rows of 30 features, generated on the workers.
"""

import time

import numpy as np

from cvx_lifted import LiftedNetwork
from cvx_lifted.distributed.costmodel import sweep_cost


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot rows of integer labels (run per chunk on the workers)."""
    return np.eye(n_classes)[labels]


def main() -> None:
    try:
        import dask
        import dask.array as da
        from distributed import Client, LocalCluster

        from cvx_lifted.distributed import RECOMMENDED_CONFIG
    except ImportError:
        print("this example needs Dask: pip install 'cvx-lifted[dask]'")
        return

    m, p, k = 40_000, 30, 10
    # the settings the package uses for its own clusters: no work stealing (the rows stay on
    # their workers) and workers that reuse freed memory
    with dask.config.set(RECOMMENDED_CONFIG):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        print(f"cluster: {len(client.scheduler_info()['workers'])} worker processes")
        # the data are made on the workers, in chunks of 10,000 rows: nothing passes the client
        X = da.random.default_rng(0).standard_normal((m, p), chunks=(10_000, p))
        W_true = np.random.default_rng(1).standard_normal((p, k))
        labels = (X @ W_true).argmax(axis=1)
        Y = labels.map_blocks(one_hot, k, new_axis=1, chunks=(X.chunks[0], (k,)), dtype=float)
        X, Y, labels = X.persist(), Y.persist(), labels.persist()

        net = LiftedNetwork([p, 32, k], output="softmax_xent")
        t0 = time.perf_counter()
        result = net.fit(X, Y, max_iter=6, random_state=0)
        seconds = time.perf_counter() - t0
        accuracy = float((net.predict(X).argmax(axis=1) == labels).mean().compute())
        print(f"Dask fit: {result.n_iter} sweeps in {seconds:.1f} s, accuracy {accuracy:.3f}")
        print("sweep  objective   rounds  MiB sent  MiB received")
        for sweep, (obj, rec) in enumerate(
            zip(result.history.objective[1:], result.history.residuals[1:], strict=True), start=1
        ):
            print(
                f"{sweep:5d}  {obj:.6f}  {rec['dask.rounds']:6.0f}  "
                f"{rec['dask.bytes_sent'] / 2**20:8.2f}  {rec['dask.bytes_received'] / 2**20:12.2f}"
            )
        cost = sweep_cost(net, m)
        print(
            f"cost model: {cost.rounds:.0f} rounds and {cost.payload_bytes / 2**20:.2f} MiB per "
            f"sweep (the first sweep also sums the input's Gram)"
        )
        X_mem, Y_mem = X.compute(), Y.compute()  # small enough to compare with the in-memory path

    twin = LiftedNetwork([p, 32, k], output="softmax_xent")
    twin_result = twin.fit(X_mem, Y_mem, max_iter=6, random_state=0)
    gap = max(
        abs(a - b) / abs(b)
        for a, b in zip(result.history.objective, twin_result.history.objective, strict=True)
    )
    print(f"in memory: the same objectives to {gap:.1e} (relative)")


if __name__ == "__main__":  # worker processes re-import this file: start the cluster only here
    main()
