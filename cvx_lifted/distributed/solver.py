# SPDX-License-Identifier: Apache-2.0
r"""Block-coordinate descent on the row chunks of Dask arrays: the same sweep, data-parallel.

:class:`DaskBCDSolver` is :class:`~cvx_lifted.bcd.BCDSolver` with its rows on a cluster. Every
block of a sweep is already a few maps and reductions over rows, so nothing else changes:

* the **state and output steps** separate over rows: each row chunk runs the fast path's kernel
  (a :data:`~cvx_lifted.paths.STATE` or :data:`~cvx_lifted.paths.OUTPUT` entry) where it lives,
  and the new states stay there (persisted, chunked like ``X``);
* the **weight steps** need sums over rows only: the Gram :math:`[X, \mathbf 1]^\top[X,
  \mathbf 1]` of a layer's input, and per iteration of the iterative ones the moments
  :math:`[X, \mathbf 1]^\top G` and a few per-column sums along a line. Each is one reduction
  (:class:`~cvx_lifted.distributed._ops.DaskRowOps`); the small systems are solved on the
  client, by the same kernels (:func:`~cvx_lifted.kernels.relu_fenchel_step`,
  :func:`~cvx_lifted.kernels.fy_step`, :func:`~cvx_lifted.kernels.softmax_step`,
  :class:`~cvx_lifted.kernels.Ridge`) as in memory;
* the **objective** of a sweep is one reduction of per-chunk sums.

The client holds parameters, Grams and per-column sums, never rows. Blocks without a fast path
(compiled CVXPY problems) are refused with the list of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted import paths, threads
from cvx_lifted.bcd import BCDSolver, BCDState
from cvx_lifted.history import BCDResult
from cvx_lifted.kernels.ridge import image_chunk

from ._ops import DaskRowOps
from .cluster import cluster_client, is_dask_array
from .data import as_rows, check_chunks, cluster_memory, like_rows, warn_small_chunks

if TYPE_CHECKING:
    from cvx_lifted.losses import OutputHead
    from cvx_lifted.network import LiftedNetwork

__all__ = ["DaskBCDSolver"]

#: Fraction of the cluster's memory the inputs may take and still be kept in memory.
PERSIST_FRACTION = 0.5
#: Fraction of a worker's memory limit one task's working set may take.
TASK_FRACTION = 0.5


def _step_value(*chunks: Any, step: Any, out_dtype: Any, **consts: Any) -> Any:
    return np.asarray(step(*chunks, **consts).value, dtype=out_dtype)


def _forward_chunk(X: Any, *, act: Any, W: Any, b: Any, out_dtype: Any) -> Any:
    return np.asarray(act.act(X @ W.T + b), dtype=out_dtype)


def _objective_chunk(*arrays: Any, network: Any, image: bool) -> dict[str, float]:
    """Per-chunk sums of the objective's row terms (the network's terms times the chunk's rows).

    With ``image``, the first array is the first layer's image, kept by its weight step.
    """
    U0, arrays = (arrays[0], arrays[1:]) if image else (None, arrays)
    Xs, Y = list(arrays[:-1]), arrays[-1]
    terms = network.objective_terms(Xs, Y, None if U0 is None else {0: U0})
    m = Xs[0].shape[0]
    return {k: v * m for k, v in terms.items() if k not in ("penalty", "total")}


def _bad_chunk(X: Any, Y: Any, *, head: OutputHead) -> dict[str, int]:
    """Count a chunk with a NaN or infinity in ``X`` or ``Y``, or with targets ``head`` refuses."""
    bad = {"X": int(not np.all(np.isfinite(X))), "Y": int(not np.all(np.isfinite(Y))), "rows": 0}
    if not bad["Y"]:
        try:
            head.check_targets(Y, warn=False)  # the range is checked on the client
        except ValueError:
            bad["rows"] = 1
    return bad


class DaskBCDSolver(BCDSolver):
    """Block-coordinate descent on row-chunked Dask arrays (see the module docstring).

    Parameters
    ----------
    network : LiftedNetwork
        The network to train (weights updated in place).
    scheduler : str or distributed.Client, optional
        Where to run: a scheduler address, a client, or (default) the active client, else a
        local cluster of worker processes started for the fit
        (:func:`~cvx_lifted.distributed.cluster.cluster_client`).
    persist : {"auto", True, False}, default="auto"
        Keep ``X`` and ``Y`` in the workers' memory (``"auto"``: when they take at most half of
        the cluster's memory, :func:`~cvx_lifted.distributed.data.cluster_memory`). Otherwise
        every pass reads the chunks from their source (zarr, ``.npy`` memory maps): training out
        of core.
    **options
        As for :class:`~cvx_lifted.bcd.BCDSolver` (``max_iter``, ``tol``, ``callback``, ...).
        ``validation`` data are scored in memory.

    Attributes
    ----------
    communication : list of dict
        Per sweep: ``rounds`` (reductions), ``maps``, ``bytes_received`` and ``bytes_sent`` by
        the client (also in ``history.residuals`` as ``dask.<name>``).
    """

    def __init__(
        self,
        network: LiftedNetwork,
        *,
        scheduler: Any = None,
        persist: bool | str = "auto",
        **options: Any,
    ) -> None:
        if options.get("backend", "numpy") == "cvxpy":
            raise ValueError(
                "backend='cvxpy' cannot run on Dask arrays: the Dask path runs the fast NumPy "
                "paths (backend='numpy' or 'auto')."
            )
        super().__init__(network, **options)
        compiled = [block for block, path in self.paths.items() if path != "numpy"]
        if compiled:
            zero = [b for b in compiled if b[0] == "W" and not network.rho[int(b[1:])] > 0]
            why = (
                f"penalty={network.penalty!r}: fast weight steps need 'l2'"
                if network.penalty != "l2" and any(b[0] == "W" for b in compiled)
                else f"rho = 0 for {zero}: fast weight steps need rho > 0, e.g. 1e-8"
                if zero
                else f"activations {[a.name for a in network.activations]}, output "
                f"{network.head.name!r}; cvx_lifted.paths lists those with fast paths"
            )
            raise ValueError(
                f"block(s) {compiled} of this network have no fast path ({why}), and the Dask "
                "path runs fast paths only. Train it in memory (numpy arrays), or change that."
            )
        if persist not in ("auto", True, False):
            raise ValueError(f"persist must be 'auto', True or False, got {persist!r}.")
        self.scheduler = scheduler
        self.persist = persist
        self.row_ops: DaskRowOps = DaskRowOps()
        self.communication: list[dict[str, float]] = []

    # ------------------------------------------------------------------ rows on the cluster
    def _preactivation(self, layer: int, X: Any) -> Any:
        net = self.network
        W, b = net.weights[layer], net.biases[layer]
        return self.row_ops.map(
            image_chunk, X, Wt=W.T.astype(X.dtype), b=b.astype(X.dtype), cols=W.shape[0],
            dtype=X.dtype, keep=False,
        )  # fmt: skip

    def _map_rows(self, step: Any, *arrays: Any, **consts: Any) -> tuple[Any, dict[str, float]]:
        dtype = self.network.dtype
        out = self.row_ops.map(
            _step_value, *arrays, step=step, out_dtype=dtype, cols=arrays[0].shape[1],
            dtype=dtype, **consts,
        )  # fmt: skip
        return out, {}

    def _objective(self, Xs: list[Any], Y: Any) -> dict[str, float]:
        net = self.network
        r0 = self._ridge0
        if r0 is not None and r0.X is Xs[0]:  # the image the weight step kept: no product
            U0 = r0.image(net.weights[0], net.biases[0])
            sums = self.row_ops.sum(_objective_chunk, U0, *Xs, Y, network=net, image=True)
        else:
            sums = self.row_ops.sum(_objective_chunk, *Xs, Y, network=net, image=False)
        m = Xs[0].shape[0]
        terms = {k: float(v) / m for k, v in sums.items()}
        terms["penalty"] = net.penalty_total()
        terms["total"] = float(sum(terms.values()))
        return terms

    @staticmethod
    def _finite(arr: Any, block: str) -> Any:
        if is_dask_array(arr):  # checked by the sweep's objective, which a NaN makes NaN
            return arr
        return BCDSolver._finite(arr, block)

    def initial_states(self, X0: Any) -> list[Any]:
        """Return the states of a forward pass, chunk by chunk (persisted on the workers)."""
        net = self.network
        Xs = [X0]
        layers = list(enumerate(net.activations))
        if net.head.has_state:
            assert net.head.activation is not None
            layers.append((net.n_hidden, net.head.activation))
        for layer, act in layers:
            W, b = net.weights[layer], net.biases[layer]
            Xs.append(
                self.row_ops.map(
                    _forward_chunk,
                    Xs[-1],
                    act=act,
                    W=W,
                    b=b,
                    out_dtype=net.dtype,
                    cols=W.shape[0],
                    dtype=net.dtype,
                )  # fmt: skip
            )
        return Xs

    # ------------------------------------------------------------------ data
    def _validate(self, X: ArrayLike, Y: ArrayLike) -> tuple[Any, Any]:
        net = self.network
        X0 = as_rows(X, "X", n_features=net.layer_sizes[0], dtype=net.dtype)
        Ymat = like_rows(Y, X0, "Y", n_columns=net.layer_sizes[-1], dtype=net.dtype)
        limits = check_chunks(X0, net.layer_sizes, TASK_FRACTION)
        warn_small_chunks(X0, net.layer_sizes, TASK_FRACTION, limits)
        persist = self.persist
        if persist == "auto":
            persist = X0.nbytes + Ymat.nbytes <= PERSIST_FRACTION * cluster_memory()
        self.row_ops.persist_inputs = bool(persist)
        if persist:
            X0, Ymat = X0.persist(), Ymat.persist()
        # chunk i of every array on one worker, the chunks spread evenly, for the whole fit
        X0, Ymat = self.row_ops.place(X0, Ymat)
        bad = self.row_ops.sum(_bad_chunk, X0, Ymat, head=net.head)
        problems = [
            f"{name} holds NaN or infinity in {count} row chunk(s)"
            for name, count in (("X", bad["X"]), ("Y", bad["Y"]))
            if count
        ]
        if bad["rows"]:
            problems.append(
                f"Y has rows that are not one-hot or probability rows (non-negative, summing to 1) "
                f"for output {net.head.name!r} in {bad['rows']} row chunk(s)"
            )
        if problems:
            raise ValueError("; ".join(problems) + ". Clean them before training.")
        if not net.head.classification and net.head.output_range() is not None:
            import dask

            low, high = dask.compute(Ymat.min(), Ymat.max())
            net.head.warn_outside_range(float(low), float(high))
        return X0, Ymat

    # ------------------------------------------------------------------ driver
    def update(self, state: BCDState) -> BCDState:
        """Run one sweep (see :meth:`BCDSolver.update`) and record its communication."""
        before = self.row_ops.count.as_dict()
        super().update(state)
        after = self.row_ops.count.as_dict()
        sweep = {k: after[k] - before[k] for k in after}
        self.communication.append(sweep)
        state.history.residuals[-1].update({f"dask.{k}": v for k, v in sweep.items()})
        return state

    def run(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
    ) -> BCDResult:
        """Train on row-chunked Dask arrays (see :meth:`BCDSolver.run`).

        The returned states are Dask arrays held by the cluster; when the cluster was started for
        this fit it is closed at the end, and the states are not returned (an empty list).

        Parameters
        ----------
        X : dask.array.Array, shape (m, n_inputs)
            Inputs, chunked along rows only (one chunk spanning the columns).
        Y : dask.array.Array or array_like, shape (m, n_outputs)
            Targets; a NumPy array is chunked like ``X``.
        random_state : int or numpy.random.Generator, optional
            Seed of the initialisation.
        warm_start : bool, default=False
            Start from the current weights.

        Returns
        -------
        BCDResult
        """
        with cluster_client(self.scheduler) as (client, owned):
            self.row_ops = DaskRowOps()
            self.communication = []
            with threads.training_threads(self.blas_threads):  # the client's small solves
                with client.as_current():
                    state = self.init(X, Y, random_state=random_state, warm_start=warm_start)
                    result = self._loop(state)
            if owned:
                result.states = []
        paths.warn_unconverged_states(result.history)
        return result
