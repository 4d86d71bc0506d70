# SPDX-License-Identifier: Apache-2.0
"""NumPy/SciPy fast paths for the convex blocks of lifted-network training (no CVXPY here)."""

from .ridge import Ridge
from .simplex import (
    AppendixABounds,
    appendix_a_bounds,
    project_simplex,
    simplex_xent_prox,
    xent_bracket,
)

__all__ = [
    "AppendixABounds",
    "Ridge",
    "appendix_a_bounds",
    "project_simplex",
    "simplex_xent_prox",
    "xent_bracket",
]
