# SPDX-License-Identifier: Apache-2.0
"""Data-parallel sweeps on Dask against the in-memory path, and the cost model's bytes per sweep.

The default network (784-300-10, ``relu_fenchel``, ``simplex_xent``, ``cvx_lifted.defaults``) is
fitted for ``--sweeps`` sweeps on ``--rows`` rows of 784 features (Fashion-MNIST's 60,000 training
images, repeated with a little noise to reach the row count; uniform noise when the data are
absent), three ways, one after the other in this process:

* ``memory``: NumPy arrays, ``blas_threads=1``;
* ``dask-1``: a ``LocalCluster`` of 1 worker process with 1 thread;
* ``dask-2``: a ``LocalCluster`` of 2 worker processes with 1 thread each;

in ``--rounds`` rounds (3) of the three, in rotating order: the speed of this machine drifts
between minutes (on a 2-core virtual machine the same sweeps took 3.4-3.9 s on one worker), so
the ratios are medians over rounds of the ratios measured within each round.

Both clusters run with ``cvx_lifted.distributed.cluster.RECOMMENDED_CONFIG`` (no work stealing),
as the clusters the package starts itself do.

The Dask inputs are chunked in ``--chunks`` row chunks and scattered to the workers before the
fit. Reported: the median sweep time after the first sweep (the first one also factors the
input's Gram), the ratios ``dask-1 / memory`` (target <= 1.3) and ``dask-1 / dask-2`` (target
>= 1.7), the reductions (rounds) per sweep, and the bytes moved per sweep -- what the client sent
plus what the workers sent (their ``transfer_outgoing_bytes_total``: to each other and to the
client) -- against the cost model of ``docs/distributed.md`` (target: within 20 %), and the CPU
seconds per sweep of the workers and of this process (client, scheduler and nannies, which a
``LocalCluster`` runs here): their sum over the cores is the least a sweep can take on this
machine, which bounds the speed-up two workers can show on it. The BLAS kernel in use is
recorded; ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are removed for this process and its
workers (``--keep-blas-env`` keeps them).

Run from the repository root::

    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_dask.py
    PYTHONPATH=. python benchmarks/bench_dask.py --rows 20000 --sweeps 3   # a quick look

Writes ``benchmarks/results/bench_dask.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from _speed import fresh_blas_env

if __name__ == "__main__":
    REMOVED_ENV = fresh_blas_env("--keep-blas-env" in sys.argv)

import numpy as np  # noqa: E402 - after the BLAS environment is settled
from _common import fmt_table, machine_info, median, verdict, write_json  # noqa: E402
from _speed import blas_kernel, blas_line, scrub  # noqa: E402

HIDDEN = 300
TARGET_ONE_WORKER = 1.3
TARGET_TWO_WORKERS = 1.7
TARGET_BYTES = 0.2


def load_rows(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST training images repeated (with noise) to ``rows`` rows, and one-hot labels."""
    rng = np.random.default_rng(seed)
    try:
        from cvx_lifted.datasets import load_dataset

        X0, y0, _, _ = load_dataset("fashion-mnist", dtype=np.float64)
        source = f"Fashion-MNIST training rows repeated to {rows} with noise N(0, 0.02^2)"
    except Exception:  # noqa: BLE001 - any missing-data error: synthetic rows
        X0, y0 = rng.random((60_000, 784)), rng.integers(0, 10, 60_000)
        source = f"uniform noise, {rows} rows (Fashion-MNIST not found)"
    idx = np.arange(rows) % X0.shape[0]
    X = X0[idx] + 0.02 * rng.standard_normal((rows, X0.shape[1]))
    Y = np.eye(10)[np.asarray(y0)[idx]]
    return np.ascontiguousarray(X), Y, source


def _fit(X: Any, Y: Any, sweeps: int, **options: Any) -> Any:
    from cvx_lifted import LiftedNetwork

    net = LiftedNetwork([X.shape[1], HIDDEN, 10], output="simplex_xent")
    return net.fit(X, Y, max_iter=sweeps, tol=0.0, random_state=0, blas_threads=1, **options)


def _sweep_times(result: Any) -> list[float]:
    return [s["sweep"] for s in result.history.seconds[2:]]  # [0] is the start, [1] sweep 1


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of this process (client, scheduler, nannies) and of its workers."""
    import psutil

    me = psutil.Process()
    own = sum(me.cpu_times()[:2])
    children = 0.0
    for child in me.children(recursive=True):
        try:
            children += sum(child.cpu_times()[:2])
        except psutil.Error:  # a helper process that has just exited
            pass
    return own, children


def _on_workers(client: Any, A: np.ndarray, chunks: int) -> Any:
    """``A`` as a Dask array of ``chunks``-row chunks scattered to the workers (not in a graph)."""
    import dask.array as da

    starts = range(0, A.shape[0], chunks)
    futures = client.scatter([A[i : i + chunks] for i in starts])
    parts = [
        da.from_delayed(f, shape=(min(chunks, A.shape[0] - i), A.shape[1]), dtype=A.dtype)
        for f, i in zip(futures, starts, strict=True)
    ]
    return da.concatenate(parts).persist()


def _worker_bytes(client: Any) -> int:
    out = client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    return int(sum(out.values()))


def run_dask(X: np.ndarray, Y: np.ndarray, workers: int, chunks: int, sweeps: int) -> dict:
    import dask
    from distributed import Client, LocalCluster

    from cvx_lifted.distributed.cluster import RECOMMENDED_CONFIG

    with dask.config.set(RECOMMENDED_CONFIG):  # no work stealing: the rows stay put
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    with Client(cluster) as client:
        client.wait_for_workers(workers)
        Xd, Yd = _on_workers(client, X, chunks), _on_workers(client, Y, chunks)
        between = [_worker_bytes(client)]  # workers' transfers to each other, after each sweep
        cpu = [_cpu_seconds()]  # (this process, the workers) after each sweep

        def after_sweep(sweep: int, partial: Any) -> None:
            between.append(_worker_bytes(client))
            cpu.append(_cpu_seconds())

        t0 = time.perf_counter()
        result = _fit(Xd, Yd, sweeps, scheduler=client, callback=after_sweep)
        wall = time.perf_counter() - t0
        latency = round_latency(Xd)
    cluster.close()
    comm = [
        {k[5:]: v for k, v in r.items() if k.startswith("dask.")}
        for r in result.history.residuals[1:]
    ]
    for c, b0, b1 in zip(comm, between[:-1], between[1:], strict=True):
        c["worker_bytes"] = float(b1 - b0)
    for c, (own0, workers0), (own1, workers1) in zip(comm, cpu[:-1], cpu[1:], strict=True):
        c["cpu_client"], c["cpu_workers"] = own1 - own0, workers1 - workers0
    return {
        "sweep_seconds": _sweep_times(result),
        "first_sweep_seconds": result.history.seconds[1]["sweep"],
        "wall_seconds": wall,
        "communication": comm,
        "objective": result.history.objective,
        "round_latency": latency,
    }


def _first(X: np.ndarray, trial: int = 0) -> float:
    return float(X[0, 0])


def round_latency(X: Any, repeats: int = 20) -> float:
    """Median seconds of a reduction that computes nothing: the fixed cost of one round."""
    from cvx_lifted.distributed._ops import DaskRowOps

    ops = DaskRowOps()
    ops.sum(_first, X)
    times = []
    for trial in range(repeats):  # a new key each time: identical graphs in a row race on release
        t0 = time.perf_counter()
        ops.sum(_first, X, trial=trial + 1)
        times.append(time.perf_counter() - t0)
    return median(times)


def model_cost(rows: int, line_trials: float) -> Any:
    """The cost model's sweep (``docs/distributed.md``) of the benchmark's network."""
    from cvx_lifted import LiftedNetwork
    from cvx_lifted.distributed.costmodel import sweep_cost

    net = LiftedNetwork([784, HIDDEN, 10], output="simplex_xent")
    return sweep_cost(net, rows, line_trials=line_trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--chunks", type=int, default=25_000, help="rows per chunk")
    ap.add_argument("--sweeps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the three runs, interleaved")
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep-blas-env", action="store_true")
    args = ap.parse_args()
    X, Y, source = load_rows(args.rows)
    print(f"data: {source}; X {X.shape} float64, chunks of {args.chunks} rows")
    print(f"BLAS: {blas_line()}")
    names = ["memory", "dask-1", "dask-2"]
    by_round: list[dict[str, Any]] = []
    for r in range(args.rounds):
        runs_r: dict[str, Any] = {}
        for name in names[r % 3 :] + names[: r % 3]:  # rotating order
            if name == "memory":
                t0 = time.perf_counter()
                mem = _fit(X, Y, args.sweeps)
                runs_r[name] = {
                    "sweep_seconds": _sweep_times(mem),
                    "first_sweep_seconds": mem.history.seconds[1]["sweep"],
                    "wall_seconds": time.perf_counter() - t0,
                    "objective": mem.history.objective,
                }
            else:
                runs_r[name] = run_dask(X, Y, int(name[-1]), args.chunks, args.sweeps)
        by_round.append({name: runs_r[name] for name in names})
        line = ", ".join(f"{n} {median(runs_r[n]['sweep_seconds']):.2f}" for n in names)
        print(f"round {r + 1}: s/sweep {line}")
    runs = by_round[0]  # the first round's communication, objectives and latency
    per_round = [{n: median(rr[n]["sweep_seconds"]) for n in names} for rr in by_round]
    med = {n: median([pr[n] for pr in per_round]) for n in names}
    one_vs_mem = median([pr["dask-1"] / pr["memory"] for pr in per_round])
    two_vs_one = median([pr["dask-1"] / pr["dask-2"] for pr in per_round])
    bytes_rows = []
    worst = 0.0
    for workers in (1, 2):
        comm = runs[f"dask-{workers}"]["communication"][1:]  # sweep 1 also makes X's Gram
        # the workers' outgoing transfers include what the client receives
        measured = median([c["bytes_sent"] + c["worker_bytes"] for c in comm])
        trials = median([c["line_trials"] for c in comm]) if "line_trials" in comm[0] else 2.0
        cost = model_cost(args.rows, trials)
        model = cost.bytes_moved(workers)
        rel = abs(measured - model) / model
        worst = max(worst, rel)
        rounds = median([c["rounds"] for c in comm])
        mib = f"{measured / 2**20:.2f}"
        bytes_rows.append([f"dask-{workers}", rounds, f"{cost.rounds:.0f}", mib,
                           f"{model / 2**20:.2f}", f"{rel:.0%}"])  # fmt: skip
    # what the machine allows: a sweep cannot take less than its CPU seconds (the workers', and
    # this process's: client, scheduler and nannies) spread over the cores it may use
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu_rows, cpu_bound = [], {}
    for workers in (1, 2):
        comm = [c for rr in by_round for c in rr[f"dask-{workers}"]["communication"][1:]]
        client_cpu = median([c["cpu_client"] for c in comm])
        worker_cpu = median([c["cpu_workers"] for c in comm])
        bound = (client_cpu + worker_cpu) / min(cores or 1, workers + 1)
        cpu_bound[f"dask-{workers}"] = {
            "client_cpu": client_cpu, "workers_cpu": worker_cpu, "least_sweep_seconds": bound,
        }  # fmt: skip
        cpu_rows.append([f"dask-{workers}", f"{worker_cpu:.2f}", f"{client_cpu:.2f}",
                         f"{bound:.2f}", f"{med[f'dask-{workers}']:.2f}"])  # fmt: skip
    best_two_vs_one = med["dask-1"] / cpu_bound["dask-2"]["least_sweep_seconds"]
    drift = max(
        abs(a - b) / abs(a)
        for rr in by_round
        for a, b in zip(rr["memory"]["objective"], rr["dask-2"]["objective"], strict=True)
    )
    print()
    print(fmt_table(["run", "s/sweep (median)", "first sweep s", "per round"],
                    [[n, f"{med[n]:.2f}", f"{r['first_sweep_seconds']:.2f}",
                      ", ".join(f"{pr[n]:.2f}" for pr in per_round)]
                     for n, r in runs.items()]))  # fmt: skip
    print()
    print(f"medians over {args.rounds} round(s) of the per-round ratios:")
    print(f"dask-1 / memory: {one_vs_mem:.2f} (target <= {TARGET_ONE_WORKER}) "
          f"{verdict(one_vs_mem <= TARGET_ONE_WORKER)}")  # fmt: skip
    print(f"dask-1 / dask-2: {two_vs_one:.2f} (target >= {TARGET_TWO_WORKERS}) "
          f"{verdict(two_vs_one >= TARGET_TWO_WORKERS)}")  # fmt: skip
    print(f"objective, memory vs dask-2, largest relative difference: {drift:.1e}")
    print()
    print(fmt_table(["run", "workers' CPU s/sweep", "this process's CPU s/sweep",
                     f"least sweep s on {cores} cores", "sweep s"], cpu_rows))  # fmt: skip
    print(f"dask-1 / dask-2 this machine allows (dask-1's sweep over dask-2's least): "
          f"{best_two_vs_one:.2f}")  # fmt: skip
    print()
    print(fmt_table(["run", "rounds/sweep", "model rounds", "MiB moved/sweep", "model MiB",
                     "off by"], bytes_rows))  # fmt: skip
    print(f"bytes vs cost model: worst {worst:.0%} (target <= {TARGET_BYTES:.0%}) "
          f"{verdict(worst <= TARGET_BYTES)}")  # fmt: skip
    # projection: the compute of a sweep shrinks with the workers, its rounds do not; the
    # latency of a round is measured on the two-worker cluster (a reduction computing nothing)
    from cvx_lifted.distributed.costmodel import project

    latency = median([rr["dask-2"]["round_latency"] for rr in by_round])
    bandwidth = 1.25e9  # a 10 Gb/s link
    projection = {}
    for rows in (args.rows, 2_000_000):
        compute = med["memory"] * rows / args.rows
        projection[rows] = project(
            model_cost(rows, 2.0), compute, [1, 2, 8, 32, 128, 256],
            latency=latency, bandwidth=bandwidth,
        )  # fmt: skip
    print()
    print(f"projection (latency {latency * 1e3:.0f} ms per round, measured; 10 Gb/s links):")
    for rows, table in projection.items():
        print(fmt_table(
            [f"workers ({rows} rows)", "compute s", "communication s", "sweep s", "GiB moved"],
            [[r["workers"], f"{r['compute']:.2f}", f"{r['communication']:.2f}",
              f"{r['sweep']:.2f}", f"{r['bytes'] / 2**30:.2f}"] for r in table],
        ))  # fmt: skip
    payload = {
        "machine": scrub(machine_info()),
        "blas": blas_kernel(),
        "removed_env": REMOVED_ENV,
        "data": source,
        "args": vars(args),
        "runs": runs,
        "rounds": [{n: rr[n]["sweep_seconds"] for n in names} for rr in by_round],
        "median_sweep_seconds": med,
        "dask1_over_memory": one_vs_mem,
        "dask1_over_dask2": two_vs_one,
        "bytes": bytes_rows,
        "bytes_worst_relative_error": worst,
        "objective_drift": drift,
        "cores": cores,
        "cpu_per_sweep": cpu_bound,
        "dask1_over_dask2_allowed_by_cpu": best_two_vs_one,
        "latency_per_round": latency,
        "projection": projection,
    }
    path = write_json("bench_dask", payload, args.out)
    print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
