# SPDX-License-Identifier: Apache-2.0
"""BLAS thread choice: measured choices, exact products, scoped settings (no timing asserts)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from cvx_lifted import threads
from cvx_lifted.bcd import blas_limits
from cvx_lifted.threads import ThreadChooser, matmul, training_threads


def _blas_threads():
    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("shape_a", "shape_b", "transposed"),
    [
        ((600, 40), (40, 30), False),  # cut along the rows of A
        ((40, 600), (600, 30), False),  # the inner dimension is the largest: rows of A still
        ((30, 40), (40, 600), False),  # cut along the columns of B
        ((600, 40), (600, 30), True),  # A transposed (a view, as X.T in the kernels)
    ],
)
def test_chooser_products_do_not_depend_on_the_workers(shape_a, shape_b, transposed, dtype):
    rng = np.random.default_rng(0)
    A = rng.normal(size=shape_a).astype(dtype)
    B = rng.normal(size=shape_b).astype(dtype)
    if transposed:
        A = A.T
    chooser = ThreadChooser((1, 2), reprobe_every=1, min_flops=0)
    # the first products measure each count, then every product probes the other one
    results = [chooser.matmul(A, B) for _ in range(4)]
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(results[0], A @ B, rtol=tol, atol=tol)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])  # bit for bit, whatever the workers
    (entry,) = chooser.summary().values()
    # both candidates were measured, on whole products
    assert set(entry["calls"]) == {1, 2} and sum(entry["calls"].values()) == 4
    assert entry["choice"] in (1, 2)
    chooser.close()


def test_chooser_product_inside_a_worker_runs_its_pieces_on_that_thread():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(300, 20)), rng.normal(size=(20, 10))
    chooser = ThreadChooser((1, 2), reprobe_every=1, min_flops=0)
    out: list[np.ndarray] = [np.empty(0)] * 4
    threads._ACTIVE.append(chooser)
    try:

        def work(i: int) -> None:
            out[i] = chooser.matmul(A, B)  # would wait on the busy pool if it used it

        for _ in range(3):  # with one worker and with two, by the chooser's probes
            threads.map_chunks(work, 4, key="nested")
    finally:
        threads._ACTIVE.remove(chooser)
        chooser.close()
    for result in out:
        np.testing.assert_array_equal(result, out[0])
    np.testing.assert_allclose(out[0], A @ B, rtol=1e-12)
    assert "chunks:nested" in chooser.summary()


def test_chooser_picks_the_faster_candidate_and_keeps_probing():
    chooser = ThreadChooser((1, 2), reprobe_every=4)
    key = ("<f8", "NM")
    assert chooser.choice(key) == 1  # nothing measured: the fewest threads
    chooser._rates.setdefault(key, threads._Rates()).record(1, 2.0, 1e9)
    chooser._rates[key].record(2, 1.0, 1e9)
    assert chooser.choice(key) == 2
    # the newest measurement weighs half: two slow products on 2 threads switch the choice
    chooser._rates[key].record(2, 6.0, 1e9)
    chooser._rates[key].record(2, 6.0, 1e9)
    assert chooser.choice(key) == 1
    # more threads must be clearly faster (the margin): 10% is not enough
    key2 = ("<f4", "TK")
    chooser._rates.setdefault(key2, threads._Rates()).record(1, 1.0, 1e9)
    chooser._rates[key2].record(2, 0.9, 1e9)
    assert chooser.choice(key2) == 1
    # once both have a measure, every fourth product probes the other candidate
    probes = [chooser._probe(key, chooser.choice(key)) for _ in range(8)]
    assert probes.count(None) == 6
    assert [p for p in probes if p is not None] == [2, 2]


def test_chooser_small_products_are_not_timed():
    chooser = ThreadChooser((1, 2))
    A = np.ones((4, 3))
    np.testing.assert_array_equal(chooser.matmul(A, A.T), A @ A.T)
    assert chooser.summary() == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"candidates": ()}, "candidates"),
        ({"candidates": (0, 2)}, "candidates"),
        ({"candidates": (1, 2), "reprobe_every": 0}, "reprobe_every"),
        ({"candidates": (1, 2), "margin": 1.5}, "margin"),
    ],
)
def test_chooser_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ThreadChooser(**kwargs)


def test_training_threads_auto_runs_on_one_thread_and_chooses_the_large_products():
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        with training_threads("auto", max_threads=2) as chooser:
            assert _blas_threads() == 1
            assert chooser is threads.active_chooser()
            assert chooser.candidates == (1, 2)
            rng = np.random.default_rng(1)
            A, B = rng.normal(size=(2000, 100)), rng.normal(size=(100, 200))
            np.testing.assert_allclose(matmul(A, B), A @ B, rtol=1e-12)
            assert chooser.summary()  # the product was timed
        assert threads.active_chooser() is None
        assert _blas_threads() == before


def test_training_threads_integer_and_none():
    with threadpool_limits(2, user_api="blas"):
        with training_threads(1) as chooser:
            assert chooser is None and _blas_threads() == 1
        with training_threads(None) as chooser:
            assert chooser is None and _blas_threads() == 2
        with blas_limits("auto", 10, [3, 4]):  # BCD's entry point
            assert _blas_threads() == 1
        assert _blas_threads() == 2


def test_single_core_auto_uses_no_chooser():
    with training_threads("auto", max_threads=1) as chooser:
        assert chooser is None
        assert _blas_threads() == 1


@pytest.mark.parametrize("bad", ["all", 0, -2, 1.5, True])
def test_training_threads_rejects_bad_settings(bad):
    with pytest.raises(ValueError, match="blas_threads"), training_threads(bad):
        pass


def test_matmul_outside_training_is_a_plain_product():
    A = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(matmul(A, A.T), A @ A.T)
    assert threads.available_cores() >= 1
    assert threads.blas_thread_count() >= 1


def test_map_chunks_runs_every_chunk_once_with_or_without_workers():
    seen = []
    threads.map_chunks(seen.append, 7)
    assert seen == list(range(7))
    with training_threads("auto", max_threads=2) as chooser:
        seen.clear()
        for _ in range(6):  # several calls: both worker counts get measured
            threads.map_chunks(seen.append, 5, key="test")
        assert sorted(seen) == sorted(list(range(5)) * 6)
        (entry,) = chooser.summary().values()
        assert set(entry["calls"]) == {1, 2}


def test_map_chunks_inside_a_worker_runs_its_chunks_in_order_on_that_thread():
    import threading

    inner: dict[int, list[tuple[int, int]]] = {}

    def outer(i: int) -> None:
        me = threading.get_ident()
        inner[i] = []
        threads.map_chunks(lambda j: inner[i].append((j, threading.get_ident() - me)), 4)

    with training_threads("auto", max_threads=2) as chooser:
        rates = chooser._rates[("chunks", "outer")] = threads._Rates()
        rates.record(1, 1.0, 1.0)  # as if measured: 2 workers ten times faster
        rates.record(2, 1.0, 10.0)
        threads.map_chunks(outer, 4, key="outer")
        summary = chooser.summary()
    assert sorted(inner) == [0, 1, 2, 3]
    for calls in inner.values():  # in order, on the worker that ran the outer chunk
        assert calls == [(j, 0) for j in range(4)]
    assert summary["chunks:outer"]["calls"] == {1: 1, 2: 2}  # the outer chunks ran on 2 workers
    assert "chunks:chunks" not in summary  # the inner chunks were not measured


def test_a_single_chunk_is_measured_as_one_worker():
    chooser = ThreadChooser(candidates=(1, 2))
    for _ in range(3):
        chooser.run_chunks(lambda i: None, 1, "one")
    assert set(chooser.summary()["chunks:one"]["calls"]) == {1}


def test_state_step_with_workers_matches_the_sequential_answer():
    from cvx_lifted.kernels import L2Coupling, state_step

    rng = np.random.default_rng(3)
    U, W = rng.normal(size=(1000, 40)), rng.normal(size=(6, 40)) / 5
    b, T = rng.normal(size=6), np.abs(rng.normal(size=(1000, 6)))
    args = (U, W, b, L2Coupling(T), 1.0, 1.0, 0.0, np.inf)
    Z_seq = state_step(*args, chunk_rows=100).value
    with training_threads("auto", max_threads=2):
        Z_par = state_step(*args, chunk_rows=100).value
    np.testing.assert_array_equal(Z_par, Z_seq)


@pytest.mark.skipif(threads.available_cores() < 2, reason="the chooser needs two cores")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_does_not_depend_on_the_chosen_workers(dtype, monkeypatch):
    """One worker or two for every large product: the same weights, bit for bit."""
    from cvx_lifted import LiftedNetwork

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 120))
    Y = np.eye(4)[rng.integers(0, 4, size=3000)]
    fits, used = [], []
    monkeypatch.setattr(ThreadChooser, "_probe", lambda self, key, best: None)
    for workers in (1, 2):
        monkeypatch.setattr(ThreadChooser, "choice", lambda self, key, w=workers: w)
        net = LiftedNetwork([120, 60, 4], output="simplex_xent", dtype=dtype)
        with threadpool_limits(2, user_api="blas"), training_threads("auto", max_threads=2) as ch:
            net.fit(X, Y, max_iter=3, tol=0, random_state=0, blas_threads=None)
            used.append({entry["choice"] for entry in ch.summary().values()})
        fits.append(net)
    assert used == [{1}, {2}]  # the large products ran on one worker, then on two
    first, second = fits[0].weights + fits[0].biases, fits[1].weights + fits[1].biases
    for W_a, W_b in zip(first, second, strict=True):
        np.testing.assert_array_equal(W_a, W_b)
