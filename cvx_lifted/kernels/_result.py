# SPDX-License-Identifier: Apache-2.0
"""What a kernel returns: the block's answer and how the kernel ended (one type for all).

Every block kernel returns a :class:`StepResult`; nothing changes its return type. ``value`` is
the answer (the states ``Z`` of a state or output step, ``(W, b)`` of a weight step) and
``info`` a dict of what the kernel reports: per-row (or per-column) arrays such as ``n_iter``,
``residual``, ``converged``, ``objective``, and the ``method`` it used. :meth:`StepResult.summary`
reduces that to the worst numbers (the form :mod:`cvx_lifted.paths` hands to the training loop
and its history)::

    result = kernels.state_step(U, W, b, kernels.L2Coupling(T), a=1.0, c=1.0, lo=0.0)
    Z = result.value
    result.info["converged"].all()
    result.summary()  # {"n_iter": 3.0, "residual": 2e-10, "converged": 1.0}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["StepResult", "merge_info", "summarise_info"]

_INFO_KEYS: dict[str, Callable[[Any], Any]] = {
    "n_iter": np.max,
    "residual": np.max,
    "grad_norm": np.max,
    "converged": np.min,
}
"""The numbers a summary keeps, each with the reduction that gives the worst case."""


def summarise_info(info: dict[str, Any] | None) -> dict[str, float]:
    """Summarise a kernel's per-row or per-column info.

    Parameters
    ----------
    info : dict or None
        What a kernel reports (arrays or scalars); keys other than ``n_iter``, ``residual``,
        ``grad_norm`` and ``converged`` are ignored.

    Returns
    -------
    dict of str to float
        The worst iterations, residual and gradient norm, and whether everything converged
        (``converged`` 1.0 or 0.0); keys the kernel does not report, or reports for no row, are
        left out.
    """
    if info is None:
        return {}
    out = {}
    for key, reduce in _INFO_KEYS.items():
        if key in info:
            arr = np.asarray(info[key], dtype=np.float64)
            if arr.size:
                out[key] = float(reduce(arr))
    return out


def merge_info(total: dict[str, float], part: dict[str, float]) -> dict[str, float]:
    """Combine two summaries (e.g. of two chunks of rows) the way :func:`summarise_info` does.

    Parameters
    ----------
    total : dict of str to float
        The summary so far; updated in place.
    part : dict of str to float
        The summary of the next part.

    Returns
    -------
    dict of str to float
        ``total``.
    """
    for key, value in part.items():
        reduce = _INFO_KEYS[key]
        total[key] = float(reduce([total[key], value])) if key in total else value
    return total


@dataclass(frozen=True)
class StepResult:
    """The answer of a block and a report of how its kernel ended.

    Attributes
    ----------
    value : Any
        The answer: the states ``Z`` of a state or output step, ``(W, b)`` of a weight step.
    info : dict of str to Any
        What the kernel reports. Straight from a kernel: per-row (or per-column) arrays such as
        ``n_iter``, ``residual``, ``converged``, ``objective``, ``objective_start``, and the
        ``method`` used (each kernel's docstring lists its keys). From a fast path of
        :mod:`cvx_lifted.paths`: the :meth:`summary` (floats).
    """

    value: Any
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Return the worst numbers of :attr:`info` (see :func:`summarise_info`).

        Returns
        -------
        dict of str to float
            ``n_iter``, ``residual``, ``grad_norm`` (largest) and ``converged`` (1.0 when every
            row or column converged, else 0.0), where the kernel reports them.
        """
        return summarise_info(self.info)

    def summarised(self) -> StepResult:
        """Return the same answer with :attr:`info` replaced by its :meth:`summary`.

        Returns
        -------
        StepResult
        """
        return StepResult(self.value, self.summary())
