# SPDX-License-Identifier: Apache-2.0
"""Training on Dask arrays: a LocalCluster of two worker processes, started by the tests."""

import threading
import time
import warnings

import numpy as np
import pytest

from cvx_lifted import LiftedNetwork

da = pytest.importorskip("dask.array", reason="the Dask path needs the [dask] extra")
distributed = pytest.importorskip("distributed", reason="the Dask path needs the [dask] extra")

from cvx_lifted.distributed import DaskBCDSolver, rows_from_npy  # noqa: E402
from cvx_lifted.distributed import cluster as cluster_module  # noqa: E402

# small chunks on purpose (many chunks per worker on little data): their warning is tested once
pytestmark = pytest.mark.filterwarnings("ignore:X is cut into:UserWarning")


def _classification(m=1500, p=12, q=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, p))
    W = rng.standard_normal((q, p))
    y = np.argmax(X @ W.T + 0.5 * rng.standard_normal((m, q)), axis=1)
    return X, np.eye(q)[y]


def _fit_both(net_args, X, Y, chunks, **options):
    """Fit the same network in memory and on Dask arrays; return both networks and results."""
    options = {"max_iter": 3, "tol": 0.0, "random_state": 3, **options}
    mem = LiftedNetwork(*net_args[0], **net_args[1])
    r_mem = mem.fit(X, Y, **options)
    dsk = LiftedNetwork(*net_args[0], **net_args[1])
    r_dsk = dsk.fit(da.from_array(X, chunks=(chunks, X.shape[1])), Y, **options)
    return mem, r_mem, dsk, r_dsk


def _assert_same_iterates(mem, r_mem, dsk, r_dsk, rtol=1e-6):
    for W1, W2, b1, b2 in zip(mem.weights, dsk.weights, mem.biases, dsk.biases, strict=True):
        scale = max(np.abs(W1).max(), np.abs(b1).max())
        assert np.abs(W1 - W2).max() <= rtol * scale
        assert np.abs(b1 - b2).max() <= rtol * scale
    np.testing.assert_allclose(r_dsk.history.objective, r_mem.history.objective, rtol=rtol)


@pytest.mark.parametrize("chunks", [250, 999])
def test_default_network_follows_the_in_memory_iterates(dask_active, chunks):
    X, Y = _classification()
    runs = _fit_both((([12, 16, 4],), {"output": "softmax_xent"}), X, Y, chunks)
    _assert_same_iterates(*runs)
    mem, _, dsk, r_dsk = runs
    assert len(r_dsk.states) == 1 and isinstance(r_dsk.states[0], da.Array)  # the user's client
    np.testing.assert_allclose(r_dsk.states[0].compute(), runs[1].states[0], rtol=1e-6, atol=1e-9)
    # every sweep records its reductions and bytes, and the client received only small arrays
    rec = r_dsk.history.residuals[-1]
    assert rec["dask.rounds"] >= 3
    assert 0 < rec["dask.bytes_received"] < 50 * (16 + 1) * 16 * 8


@pytest.mark.parametrize(
    "layers, activation, output",
    [
        ([12, 10, 8, 4], "sigmoid", "softmax_xent"),  # Fenchel-Young weight and state steps
        ([12, 10, 4], "relu", "simplex_xent"),  # ridge weight steps, Appendix A output step
        ([12, 10, 4], "tanh", "squared"),  # a regression head
    ],
)
def test_every_fast_path_follows_the_in_memory_iterates(dask_active, layers, activation, output):
    X, Y = _classification(m=800)
    if output == "squared":
        Y = Y @ np.arange(1.0, 5.0)[:, None] * np.ones((1, 4))
    runs = _fit_both(((layers,), {"activation": activation, "output": output}), X, Y, 300)
    _assert_same_iterates(*runs)


def test_predictions_on_dask_arrays_equal_the_in_memory_ones(dask_active):
    X, Y = _classification(m=600)
    net = LiftedNetwork([12, 16, 4], output="softmax_xent")
    net.fit(X, Y, max_iter=2, random_state=0)
    Xd = da.from_array(X, chunks=(128, 12))
    pred = net.predict(Xd)
    assert isinstance(pred, da.Array) and pred.chunks[0] == Xd.chunks[0]
    np.testing.assert_allclose(pred.compute(), net.predict(X), rtol=1e-12, atol=1e-14)


def test_a_worker_killed_during_a_sweep_does_not_change_the_result(dask_active):
    X, Y = _classification(m=4000, p=30)
    Xd = da.from_array(X, chunks=(500, 30))
    options = {"max_iter": 4, "tol": 0.0, "random_state": 5}
    calm = LiftedNetwork([30, 24, 4], output="softmax_xent")
    calm.fit(Xd, Y, **options)

    killed = []

    def kill_soon(sweep, partial):
        if sweep == 2 and not killed:  # during the third sweep, one worker process dies
            victim = sorted(dask_active.scheduler_info()["workers"])[0]

            def kill():
                time.sleep(0.05)
                dask_active.run(_exit, workers=[victim], on_error="ignore")

            threading.Thread(target=kill, daemon=True).start()
            killed.append(victim)
        return None

    hit = LiftedNetwork([30, 24, 4], output="softmax_xent")
    hit.fit(Xd, Y, callback=kill_soon, **options)
    assert killed
    for W1, W2 in zip(calm.weights, hit.weights, strict=True):
        np.testing.assert_allclose(W2, W1, rtol=1e-10, atol=1e-12)
    dask_active.wait_for_workers(2, timeout=60)


def _exit():
    import os

    os._exit(1)


def test_out_of_core_fit_on_data_larger_than_a_worker_memory_limit(tmp_path):
    """A .npy file of 360 MiB, read a chunk at a time by two workers limited to 300 MiB each."""
    m, p = 600_000, 160
    path = tmp_path / "X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(m, p))
    rng = np.random.default_rng(0)
    for s in range(0, m, 100_000):
        X[s : s + 100_000] = rng.random((100_000, p), dtype=np.float32)
    labels = (X[:, :4].argmax(axis=1)).astype(int)
    X.flush()
    del X
    Y = np.eye(4, dtype=np.float32)[labels]
    limit = 300 * 2**20
    assert path.stat().st_size > limit
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        memory_limit=limit,
    )  # fmt: skip
    with distributed.Client(cluster) as c:
        Xd = rows_from_npy(str(path), 25_000)
        net = LiftedNetwork([p, 8, 4], output="softmax_xent", dtype="float32")
        # two sweeps of three weight iterations (on 600,000 rows "auto" takes one a sweep,
        # which needs more than two sweeps to pass the accuracy asserted below)
        result = net.fit(Xd, Y, max_iter=2, tol=0.0, random_state=0, scheduler=c, weight_max_iter=3)
        assert np.isfinite(result.history.objective).all()
        assert result.history.objective[-1] < result.history.objective[0]
        acc = float(np.mean(net.predict(Xd).argmax(axis=1).compute() == labels))
        assert acc > 0.5  # four classes, well above chance
        workers = c.scheduler_info()["workers"].values()
        assert all(w["memory_limit"] == limit for w in workers)
    cluster.close()


def test_chunks_too_large_for_the_workers_are_refused_with_a_size_that_fits():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
        memory_limit=64 * 2**20,
    )  # fmt: skip
    with distributed.Client(cluster) as c:
        Xd = da.zeros((200_000, 100), chunks=(200_000, 100))
        net = LiftedNetwork([100, 50, 4], output="softmax_xent")
        with pytest.raises(MemoryError, match=r"rechunk\(\{0: \d+\}\)"):
            net.fit(Xd, np.eye(4)[np.zeros(200_000, dtype=int)], max_iter=1, scheduler=c)
    cluster.close()


def test_bad_inputs_and_schedulers_get_clear_errors(dask_active, monkeypatch):
    X, Y = _classification(m=200)
    net = LiftedNetwork([12, 8, 4], output="softmax_xent")
    with pytest.raises(ValueError, match="chunked along rows only"):
        net.fit(da.from_array(X, chunks=(100, 6)), Y, max_iter=1)
    with pytest.raises(ValueError, match=r"shape \(200, 4\)"):
        net.fit(da.from_array(X, chunks=(100, 12)), Y[:150], max_iter=1)
    bad = X.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"^X holds NaN or infinity in 1 row chunk\(s\)\. Clean"):
        net.fit(da.from_array(bad, chunks=(100, 12)), Y, max_iter=1)
    two_labels = Y.copy()
    two_labels[150, :2] = 1.0  # a multi-label row in the second chunk
    with pytest.raises(ValueError, match=r"^Y has rows that are not one-hot .* in 1 row chunk"):
        net.fit(da.from_array(X, chunks=(100, 12)), two_labels, max_iter=1)
    with pytest.raises(ValueError, match="no fast path"):
        LiftedNetwork([12, 8, 4], activation="sign", output="softmax_xent").fit(
            da.from_array(X, chunks=(100, 12)), Y, max_iter=1
        )
    with pytest.raises(TypeError, match="Dask inputs only"):
        net.fit(X, Y, max_iter=1, scheduler="tcp://127.0.0.1:1")
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 1)
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        net.fit(da.from_array(X, chunks=(100, 12)), Y, max_iter=1, scheduler="tcp://127.0.0.1:1")


def test_the_solver_counts_rounds_per_sweep_and_a_local_cluster_is_closed_after_the_fit():
    X, Y = _classification(m=400)
    net = LiftedNetwork([12, 8, 4], activation="relu_fenchel", output="softmax_xent")
    solver = DaskBCDSolver(net, max_iter=2, tol=0.0)
    result = solver.run(da.from_array(X, chunks=(100, 12)), Y, random_state=0)
    assert result.states == []  # the cluster started for the fit is gone with its states
    assert len(solver.communication) == 2
    assert all(c["rounds"] >= 3 for c in solver.communication)
    with pytest.raises(ValueError):  # no active client: it was closed
        distributed.get_client()


def _malloc_environ() -> dict[str, str | None]:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}


@pytest.mark.parametrize("starter", ["fit", "cli"])
def test_the_local_cluster_started_for_a_fit_runs_workers_that_reuse_their_memory(starter):
    from cvx_lifted.cli._dask import dask_client
    from cvx_lifted.distributed.cluster import MALLOC_THRESHOLD, cluster_client

    started = cluster_client() if starter == "fit" else dask_client("local")
    with (
        started as made
    ):  # the fit's (client, owned), `cvx-lifted train --scheduler local`'s client
        client = made[0] if starter == "fit" else made
        environs = client.run(_malloc_environ)
        stealing = client.run_on_scheduler(
            lambda dask_scheduler: "stealing" in dask_scheduler.extensions
        )
    assert environs and all(
        env == {"MALLOC_TRIM_THRESHOLD_": str(MALLOC_THRESHOLD),
                "MALLOC_MMAP_THRESHOLD_": str(MALLOC_THRESHOLD)}
        for env in environs.values()
    )  # fmt: skip
    assert stealing is False


def test_empty_chunks_and_a_refit_leave_fits_and_lazy_predictions_right(dask_active):
    X, Y = _classification(m=400)
    # a filtered array has empty chunks after compute_chunk_sizes(); here made directly
    Xd = da.from_array(X, chunks=((0, 150, 0, 250), (12,)))
    net = LiftedNetwork([12, 8, 4], output="softmax_xent", dtype=np.float32)
    result = net.fit(Xd, Y, max_iter=2, random_state=0)
    assert np.isfinite(result.history.objective).all()
    P = net.predict(Xd)
    assert P.dtype == np.float32 and P.compute().dtype == np.float32  # the metadata is true
    before = net.predict(X)
    net.fit(X, Y, max_iter=2, warm_start=True)  # a refit after the lazy prediction was made
    assert not np.allclose(net.predict(X), before, atol=1e-4)
    np.testing.assert_allclose(P.compute(), before, atol=1e-6)  # float32 products by chunk
    unknown = da.from_array(Y, chunks=(100, 4))[da.from_array(Y[:, 0] >= 0, chunks=100)]
    with pytest.raises(ValueError, match=r"Y has unknown chunk sizes; call Y.compute_chunk"):
        net.fit(da.from_array(X, chunks=(100, 12)), unknown, max_iter=1)


@pytest.mark.filterwarnings("default")
def test_many_small_chunks_warn_with_a_size_to_rechunk_to(dask_active):
    X, Y = _classification(m=1500)
    net = LiftedNetwork([12, 8, 4], output="softmax_xent")
    with pytest.warns(UserWarning, match=r"15 row chunks of about 100 rows for 2 worker\(s\)"):
        net.fit(da.from_array(X, chunks=(100, 12)), Y, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(da.from_array(X, chunks=(750, 12)), Y, max_iter=1)  # one chunk per worker


def test_targets_outside_the_output_range_warn_on_the_client(dask_active):
    X, Y = _classification(m=200)
    net = LiftedNetwork([12, 8, 1], output_activation="relu")
    with pytest.warns(UserWarning, match=r"ranges over \[-1, 0\], outside \[0, inf\]") as rec:
        net.fit(da.from_array(X, chunks=(100, 12)), -Y[:, :1], max_iter=1)
    assert rec[0].filename == __file__
    assert not any(f[0] == "ignore" and f[2] is Warning for f in warnings.filters[:1])


def test_rho_zero_is_named_as_the_reason_a_dask_fit_is_refused(dask_active):
    X, Y = _classification(m=200)
    with pytest.raises(ValueError, match=r"rho = 0 for \['W0', 'W1'\]: fast weight steps need"):
        LiftedNetwork([12, 8, 4], output="softmax_xent", rho=0).fit(
            da.from_array(X, chunks=(100, 12)), Y, max_iter=1
        )


def test_workers_without_a_memory_limit_keep_the_data_in_memory():
    from cvx_lifted.distributed.data import cluster_memory

    with (
        distributed.LocalCluster(  # worker processes: no threads left in this one (forks)
            n_workers=1, threads_per_worker=1, processes=True, memory_limit=0,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        assert cluster_memory() > 2**20  # the host's memory, not 0
        X, Y = _classification(m=200)
        net = LiftedNetwork([12, 8, 4], output="softmax_xent")
        solver = DaskBCDSolver(net, max_iter=1, scheduler=client)
        solver.run(da.from_array(X, chunks=(100, 12)), Y, random_state=0)
        assert solver.row_ops.persist_inputs


def test_map_tasks_keep_their_worker_restrictions(dask_active):
    """Each chunk's task runs where its rows live: the restriction reaches the scheduler."""
    from cvx_lifted.distributed._ops import DaskRowOps

    X, _ = _classification(m=400)
    ops = DaskRowOps()
    (Xd,) = ops.place(da.from_array(X, chunks=(100, 12)).persist())
    out = ops.map(np.negative, Xd, cols=12, dtype=X.dtype)
    distributed.wait(distributed.futures_of(out))
    keys = {str(row[0]) for row in out.__dask_keys__()}  # one chunk of columns per row chunk

    def restrictions(dask_scheduler, keys=keys):
        return {
            str(k): (sorted(ts.worker_restrictions or ()), sorted(w.address for w in ts.who_has))
            for k, ts in dask_scheduler.tasks.items()
            if str(k) in keys
        }

    found = dask_active.run_on_scheduler(restrictions)
    assert len(found) == 4
    for wanted, held in found.values():
        assert len(wanted) == 1 and held == wanted
    np.testing.assert_array_equal(out.compute(), -X)


def _column_sums(X, *, scale):
    return scale * X.sum(axis=0)


def test_sums_over_held_chunks_equal_the_graph_path_and_the_in_memory_sum(dask_active, monkeypatch):
    """Chunks in memory are summed by tasks submitted on their futures; lazy ones by a graph."""
    from cvx_lifted.distributed import _ops

    X, _ = _classification(m=400)
    expected = 2.0 * X.sum(axis=0)
    ops = _ops.DaskRowOps()
    (held,) = ops.place(da.from_array(X, chunks=(50, 12)).persist())
    assert _ops._chunk_futures((held,)) is not None
    np.testing.assert_allclose(ops.sum(_column_sums, held, scale=2.0), expected, rtol=1e-12)
    # the constants travel once per worker's task: 8 bytes to each of the two workers
    assert ops.count.rounds == 1 and ops.count.bytes_sent == 16
    monkeypatch.setattr(_ops, "GATHER_MAX", 1)  # the partial sums meet in a tree on the workers
    np.testing.assert_allclose(ops.sum(_column_sums, held, scale=2.0), expected, rtol=1e-12)
    lazy = da.from_array(X, chunks=(50, 12))
    assert _ops._chunk_futures((lazy,)) is None
    lazy_ops = _ops.DaskRowOps()
    np.testing.assert_allclose(lazy_ops.sum(_column_sums, lazy, scale=2.0), expected, rtol=1e-12)
    assert lazy_ops.count.rounds == 1
