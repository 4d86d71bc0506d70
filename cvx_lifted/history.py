# SPDX-License-Identifier: Apache-2.0
"""What a block-coordinate descent run records: :class:`BCDHistory` and :class:`BCDResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = ["BCDHistory", "BCDResult"]

FloatArray = NDArray[np.floating[Any]]


@dataclass
class BCDHistory:
    """What happened during training, sweep by sweep (index 0 is the initial point).

    Attributes
    ----------
    objective : list of float
        Total objective after each sweep.
    terms : list of dict
        Each term of the objective (``loss``, ``divergence_<l>``, ``penalty``, ``total``).
    seconds : list of dict
        Wall time of each block (``W<l>``, ``X<l>``, ``output``), of the objective evaluated
        after the sweep (``objective``) and of the whole sweep (``sweep``, the objective
        included). A mini-batch epoch records the state and output steps of all its batches
        (``states``), their weight steps (``weights``), the epoch without the objective
        (``epoch``) and the objective after it (``objective``).
    residuals : list of dict
        Per block: iterations and final residual of the inner solver (fast path).
    validation : list of float
        Validation score after each sweep (if a validation set was given).
    blocks : list of tuple
        ``(sweep, block, objective after the block)`` when ``track_blocks`` is on.
    paths : dict of str to str
        Which path solved each block: ``"numpy"`` or ``"cvxpy"``.
    rejected : list of tuple
        ``(sweep, block, objective before, objective after the rejected answer)`` for every
        compiled block whose answer raised the objective even after a second, tighter solve with
        another solver order; the previous iterate was kept.
    retried : list of tuple
        ``(sweep, block, objective before, objective after the first answer)`` for compiled blocks
        whose first answer raised the objective and whose second attempt was accepted.
    increases : list of int
        Sweeps after which the objective was higher than before (never counted as convergence).
    """

    objective: list[float] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    seconds: list[dict[str, float]] = field(default_factory=list)
    residuals: list[dict[str, float]] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    blocks: list[tuple[int, str, float]] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    rejected: list[tuple[int, str, float, float]] = field(default_factory=list)
    retried: list[tuple[int, str, float, float]] = field(default_factory=list)
    increases: list[int] = field(default_factory=list)

    def rising(self) -> bool:
        """Whether the objective rose in most sweeps (at least 4) and ends 5 % above its lowest.

        Full-batch BCD never raises it; for mini-batch BCD, a stochastic method, this says that
        training is not settling (too small a ``prox``, unscaled targets, a deep network).
        """
        obj = self.objective
        n = len(obj) - 1
        return bool(
            n >= 4
            and 2 * len(self.increases) > n
            and obj[-1] > min(obj[1:]) + 0.05 * abs(min(obj[1:]))
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the history as plain lists and dicts (JSON-friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BCDHistory:
        """Rebuild a history from :meth:`as_dict` output (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in known}
        for key in ("blocks", "rejected", "retried"):
            if key in kwargs:
                kwargs[key] = [tuple(b) if isinstance(b, list) else b for b in kwargs[key]]
        return cls(**kwargs)


@dataclass
class BCDResult:
    """Outcome of :meth:`BCDSolver.run`.

    Attributes
    ----------
    network : LiftedNetwork
        The trained network (weights updated in place).
    states : list of numpy.ndarray
        Final states ``[X_1, ..., X_L]`` (plus the output state when the head has one).
    history : BCDHistory
        Objective, timings and residuals per sweep.
    n_iter : int
        Number of sweeps run.
    converged : bool
        Whether a sweep decreased the objective by less than ``tol`` (relative); a sweep that
        raises it never counts.
    stop_reason : str
        ``"tol"``, ``"max_iter"``, ``"time_limit"`` or ``"callback"``.
    """

    network: LiftedNetwork
    states: list[FloatArray]
    history: BCDHistory
    n_iter: int
    converged: bool
    stop_reason: str

    def __repr__(self) -> str:
        """Summarise (a notebook cell ending in ``net.fit(...)`` shows this, not every array)."""
        objective = self.history.objective
        trend = f", objective {objective[0]:.6g} -> {objective[-1]:.6g}" if objective else ""
        shapes = ", ".join(str(tuple(S.shape)) for S in self.states)
        return (
            f"BCDResult(n_iter={self.n_iter}, converged={self.converged}, "
            f"stop_reason={self.stop_reason!r}{trend}, states [{shapes}], network={self.network!r})"
        )
