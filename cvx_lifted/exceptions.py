# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by cvx_lifted.

Every error says what was wrong *and* what to do about it. They subclass the built-in exception a
user would already catch (``ValueError``, ``RuntimeError``), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "BlockTooLargeError",
    "CvxLiftedError",
    "NonConvexError",
    "NotDPPError",
    "NotRepresentableError",
    "SolverFailedError",
    "ModelFileError",
]


class CvxLiftedError(Exception):
    """Base class of every error raised on purpose by cvx_lifted."""


class NonConvexError(CvxLiftedError, ValueError):
    """A divergence or problem is not convex (DCP) in the variable being optimised."""


class NotDPPError(CvxLiftedError, ValueError):
    """A problem is DCP but not DPP, so it cannot be compiled once and re-solved."""


class NotRepresentableError(CvxLiftedError, NotImplementedError):
    """An activation has no convex-program (DCP) form, only a closed form."""


class SolverFailedError(CvxLiftedError, RuntimeError):
    """Every solver tried on a problem failed or returned an unusable status.

    Attributes
    ----------
    attempts : list of tuple of str
        ``(solver, status or error message)`` for each solver tried, in order.
    """

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])


class BlockTooLargeError(CvxLiftedError, MemoryError):
    """A compiled block would need more memory than the budget; nothing was allocated."""


class ModelFileError(CvxLiftedError, ValueError):
    """A saved model file is missing, truncated, tampered with, or from a future version."""
