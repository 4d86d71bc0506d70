# SPDX-License-Identifier: Apache-2.0
"""The kernels' row operations on the row chunks of Dask arrays (one map or one reduction each).

:class:`DaskRowOps` is the :class:`~cvx_lifted.kernels.RowOps` of a cluster: a ``map`` runs the
kernel's chunk function once per row chunk on the workers and keeps the result there (persisted);
a ``sum`` runs it per chunk and adds the results by a binary tree of tasks, so the client receives
one small array per reduction. Constants (weights, directions) travel once per call to every
worker: with the task of each worker when the chunks are held in memory (a reduction is then
submitted on the chunks' futures, without a task graph), else as one task of the graph that every
chunk's task reads. The object counts what crosses the network: the reductions (*rounds*), the
bytes of the results the client receives and of the constants it sends.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvx_lifted.kernels import RowOps

from .cluster import workers

__all__ = ["GATHER_MAX", "CommunicationCount", "DaskRowOps"]

#: Partial sums the client adds itself; more are first added in a tree on the workers (a tree
#: costs a task hop per level, a gather at the client its inbound bandwidth).
GATHER_MAX = 4


@dataclass
class CommunicationCount:
    """What the client exchanged with the workers.

    Attributes
    ----------
    rounds : int
        Reductions (each one ``compute``: the client waits for the workers).
    maps : int
        Maps (persisted without waiting).
    bytes_received : int
        Bytes of the reductions' results the client received.
    bytes_sent : int
        Bytes of the arrays the client put into task graphs (weights, directions, targets of
        the small solves).
    """

    rounds: int = 0
    maps: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0

    def as_dict(self) -> dict[str, float]:
        """Return the counts as floats keyed by name (for a sweep's record)."""
        return {k: float(v) for k, v in vars(self).items()}


def _nbytes(value: Any) -> int:
    """Bytes of the arrays in ``value`` (an array, a number or a tuple, list or dict of them)."""
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, float | int | np.generic):
        return 8
    if value is None or isinstance(value, str | bool) or callable(value):
        return 0  # functions travel once per worker process (pickled by reference)
    try:  # an object with arrays inside (a network, an activation): its pickle
        return len(pickle.dumps(value, protocol=5))
    except Exception:  # noqa: BLE001 - unpicklable here (cloudpickle will manage): not counted
        return 0


def _add(a: Any, b: Any) -> Any:
    """Add two chunk results entrywise (arrays, numbers, and tuples or dicts of them)."""
    if isinstance(a, dict):
        return {k: _add(a[k], b[k]) for k in a}
    if isinstance(a, tuple | list):
        return type(a)(_add(x, y) for x, y in zip(a, b, strict=True))
    return a + b


def _apply(*chunks: Any, fn: Callable[..., Any], consts: dict[str, Any]) -> Any:
    return fn(*chunks, **consts)


def _astype(X: Any, *, to: Any) -> Any:
    return X.astype(to)


def _same(X: Any) -> Any:
    return X


def balanced(current: list[Any] | None, workers: list[Any], n: int) -> list[Any]:
    """Assign ``n`` row chunks to ``workers`` evenly, keeping chunks where they are when possible.

    Parameters
    ----------
    current : list or None
        The worker holding each chunk now (``None``: the chunks are not in memory yet; then
        each worker gets a contiguous block of chunks).
    workers : list
        The workers.
    n : int
        Number of chunks.

    Returns
    -------
    list
        The worker of each chunk; the counts differ by at most one.
    """
    w = len(workers)
    quota = {wk: n // w + (1 if j < n % w else 0) for j, wk in enumerate(workers)}
    if current is None:
        out: list[Any] = []
        for wk in workers:
            out += [wk] * quota[wk]
        return out
    where: list[Any] = [None] * n
    for i, wk in enumerate(current):
        if quota.get(wk, 0) > 0:
            where[i] = wk
            quota[wk] -= 1
    free = [wk for wk in workers for _ in range(quota[wk])]
    for i in range(n):
        if where[i] is None:
            where[i] = free.pop(0)
    return where


def _sum_chunks(
    chunks: list[tuple[Any, ...]], *, fn: Callable[..., Any], consts: dict[str, Any]
) -> Any:
    """Add ``fn(*chunk, **consts)`` over the chunks one worker holds."""
    total = fn(*chunks[0], **consts)
    for chunk in chunks[1:]:
        total = _add(total, fn(*chunk, **consts))
    return total


def _workers() -> list[str]:
    return sorted(workers())


def _futures(a: Any) -> list[Any]:
    from distributed import futures_of

    return list(futures_of(a))


def _locate(arrays: tuple[Any, ...]) -> list[str] | None:
    """Return the worker holding each row chunk of the first persisted array, or ``None``."""
    from distributed import futures_of, get_client, wait

    for a in arrays:
        futures = futures_of(a)
        if len(futures) == a.numblocks[0]:
            wait(futures)
            who = get_client().who_has(futures)
            order = {f.key: f for f in futures}
            keys = [k[0] if isinstance(k, list) else k for k in a.__dask_keys__()]
            if all(who.get(k) for k in keys if k in order):
                return [sorted(who[k])[0] for k in keys]
    return None


def _tree(parts: list[Any], add: Callable[[Any, Any], Any]) -> list[Any]:
    """Pair up partial sums with ``add`` (a task) until at most :data:`GATHER_MAX` are left.

    A binary tree: the partial sums meet on the workers, each travelling once.
    """
    while len(parts) > GATHER_MAX:
        pairs = [add(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
    return parts


def _chunk_futures(arrays: tuple[Any, ...]) -> list[list[Any]] | None:
    """Return the futures of every row chunk of every array in row order (None: not all held)."""
    from distributed import futures_of

    held = []
    for a in arrays:
        futures = {f.key: f for f in futures_of(a)}
        keys = [k[0] if isinstance(k, list) else k for k in a.__dask_keys__()]
        if len(keys) != a.numblocks[0] or any(k not in futures for k in keys):
            return None
        held.append([futures[k] for k in keys])
    return held


def _updated(target: Any, *chunks: Any, inplace: Callable[..., Any], **consts: Any) -> Any:
    """Return a changed copy of ``target`` (a chunk held by Dask must never change in place)."""
    out = np.array(target, copy=True)
    inplace(out, *chunks, **consts)
    return out


class DaskRowOps(RowOps):
    """:class:`~cvx_lifted.kernels.RowOps` on Dask arrays chunked along rows only.

    Parameters
    ----------
    persist_inputs : bool, default=True
        Keep conversions of the inputs (the float32 copy of ``X`` for mixed-precision products)
        in the workers' memory. ``False`` for data larger than the cluster's memory: then every
        pass reads ``X`` from its source again.
    trace : bool, default=False
        Record every call in :attr:`trace`.

    Attributes
    ----------
    count : CommunicationCount
        What the client exchanged with the workers so far.
    trace : list of tuple or None
        ``(kind, function, bytes sent, bytes received)`` of every call, when asked for.
    """

    distributed = True

    def __init__(self, *, persist_inputs: bool = True, trace: bool = False) -> None:
        self.persist_inputs = persist_inputs
        self.count = CommunicationCount()
        self.trace: list[tuple[str, str, int, int]] | None = [] if trace else None
        self._where: list[str] | None = None

    def _consts(self, consts: dict[str, Any]) -> Any:
        import dask

        self._sent = _nbytes(consts)
        self.count.bytes_sent += self._sent
        return dask.delayed(consts, pure=True, traverse=False)

    def _record(self, kind: str, fn: Callable[..., Any], received: int) -> None:
        if self.trace is not None:
            self.trace.append((kind, getattr(fn, "__name__", str(fn)), self._sent, received))

    def map(
        self,
        fn: Callable[..., Any],
        *arrays: Any,
        cols: int,
        dtype: Any,
        keep: bool = True,
        **consts: Any,
    ) -> Any:
        """Return the array whose chunks are ``fn(*chunks, **consts)`` (persisted if ``keep``).

        Chunk ``i`` is computed on the worker that holds chunk ``i`` of the inputs (when known),
        so that rows never move between workers (Dask would otherwise balance the load by moving
        chunks). When the inputs are held in memory the chunks' tasks are submitted at once
        (``keep`` or not, unless :attr:`persist_inputs` is off) and their results are released
        with the array; otherwise a result that is not kept is computed as part of whatever uses
        it.
        """
        import dask
        import dask.array as da
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        self.count.maps += 1
        where = self._where if self._where is not None else _locate(arrays)
        rows = arrays[0].chunks[0]
        placed = where is not None and len(where) == len(rows)
        # out of core, a result that is not kept stays lazy: held, it could fill the workers
        held = _chunk_futures(arrays) if placed and (keep or self.persist_inputs) else None
        if held is not None:
            assert where is not None
            self._where = where
            return self._map_held(fn, held, where, rows, cols, dtype, consts)
        c = self._consts(consts)
        self._record("map", consts.get("inplace", fn), 0)
        if where is None or len(where) != len(rows):
            out = da.map_blocks(
                _apply, *arrays, fn=fn, consts=c, chunks=(rows, (cols,)), dtype=dtype,
                meta=np.empty((0, cols), dtype=dtype),
            )  # fmt: skip
            return out.persist() if keep else out
        self._where = where
        # one task per chunk, named as the chunk of the result (no alias tasks that Dask could
        # place elsewhere), on the worker that holds the inputs' chunk
        name = f"{getattr(fn, '__name__', 'map').strip('_')}-" + tokenize(
            fn, c.key, [a.name for a in arrays]
        )
        blocks = [a.to_delayed().ravel() for a in arrays]
        parts = []
        for i, chunk in enumerate(zip(*blocks, strict=True)):
            with dask.annotate(workers=where[i], allow_other_workers=True):
                parts.append(
                    dask.delayed(_apply, pure=True)(
                        *chunk, fn=fn, consts=c, dask_key_name=(name, i, 0)
                    )
                )
        graph = HighLevelGraph.merge(*[p.__dask_graph__() for p in parts])
        out = da.Array(graph, name, (rows, (cols,)), meta=np.empty((0, cols), dtype=dtype))
        # the graph is not optimised: optimisation drops the annotations (measured with Dask
        # 2026.8: no worker restriction reached the scheduler, which then moved 1-4 chunks of
        # hidden states per sweep between two workers)
        return out.persist(optimize_graph=False) if keep else out

    def _map_held(
        self,
        fn: Callable[..., Any],
        held: list[list[Any]],
        where: list[Any],
        rows: tuple[int, ...],
        cols: int,
        dtype: Any,
        consts: dict[str, Any],
    ) -> Any:
        """:meth:`map` over chunks held in memory: a task per chunk submitted on their futures.

        Each worker receives the constants once (a task of their own on it) and runs the tasks of
        the chunks it holds; the result is a Dask array of the tasks' futures, named as its
        chunks (nothing to optimise away, no alias that Dask could place elsewhere).
        """
        import uuid

        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph
        from distributed import get_client

        client = get_client()
        shared = {
            worker: client.submit(
                _same, consts, pure=False, workers=[worker], allow_other_workers=True
            )
            for worker in dict.fromkeys(where)
        }
        self._sent = _nbytes(consts) * len(shared)
        self.count.bytes_sent += self._sent
        self._record("map", consts.get("inplace", fn), 0)
        name = f"{getattr(fn, '__name__', 'map').strip('_')}-{uuid.uuid4().hex}"
        parts = [
            client.submit(
                _apply, *(futures[i] for futures in held), fn=fn, consts=shared[worker],
                key=(name, i, 0), workers=[worker], allow_other_workers=True, pure=False,
            )
            for i, worker in enumerate(where)
        ]  # fmt: skip
        graph = HighLevelGraph.from_collections(name, {f.key: f for f in parts}, dependencies=())
        return da.Array(graph, name, (rows, (cols,)), meta=np.empty((0, cols), dtype=dtype))

    def update(self, fn: Callable[..., Any], target: Any, *arrays: Any, **consts: Any) -> Any:
        """Return ``target`` after the in-place chunk function ``fn`` (a new persisted array)."""
        return self.map(
            _updated,
            target,
            *arrays,
            inplace=fn,
            cols=target.shape[1],
            dtype=target.dtype,
            **consts,
        )

    def sum(self, fn: Callable[..., Any], *arrays: Any, **consts: Any) -> Any:
        """Return the sum over chunks of ``fn(*chunks, **consts)``: one round trip.

        Each worker adds the results of the chunks it holds (one task per worker when the inputs
        are in memory, submitted on their futures; a task per chunk when they are read from
        storage); the client adds up to :data:`GATHER_MAX` partial sums itself, more meet first
        in a binary tree of tasks on the workers (each worker's partial sum travels once either
        way).
        """
        import dask

        held = _chunk_futures(arrays) if self.persist_inputs else None
        if held is not None:
            return self._sum_held(fn, arrays, held, consts)
        c = self._consts(consts)
        blocks = [a.to_delayed().ravel() for a in arrays]
        chunks = list(zip(*blocks, strict=True))
        parts = []
        for worker, indices in self._groups(arrays, len(chunks)):
            with dask.annotate(workers=worker, allow_other_workers=True):
                if self.persist_inputs:  # the chunks are in memory: one task per worker
                    part = dask.delayed(_sum_chunks, pure=True)(
                        [chunks[i] for i in indices], fn=fn, consts=c
                    )
                else:  # read from storage: a task per chunk, so one chunk at a time is held
                    part = None
                    for i in indices:
                        term = dask.delayed(_apply, pure=True)(*chunks[i], fn=fn, consts=c)
                        part = term if part is None else dask.delayed(_add, pure=True)(part, term)
                parts.append(part)
        parts = _tree(parts, dask.delayed(_add, pure=True))
        return self._summed(fn, dask.compute(*parts, optimize_graph=False))

    def _sum_held(
        self, fn: Callable[..., Any], arrays: tuple[Any, ...], held: list[list[Any]], consts: Any
    ) -> Any:
        """:meth:`sum` over chunks held in memory: a task per worker submitted on their futures.

        Submitting tasks on the futures directly costs the client and the scheduler about half
        of what a task graph built from the arrays does (a round trip of 11-12 ms instead of
        24 on a local cluster of two workers).
        """
        from distributed import get_client

        client = get_client()
        parts = []
        groups = self._groups(arrays, len(held[0]))
        for worker, indices in groups:
            chunks = [tuple(futures[i] for futures in held) for i in indices]
            parts.append(
                client.submit(
                    _sum_chunks, chunks, fn=fn, consts=consts, pure=False,
                    workers=None if worker is None else [worker], allow_other_workers=True,
                )
            )  # fmt: skip
        # the constants travel with each worker's task
        self._sent = _nbytes(consts) * len(parts)
        self.count.bytes_sent += self._sent
        parts = _tree(parts, functools.partial(client.submit, _add, pure=False))
        return self._summed(fn, client.gather(parts))

    def _summed(self, fn: Callable[..., Any], partial_sums: Any) -> Any:
        """Add the partial sums a round brought back, and count the round and its bytes."""
        result = functools.reduce(_add, partial_sums)
        self.count.rounds += 1
        received = _nbytes(result)
        self.count.bytes_received += received
        self._record("sum", fn, received)
        return result

    def place(self, X: Any, *others: Any) -> list[Any]:
        """Spread the row chunks of ``X`` evenly over the workers and align ``others`` with them.

        Chunk ``i`` of every array then lives on the same worker, for the whole fit: persisted
        chunks of ``X`` stay where they are up to an even share per worker (the rest move once),
        persisted chunks of ``others`` (the targets) are copied next to them once, and chunks
        read from storage are read where they belong. Returns ``[X, *others]`` so placed.
        """
        n = X.numblocks[0]
        current = _locate((X,))
        where = balanced(current, _workers(), n)
        self._where = where
        placed = []
        for a in (X, *others):
            now = current if a is X else _locate((a,))
            if not _futures(a) or now == where:  # read where used, or already there
                placed.append(a)
            else:
                placed.append(self.map(_same, a, cols=a.shape[1], dtype=a.dtype))
        return placed

    def _groups(self, arrays: tuple[Any, ...], n: int) -> list[tuple[Any, list[int]]]:
        """Group chunk indices by the worker that holds them (``None``: anywhere)."""
        where: list[Any] | None = self._where
        if where is None or len(where) != n:
            where = _locate(arrays)
            if where is not None:
                self._where = where
        if where is None:  # nothing persisted yet (inputs read from storage): spread evenly
            workers = _workers()
            where = [workers[i % len(workers)] if workers else None for i in range(n)]
        groups: dict[Any, list[int]] = {}
        for i, w in enumerate(where):
            groups.setdefault(w, []).append(i)
        return list(groups.items())

    def astype(self, X: Any, dtype: Any) -> Any:
        """Return ``X`` in ``dtype``, kept on the workers when :attr:`persist_inputs` is set."""
        return self.map(
            _astype, X, to=np.dtype(dtype), cols=X.shape[1], dtype=dtype, keep=self.persist_inputs
        )
