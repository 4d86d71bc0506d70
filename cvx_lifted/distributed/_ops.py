# SPDX-License-Identifier: Apache-2.0
"""The kernels' row operations on the row chunks of Dask arrays (one map or one reduction each).

:class:`DaskRowOps` is the :class:`~cvx_lifted.kernels.RowOps` of a cluster: a ``map`` runs the
kernel's chunk function once per row chunk on the workers and keeps the result there (persisted);
a ``sum`` runs it per chunk and adds the results by a binary tree of tasks, so the client receives
one small array per reduction. Constants (weights, directions) travel once per call, as one task
of the graph that every chunk's task reads. The object counts what crosses the network: the
reductions (*rounds*), the bytes of the results the client receives and of the constants it sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvx_lifted.kernels import RowOps

__all__ = ["CommunicationCount", "DaskRowOps"]


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
    """

    distributed = True

    def __init__(self, *, persist_inputs: bool = True) -> None:
        self.persist_inputs = persist_inputs
        self.count = CommunicationCount()

    def _consts(self, consts: dict[str, Any]) -> Any:
        import dask

        self.count.bytes_sent += _nbytes(consts)
        return dask.delayed(consts, pure=True, traverse=False)

    def map(
        self, fn: Callable[..., Any], *arrays: Any, cols: int, dtype: Any, **consts: Any
    ) -> Any:
        """Return the persisted array whose chunks are ``fn(*chunks, **consts)``."""
        import dask.array as da

        self.count.maps += 1
        out = da.map_blocks(
            _apply, *arrays, fn=fn, consts=self._consts(consts),
            chunks=(arrays[0].chunks[0], (cols,)), dtype=dtype,
            meta=np.empty((0, cols), dtype=dtype),
        )  # fmt: skip
        return out.persist()

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
        """Return the sum over chunks of ``fn(*chunks, **consts)``: one round trip."""
        import dask

        c = self._consts(consts)
        blocks = [a.to_delayed().ravel() for a in arrays]
        parts = [
            dask.delayed(_apply, pure=True)(*chunk, fn=fn, consts=c)
            for chunk in zip(*blocks, strict=True)
        ]
        while len(parts) > 1:  # a binary tree: partial sums meet on the workers
            pairs = [
                dask.delayed(_add, pure=True)(parts[i], parts[i + 1])
                for i in range(0, len(parts) - 1, 2)
            ]
            parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
        (result,) = dask.compute(parts[0])
        self.count.rounds += 1
        self.count.bytes_received += _nbytes(result)
        return result

    def astype(self, X: Any, dtype: Any) -> Any:
        """Return ``X`` in ``dtype``, persisted when :attr:`persist_inputs` is set."""
        out = X.astype(dtype)
        return out.persist() if self.persist_inputs else out
