# SPDX-License-Identifier: Apache-2.0
r"""BLAS threads chosen from measurements: more cores never make training slower.

Multithreaded BLAS pays only on large products and only while the cores are free. On a shared
2-core machine, with one other CPU-bound process running, OpenBLAS with 2 threads was 5-20x slower
than with one on small and medium products and on Cholesky factorisations, and a default
MNIST-10k sweep went from 0.76 s to 4.2 s; on a quiet machine the same 2 threads halve the time
of a 60,000 x 784 x 300 product. No size threshold separates the two cases: the load decides.

So training (``blas_threads="auto"``, :func:`training_threads`) runs every BLAS call on one
thread, and the products over the data that dominate a sweep, which the kernels send through
:func:`matmul`, are cut into as many pieces as there are candidate workers (along the rows of
``A`` or the columns of ``B``, never the shared inner dimension) and computed one piece per
single-threaded BLAS call: one after the other, or at once on that many Python threads (NumPy
releases the GIL inside ``matmul``). A :class:`ThreadChooser` times every such product and
picks, per kind of product, the number of workers with the best measured rate (flops per
second); it runs every ``reprobe_every``-th product of a kind on the other count, so a change
of load is noticed within a few products. The pieces are the same whatever the choice, so the
choice never changes a result, not even in its last bit: training under ``"auto"`` is
deterministic for a given seed and machine (OpenBLAS' own threads, or a piece computed on
several of them, would change the rounding of float32 products). More workers are chosen only
when measured clearly faster (``margin``). The chunks of rows of the state step run the same
way on one or several Python threads (:func:`map_chunks`).

Measured with a full-batch BCD fit of Fashion-MNIST on a 2-core machine
(``benchmarks/bench_load.py --solver bcd``, ``benchmarks/results/bench_load_bcd.json``): alone,
``"auto"`` took 10.4 s and one thread 11.1 s; next to one CPU-bound process 12.2 s (1.17x its
time alone) and 12.8 s, the chooser having moved every product to one worker. OpenBLAS on 2
threads everywhere took 2.07x its time alone next to the same process (an earlier run, with
OpenBLAS threads for the chooser's large products). Mini-batch BCD, whose products are
smaller, runs on one thread under ``"auto"`` (:class:`~cvx_lifted.minibatch.MinibatchBCDSolver`).

This module imports nothing from :mod:`cvx_lifted` (it sits with the validation helpers at the
bottom of the package's layers; the kernels use it).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ThreadChooser",
    "active_chooser",
    "available_cores",
    "blas_thread_count",
    "map_chunks",
    "map_row_parts",
    "matmul",
    "training_threads",
]

#: Products below this many flops are run as they are (not timed, not split).
MIN_TIMED_FLOPS = 2e7


def available_cores() -> int:
    """Return the number of CPU cores this process may run on (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def blas_thread_count() -> int:
    """Return the thread count of the loaded BLAS libraries (the largest; 1 if none is found)."""
    try:
        info = _blas_controller().info()
    except Exception:  # noqa: BLE001 - threadpoolctl cannot inspect this platform
        return 1
    return max([int(lib.get("num_threads", 1)) for lib in info] or [1])


@dataclass
class _Rates:
    """Measured seconds per flop of one kind of product, per thread count."""

    rate: dict[int, float] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    flops: dict[int, float] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    n: int = 0

    def record(self, threads: int, seconds: float, flops: float) -> None:
        rate = seconds / flops
        old = self.rate.get(threads)
        # the newest measurement weighs half: a change of load shows within two products
        self.rate[threads] = rate if old is None else 0.5 * (old + rate)
        self.calls[threads] = self.calls.get(threads, 0) + 1
        self.flops[threads] = self.flops.get(threads, 0.0) + flops
        self.seconds[threads] = self.seconds.get(threads, 0.0) + seconds


class ThreadChooser:
    r"""Choose the number of worker threads of large products from their own timings.

    For each kind of product (dtype, which operand is transposed, the dimension it is cut along
    and the size class of its thinnest dimension) the chooser keeps, per candidate count of
    workers, a running estimate of the seconds per flop (the newest product weighs half). A
    product runs with the candidate that has the best estimate (more workers only when at least
    ``1 / margin`` times faster); while a candidate has no estimate, and then on every
    ``reprobe_every``-th product of a kind, the product runs with another candidate instead,
    which keeps the estimates current as the load changes. Every product of at least
    ``min_flops`` is cut into ``max(candidates)`` pieces along the rows of ``A`` or the columns
    of ``B`` (the larger), each computed by one single-threaded BLAS call, so its result does
    not depend on the choice, bit for bit.

    Parameters
    ----------
    candidates : sequence of int
        Worker counts to choose from (for example ``(1, 2)``); at least one, each >= 1.
    reprobe_every : int, default 8
        Probe on every ``reprobe_every``-th product of a kind once every candidate has a measure.
    min_flops : float, default :data:`MIN_TIMED_FLOPS`
        Smaller products run uncut on the calling thread and are not timed.
    margin : float, default 0.8
        More workers must take at most ``margin`` times the seconds per flop of fewer.

    Attributes
    ----------
    candidates : tuple of int
        The worker counts, sorted.

    Raises
    ------
    ValueError
        If a candidate is not an integer >= 1, ``reprobe_every`` is not an integer >= 1, or
        ``margin`` is not in (0, 1].
    """

    def __init__(
        self,
        candidates: Sequence[int],
        *,
        reprobe_every: int = 8,
        min_flops: float = MIN_TIMED_FLOPS,
        margin: float = 0.8,
    ) -> None:
        cands = sorted({int(c) for c in candidates})
        if not cands or any(c < 1 or c != float(c) for c in candidates):
            raise ValueError(
                f"candidates must be integers >= 1 (thread counts), got {list(candidates)!r}"
            )
        if int(reprobe_every) != reprobe_every or reprobe_every < 1:
            raise ValueError(f"reprobe_every must be an integer >= 1, got {reprobe_every!r}")
        self.candidates: tuple[int, ...] = tuple(cands)
        self.reprobe_every = int(reprobe_every)
        self.min_flops = float(min_flops)
        if not 0.0 < margin <= 1.0:
            raise ValueError(f"margin must be in (0, 1], got {margin!r}")
        self.margin = float(margin)
        self._rates: dict[tuple[str, str], _Rates] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ----------------------------------------------------------------------------- choice
    def choice(self, key: tuple[str, str]) -> int:
        """Return the number of workers chosen for ``key`` from the measured rates.

        More workers are chosen only when measured at least ``1 / margin`` times faster than the
        choice with fewer (the fewest when nothing is measured). The margin covers what a
        measurement misses: work on a second core slows the calling thread's own work that
        follows it on a busy machine.
        """
        rates = self._rates.get(key)
        chosen = self.candidates[0]
        if rates is None or chosen not in rates.rate:
            return chosen
        for c in self.candidates[1:]:
            if c in rates.rate and rates.rate[c] <= self.margin * rates.rate[chosen]:
                chosen = c
        return chosen

    def _probe(self, key: tuple[str, str], best: int) -> int | None:
        """Return the candidate to measure on this product instead of ``best``, or ``None``."""
        if len(self.candidates) == 1:
            return None
        rates = self._rates.setdefault(key, _Rates())
        missing = [c for c in self.candidates if c not in rates.rate]
        rates.n += 1
        if missing:
            unmeasured = [c for c in missing if c != best]
            return unmeasured[0] if unmeasured else None
        every = self.reprobe_every * (2 if key[0] == "chunks" else 1)
        if rates.n % every:
            return None
        others = [c for c in self.candidates if c != best]
        # the candidate measured longest ago: the one with the fewest calls
        return min(others, key=lambda c: rates.calls.get(c, 0))

    def run_chunks(self, work: Callable[[int], Any], count: int, key: str) -> None:
        """Call ``work(i)`` for ``i < count`` on worker threads chosen from their measured speed.

        The chunks run in rounds of two per worker; each round runs on the candidate count of
        workers with the best measured seconds per chunk (probing the others as for products,
        half as often: a probe round costs whole chunks).
        ``work`` must be safe to run concurrently on different ``i`` (disjoint rows); NumPy
        releases the GIL inside its array operations, so the workers share the cores.

        Parameters
        ----------
        work : callable
            ``work(i)``, the i-th chunk.
        count : int
            Number of chunks.
        key : str
            The kind of work (rates are kept per kind).
        """
        rkey = ("chunks", key)
        i = 0
        while i < count:
            with self._lock:
                best = self.choice(rkey)
                probe = self._probe(rkey, best)
            workers = probe if probe is not None else best
            batch = min(count - i, 2 * workers)
            if batch == 1:  # one chunk runs on one thread: measure it as such
                workers = 1
            t0 = time.perf_counter()
            if workers == 1:
                for j in range(i, i + batch):
                    work(j)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max(self.candidates))
                list(self._pool.map(_in_worker(work), range(i, i + batch)))
            with self._lock:
                self._rates.setdefault(rkey, _Rates()).record(
                    workers, time.perf_counter() - t0, float(batch)
                )
            i += batch

    def close(self) -> None:
        """Stop the worker threads (if any were started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per kind of work: the choice, and per thread count the calls, seconds and speed.

        ``speed`` is in GFLOP/s for products and in chunks per second for :meth:`run_chunks`.
        """
        out: dict[str, dict[str, Any]] = {}
        for (kind, detail), r in self._rates.items():
            scale = 1.0 if kind == "chunks" else 1e-9
            out[f"{kind}:{detail}"] = {
                "choice": self.choice((kind, detail)),
                "calls": dict(r.calls),
                "seconds": dict(r.seconds),
                "speed": {c: scale / v for c, v in r.rate.items()},
            }
        return out

    # ----------------------------------------------------------------------------- running
    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(self.candidates))
        return self._pool

    def matmul(self, A: NDArray[Any], B: NDArray[Any]) -> NDArray[Any]:
        """Return ``A @ B`` (2-D operands), its pieces computed by the chosen number of workers.

        Parameters
        ----------
        A : ndarray, shape (m, k)
        B : ndarray, shape (k, n)

        Returns
        -------
        ndarray, shape (m, n)
            The product, in numpy's result dtype of ``A @ B``; the same, bit for bit, whatever
            the number of workers.
        """
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
            return np.asarray(A @ B)
        m, k = A.shape
        n = B.shape[1]
        flops = 2.0 * m * k * n
        parts = max(self.candidates)
        by_rows = m >= n
        size = m if by_rows else n
        if flops < self.min_flops or parts == 1 or size < parts:
            return np.asarray(A @ B)
        dtype = np.result_type(A, B)
        # the kind of product: which operand BLAS reads transposed, the dimension it is cut along,
        # and the size of its thinnest dimension (thin products run far below the rate of square
        # ones: a class per size up to 16, 64, 256, more)
        kind = ("T" if A.flags.f_contiguous and not A.flags.c_contiguous else "N") + (
            "M" if by_rows else "N"
        )
        thin = min(m, k, n)
        kind += ":" + next((f"<={b}" for b in (16, 64, 256) if thin <= b), ">256")
        key = (dtype.str, kind)
        bounds = [i * size // parts for i in range(parts + 1)]
        out = np.empty((m, n), dtype=dtype)

        def piece(i: int) -> None:
            lo, hi = bounds[i], bounds[i + 1]
            if by_rows:
                np.matmul(A[lo:hi], B, out=out[lo:hi])
            else:
                out[:, lo:hi] = A @ B[:, lo:hi]

        if getattr(_WORKER, "busy", False):  # inside a worker already: its pieces in order
            for i in range(parts):
                piece(i)
            return out
        with self._lock:
            best = self.choice(key)
            probe = self._probe(key, best)
        workers = probe if probe is not None else best
        t0 = time.perf_counter()
        if workers == 1:
            for i in range(parts):
                piece(i)
        else:  # the pieces on this thread and workers - 1 others, a share each
            share = [range(w, parts, workers) for w in range(workers)]

            def pieces(ids: range) -> None:
                for i in ids:
                    piece(i)

            pending = [self._workers().submit(pieces, ids) for ids in share[1:]]
            pieces(share[0])
            for future in pending:
                future.result()
        seconds = time.perf_counter() - t0
        with self._lock:
            self._rates.setdefault(key, _Rates()).record(workers, seconds, flops)
        return out


_ACTIVE: list[ThreadChooser] = []


def active_chooser() -> ThreadChooser | None:
    """Return the chooser of the innermost :func:`training_threads` block, or ``None``."""
    return _ACTIVE[-1] if _ACTIVE else None


_WORKER = threading.local()


def _in_worker(work: Callable[[int], Any]) -> Callable[[int], Any]:
    """Wrap ``work`` so that :func:`map_chunks` called inside it runs its chunks in order."""

    def run(i: int) -> Any:
        _WORKER.busy = True
        try:
            return work(i)
        finally:
            _WORKER.busy = False

    return run


def map_chunks(work: Callable[[int], Any], count: int, *, key: str = "chunks") -> None:
    """Call ``work(i)`` for every ``i < count``, on measured worker threads inside training.

    Inside :func:`training_threads` ``"auto"`` with more than one core the active
    :class:`ThreadChooser` runs the chunks on 1 or several threads, whichever its measurements
    favour (:meth:`ThreadChooser.run_chunks`); otherwise one after the other. Called from inside
    a chunk that already runs on a worker thread (chunks of chunks), it runs in order on that
    thread.

    Parameters
    ----------
    work : callable
        ``work(i)``; must be safe to call concurrently for different ``i``.
    count : int
        Number of chunks.
    key : str, default "chunks"
        The kind of work, for the measurements.
    """
    chooser = active_chooser()
    if chooser is None or count < 2 or getattr(_WORKER, "busy", False):
        for i in range(count):
            work(i)
        return
    chooser.run_chunks(work, count, key)


def map_row_parts(
    work: Callable[[int, int], Any], rows: int, parts: int, *, key: str = "chunks"
) -> list[Any]:
    """Return ``[work(start, stop), ...]`` over ``parts`` ranges of rows, via :func:`map_chunks`.

    The ranges are of equal size to a row (no short last one), so worker threads share them
    evenly and the chooser's timings of whole ranges compare.

    Parameters
    ----------
    work : callable
        ``work(start, stop)`` for rows ``start:stop``; must be safe to call concurrently.
    rows : int
        Number of rows.
    parts : int
        Number of ranges.
    key : str, default "chunks"
        The kind of work, for the measurements.

    Returns
    -------
    list
        The results of ``work``, in the order of the ranges.
    """
    bounds = [k * rows // parts for k in range(parts + 1)] if parts else [0]
    out: list[Any] = [None] * parts

    def run(k: int) -> None:
        out[k] = work(bounds[k], bounds[k + 1])

    map_chunks(run, parts, key=key)
    return out


def matmul(A: NDArray[Any], B: NDArray[Any]) -> NDArray[Any]:
    """Return ``A @ B``; inside :func:`training_threads` ``"auto"``, on measured worker threads.

    The kernels send the products over a layer's data (``m x p`` by ``p x q`` and the transposed
    ones) through this function; outside training it is ``A @ B``. Inside, a large product is
    cut into pieces that do not depend on the number of workers (:meth:`ThreadChooser.matmul`),
    so the result does not either.

    Parameters
    ----------
    A, B : ndarray
        Operands of ``A @ B``.

    Returns
    -------
    ndarray
    """
    chooser = active_chooser()
    if chooser is None:
        return np.asarray(A @ B)
    return chooser.matmul(A, B)


@contextlib.contextmanager
def training_threads(
    setting: int | str | None, *, max_threads: int | None = None
) -> Iterator[ThreadChooser | None]:
    """Set the BLAS threads of a block of training code.

    Parameters
    ----------
    setting : int, "auto" or None
        ``"auto"``: one BLAS thread for everything; the large products sent through
        :func:`matmul` are cut into ``max_threads`` pieces which a :class:`ThreadChooser` runs
        on 1 or ``max_threads`` Python threads, from measurements (with a single core the
        chooser is not used). The results do not depend on the choices. An integer: that many
        BLAS threads for everything, no measurements. ``None``: leave the setting alone.
    max_threads : int, optional
        The most threads ``"auto"`` may use; default: the cores this process may run on, at most
        the BLAS library's own thread count.

    Yields
    ------
    ThreadChooser or None
        The chooser in use (``"auto"`` with more than one core), else ``None``.

    Raises
    ------
    ValueError
        If ``setting`` is not a positive integer, ``"auto"`` or ``None``.
    """
    if setting is None:
        yield None
        return
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(
                f"blas_threads must be a positive integer, 'auto' or None, got {setting!r}."
            )
        n = max_threads if max_threads is not None else min(available_cores(), blas_thread_count())
    else:
        if isinstance(setting, bool) or int(setting) != setting or setting < 1:
            raise ValueError(
                f"blas_threads must be a positive integer, 'auto' or None, got {setting!r}."
            )
        n = 0
    try:
        limiter = _blas_controller().limit(limits=int(setting) if n == 0 else 1)
    except Exception:  # noqa: BLE001 - no BLAS threadpoolctl can control: nothing to choose
        yield None
        return
    with limiter:
        if n <= 1:
            yield None
            return
        chooser = ThreadChooser((1, int(n)))
        _ACTIVE.append(chooser)
        try:
            yield chooser
        finally:
            _ACTIVE.remove(chooser)
            chooser.close()
