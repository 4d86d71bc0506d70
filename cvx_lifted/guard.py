# SPDX-License-Identifier: Apache-2.0
"""The acceptance test of compiled blocks: an answer that raises the objective is not taken.

A solver's "optimal" is not a certificate of descent (OSQP at its default tolerances on
``relu_l1``, for one). :class:`GuardedBlocks` (a part of :class:`~cvx_lifted.bcd.BCDSolver`)
evaluates the objective around every compiled block, solves it again with tight tolerances and
interior-point solvers first when it rose, and keeps the previous iterate when that fails too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cvx_lifted.exceptions import SolverFailedError
from cvx_lifted.history import BCDHistory

__all__ = ["BLOCK_RTOL", "GuardedBlocks"]

FloatArray = NDArray[np.floating[Any]]

#: Relative rise of the objective beyond which a compiled block's answer is not accepted.
BLOCK_RTOL = 1e-9
#: Solver order of the second attempt at a compiled block whose first answer raised the
#: objective (interior point first: OSQP's "optimal" is not a certificate of descent).
_RETRY_SOLVERS = ("CLARABEL", "ECOS", "OSQP", "SCS")
#: Rises of at most this (relative) are the solver's tolerance: rejected without a second solve.
_RETRY_RTOL = 1e-6


class GuardedBlocks:
    """Accept a compiled block's answer only if the lifted objective did not rise.

    A part of :class:`~cvx_lifted.bcd.BCDSolver`, which provides ``network``, ``_objective``,
    ``_retrying`` and ``_wversion``.
    """

    network: Any
    _retrying: bool
    _wversion: dict[int, int]

    def _objective(self, Xs: list[Any], Y: Any) -> dict[str, float]:
        raise NotImplementedError

    def _guarded(
        self,
        block: str,
        sweep: int,
        history: BCDHistory,
        Xs: list[FloatArray],
        Y: FloatArray,
        step: Callable[[], dict[str, float]],
    ) -> dict[str, float]:
        """Run a compiled block and accept its answer only if the objective did not rise.

        A solver's "optimal" is not a certificate of descent (OSQP at its default tolerances on
        ``relu_l1``, for one). When the objective rose by more than :data:`BLOCK_RTOL` (relative),
        the block is solved again with tight tolerances and interior-point solvers first; if that
        answer rises too, the previous iterate is kept and the event recorded in
        ``history.rejected``.
        """
        before = self._objective(Xs, Y)["total"]
        saved = self._save_block(block, Xs)
        info = step()
        after = self._objective(Xs, Y)["total"]
        limit = before + BLOCK_RTOL * max(abs(before), 1e-12)
        if after <= limit:
            return info
        self._restore_block(block, Xs, saved)
        if after - before <= _RETRY_RTOL * max(abs(before), 1e-12):
            # a rise at the solver's tolerance (the block was already at its minimum): a second
            # solve would not find a better point, keep the previous one
            history.rejected.append((sweep, block, before, after))
            return {}
        self._retrying = True
        try:
            info = step()
        except SolverFailedError:
            info = {}
            second = np.inf
        else:
            second = self._objective(Xs, Y)["total"]
        finally:
            self._retrying = False
        if second <= limit:
            history.retried.append((sweep, block, before, after))
            return info
        self._restore_block(block, Xs, saved)
        history.rejected.append((sweep, block, before, min(after, second)))
        return {}

    def _save_block(self, block: str, Xs: list[FloatArray]) -> Any:
        net = self.network
        if block.startswith("W"):
            layer = int(block[1:])
            return net.weights[layer].copy(), net.biases[layer].copy()
        index = net.n_hidden + 1 if block == "output" else int(block[1:])
        return Xs[index].copy()

    def _restore_block(self, block: str, Xs: list[FloatArray], saved: Any) -> None:
        net = self.network
        if block.startswith("W"):
            layer = int(block[1:])
            net.weights[layer], net.biases[layer] = saved[0].copy(), saved[1].copy()
            self._wversion[layer] = self._wversion.get(layer, 0) + 1
        else:
            index = net.n_hidden + 1 if block == "output" else int(block[1:])
            Xs[index] = saved.copy()
