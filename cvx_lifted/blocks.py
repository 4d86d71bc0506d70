# SPDX-License-Identifier: Apache-2.0
r"""The blocks of lifted training as compiled CVXPY problems whose size is linear in the data.

These are the generic ("cvxpy") path of :mod:`cvx_lifted.bcd`: every activation with a convex
program trains through them, including user-declared ones. Each block is written so that no
data matrix is a :class:`cvxpy.Parameter` multiplying a :class:`cvxpy.Variable`: DPP
canonicalisation of such a product builds a parameter tensor with about
:math:`(\text{rows}\cdot p)\cdot(q\cdot p)` entries (135 GiB for a 1,347 × 64 → 100 weight step).
Instead, whatever stays fixed while a block is re-solved is a constant of the problem, and only
what changes between re-solves is a parameter of the shape it has:

==============  ============================================  ======================================
block           constants (compiled once per sweep)           parameters (re-solved)
==============  ============================================  ======================================
weight step     the layer's input :math:`X` (m × p)           one target column :math:`t_j` (m):
(elementwise)                                                 one small problem per output unit
weight step     :math:`X`                                     the targets :math:`T` (m × q), solved
(otherwise)                                                   once
state step      the next layer's :math:`W, b`                 :math:`U, T` for a batch of rows
output step     —                                             :math:`U, Y` for a batch of rows
==============  ============================================  ======================================

The weight step of an elementwise divergence separates over the output units because
:math:`D(XW^\top + 1b^\top, T) = \sum_j D(Xw_j + b_j, t_j)` and the ridge and ℓ1 penalties are
sums over rows of :math:`W`. The input of layer 0 never changes, so its problem is compiled once
per fit; the others are rebuilt once per sweep (the states moved), which costs one
canonicalisation with memory linear in :math:`m p`. :func:`estimate_block_bytes` predicts that
memory before anything is built, and :func:`check_block_memory` refuses, with the estimate and what
to do instead, a block that would not fit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cvxpy as cp
import numpy as np
from numpy.typing import NDArray

from cvx_lifted.activations import Activation
from cvx_lifted.compile import Accuracy, CompiledProblem
from cvx_lifted.dcp import HOIST_MIN_SIZE, drop_constant_terms
from cvx_lifted.exceptions import BlockTooLargeError
from cvx_lifted.separable import TemplateUnavailable, row_separable, separable
from cvx_lifted.separable_blocks import TemplateStateStep, TemplateWeightStep

__all__ = [
    "output_step_problem",
    "state_step_problem",
    "BYTES_PER_ENTRY",
    "check_block_memory",
    "column_weight_problem",
    "estimate_block_bytes",
    "memory_budget",
    "separable_weight_step",
    "state_problem",
    "whole_weight_problem",
]

FloatArray = NDArray[np.floating[Any]]

BYTES_PER_ENTRY = {"qp": 450, "lp": 450, "exp": 3000, "conic": 3000}
"""Peak bytes per nonzero of a compiled problem's data, CVXPY's canonicalisation included.

Measured with tracemalloc on compiled per-unit weight steps of 3,000-12,000 rows x 20 inputs:
about 450 bytes per entry of the input for QPs and LPs (``leaky_relu``; ``sign`` and
``relu_l1`` through Clarabel); exponential cones add a term quadratic in the parameter size
(see :func:`estimate_block_bytes`)."""

BASE_BYTES = 48 * 2**20
"""Fixed cost of canonicalising any problem (CVXPY's own tables), measured at 5-10 MB."""


TEMPLATE_BYTES_PER_ENTRY = 400
"""Peak bytes per data entry of a block assembled from templates (:mod:`cvx_lifted.separable`),
solver workspace included: 50x the 8 bytes of the entry. Measured on weight steps of
3,000-12,000 rows x 20 inputs: 2-8x in Python (tracemalloc; 18x with OSQP, whose workspace
Python's allocator holds), 21-35x of peak resident memory with the solvers' own factorisations
(OSQP, Clarabel; ECOS on exponential cones)."""

TEMPLATE_BASE_BYTES = 16 * 2**20
"""Fixed cost of a template block: CVXPY's canonicalisation of the one-element problems."""


def memory_budget() -> int:
    """Bytes a single compiled block may use: half of the machine's physical memory.

    ``CVX_LIFTED_BLOCK_MEMORY`` (bytes) overrides it.
    """
    env = os.environ.get("CVX_LIFTED_BLOCK_MEMORY")
    if env:
        return int(float(env))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 * 2**30
    return int(total // 2)


def estimate_block_bytes(kind: str, *, rows: int, n_in: int, n_out: int, cone: str = "qp") -> int:
    """Predict the peak memory of compiling one block (see :data:`BYTES_PER_ENTRY`).

    Parameters
    ----------
    kind : str
        ``"column_weight"``, ``"whole_weight"``, ``"state"``, ``"output"``,
        ``"template_weight"`` or ``"template_state"``. Which block: a per-output-unit weight
        step (constant ``rows × n_in`` input), a whole weight step (the same input acting on
        all ``n_out`` units), a state step for a batch of ``rows`` rows (constant
        ``n_out × n_in`` next-layer weights) or an output step;
        the ``template_`` kinds are the per-unit weight step and the state step assembled from
        one-element templates (:mod:`cvx_lifted.separable`).
    rows, n_in, n_out : int
        Problem size.
    cone : {"qp", "lp", "exp", "conic"}, default="qp"
        The cone class of the divergence (``Activation.cone``).

    Returns
    -------
    int
        Bytes.
    """
    rows, n_in, n_out = int(rows), int(n_in), int(n_out)
    if kind == "template_weight":  # X held once, a few entries per row for the templates
        return TEMPLATE_BASE_BYTES + TEMPLATE_BYTES_PER_ENTRY * rows * (n_in + 8)
    if kind == "template_state":  # one row at a time: W held once, whatever the batch
        return TEMPLATE_BASE_BYTES + TEMPLATE_BYTES_PER_ENTRY * (n_out * n_in + 8 * (n_in + n_out))
    if kind == "column_weight":
        nnz, n_param = rows * (n_in + 4), rows
    elif kind == "whole_weight":
        nnz, n_param = rows * n_out * (n_in + 4), rows * n_out
    elif kind == "state":
        nnz, n_param = rows * (n_out * (n_in + 2) + 4 * n_in), rows * (n_in + n_out)
    elif kind == "output":
        nnz, n_param = rows * n_out * 8, 2 * rows * n_out
    else:
        raise ValueError(f"unknown block kind {kind!r}.")
    linear = BYTES_PER_ENTRY.get(cone, BYTES_PER_ENTRY["conic"]) * nnz
    if cone in ("qp", "lp"):
        # products with parameters below HOIST_MIN_SIZE keep a dense square intermediate
        quadratic = 16 * min(n_param, HOIST_MIN_SIZE) ** 2
    else:
        # exponential and other cones: CVXPY's canonicalisation of parametrised cone
        # constraints grows with the square of the parameter size (measured 96 bytes x n²)
        quadratic = 100 * n_param**2
    return BASE_BYTES + linear + quadratic


def check_block_memory(
    kind: str, what: str, *, rows: int, n_in: int, n_out: int, cone: str = "qp"
) -> int:
    """Refuse a compiled block whose estimated memory exceeds :func:`memory_budget`.

    Parameters
    ----------
    kind : {"column_weight", "whole_weight", "state", "output"}
        Which block, as in :func:`estimate_block_bytes`.
    what : str
        The block's name in the error message, e.g. ``"state step"``.
    rows, n_in, n_out : int
        Problem size, as in :func:`estimate_block_bytes`.
    cone : {"qp", "lp", "exp", "conic"}, default="qp"
        The cone class of the divergence.

    Returns
    -------
    int
        The estimate in bytes, when it fits.

    Raises
    ------
    BlockTooLargeError
        With the estimate, the budget and what to do instead.
    """
    need = estimate_block_bytes(kind, rows=rows, n_in=n_in, n_out=n_out, cone=cone)
    budget = memory_budget()
    if need > budget:
        raise BlockTooLargeError(
            f"the compiled {what} would need about {need / 2**30:.1f} GiB ({rows} rows x {n_in} "
            f"inputs x {n_out} outputs) and the budget is {budget / 2**30:.1f} GiB. Use an "
            "activation with a fast NumPy path (every box activation and every Fenchel-Young "
            "activation, custom ones declared with fenchel_young=...), fewer rows, a smaller "
            "batch_size for state steps, or raise the budget with the environment variable "
            "CVX_LIFTED_BLOCK_MEMORY (bytes)."
        )
    return need


def separable_weight_step(activation: Activation | None, penalty: Any) -> bool:
    """Whether the weight step splits into one problem per output unit."""
    return activation is not None and activation.elementwise and penalty in ("l2", "l1")


def _penalty(w: cp.Expression, penalty: Any) -> cp.Expression:
    expr: cp.Expression
    if penalty == "l2":
        expr = 0.5 * cp.sum_squares(w)
    elif penalty == "l1":
        expr = cp.sum(cp.abs(w))
    else:
        expr = penalty(w)
    return expr


def column_weight_problem(
    activation: Activation,
    X: FloatArray,
    lam: float,
    rho: float,
    *,
    penalty: Any = "l2",
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "weight step",
    template: bool = True,
) -> CompiledProblem:
    r"""Compile the weight step of one output unit with the input as a constant.

    .. math::
        \min_{w, b}\ \frac{\lambda}{m} D(Xw + b\mathbf 1, t) + \rho\,\pi(w)

    with :math:`\pi = \tfrac12\|\cdot\|^2` (``"l2"``) or :math:`\|\cdot\|_1` (``"l1"``);
    parameter ``t`` (shape ``(m, 1)``, one column of the next states); variables ``w`` (shape
    ``(p, 1)``) and ``b`` (scalar). Re-solving for each column reuses the canonicalisation (and
    OSQP's factorisation: only vectors change).

    Parameters
    ----------
    activation : Activation
        An elementwise activation of the layer.
    X : numpy.ndarray, shape (m, p)
        The layer's input (a constant of the problem).
    lam, rho : float
        Weights of the divergence and the penalty.
    penalty : {"l2", "l1"}, default="l2"
    accuracy : {"default", "tight"}
    solvers : sequence of str, optional
    what : str
        Name used in errors.
    template : bool, default=True
        Assemble the block from the divergence's one-element template when it is elementwise
        (:class:`~cvx_lifted.separable.TemplateWeightStep`: memory linear in the data, and
        :meth:`~cvx_lifted.separable.TemplateWeightStep.solve_columns` for all units at once).
        ``False``, or a divergence that does not split, canonicalises the whole block with
        CVXPY.

    Returns
    -------
    CompiledProblem
        Parameter ``t``; variables ``w``, ``b``.
    """
    m, p = X.shape
    if template and penalty in ("l2", "l1") and separable(activation):
        check_block_memory("template_weight", what, rows=m, n_in=p, n_out=1)
        try:
            return TemplateWeightStep(
                activation, X, lam, rho, penalty=penalty, accuracy=accuracy, solvers=solvers,
                what=what,
            )  # fmt: skip
        except TemplateUnavailable:
            pass  # CVXPY's canonicalisation of the whole block, below
    check_block_memory("column_weight", what, rows=m, n_in=p, n_out=1, cone=activation.cone)
    t = cp.Parameter((m, 1), name="t")
    w = cp.Variable((p, 1), name="w")
    b = cp.Variable(name="b")
    # the pre-activation as its own variable: the input enters the solver's matrix once, in one
    # equality block, instead of once per term of the divergence and of the domain (measured:
    # Clarabel re-solves ~2x faster for relu_l1, sign and leaky_relu)
    v = cp.Variable((m, 1), name="v")
    objective = float(lam) / m * drop_constant_terms(activation.divergence(v, t))
    if rho > 0:
        objective = objective + float(rho) * _penalty(w, penalty)
    return CompiledProblem(
        objective,
        [v == np.asarray(X, dtype=np.float64) @ w + b, *activation.domain(v, t)],
        {"t": t},
        {"w": w, "b": b},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )


def whole_weight_problem(
    activation: Activation | None,
    X: FloatArray,
    n_out: int,
    lam: float,
    rho: float,
    *,
    penalty: Any = "l2",
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "weight step",
) -> CompiledProblem:
    r"""Compile a weight step that does not split by output unit, with the input as a constant.

    .. math::
        \min_{W, b}\ \frac{\lambda}{m} D(XW^\top + 1b^\top, T) + \rho\,\pi(W)

    (the softmax cross-entropy, weight :math:`1/m`, when ``activation`` is ``None``); parameter
    ``T`` (m × q); variables ``W``, ``b``. Used for non-elementwise divergences, the softmax head
    and penalties that do not split by rows of :math:`W`.
    """
    m, p = X.shape
    q = int(n_out)
    cone = "exp" if activation is None else activation.cone
    check_block_memory("whole_weight", what, rows=m, n_in=p, n_out=q, cone=cone)
    softmax = activation is None
    T = cp.Parameter((m, q), name="T", nonneg=softmax)
    W = cp.Variable((q, p), name="W")
    b = cp.Variable(q, name="b")
    V = np.asarray(X, dtype=np.float64) @ W.T + np.ones((m, 1)) @ cp.reshape(b, (1, q), order="C")
    constraints: list[cp.Constraint] = []
    if softmax:
        data = cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(T, V))
        weight = 1.0 / m
    else:
        assert activation is not None
        data = drop_constant_terms(activation.divergence(V, T))
        constraints = activation.domain(V, T)
        weight = float(lam) / m
    objective = weight * data
    if rho > 0:
        objective = objective + float(rho) * _penalty(W, penalty)
    return CompiledProblem(
        objective,
        constraints,
        {"T": T},
        {"W": W, "b": b},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )


def _state_terms(
    previous: Activation,
    following: Activation | None,
    U: cp.Expression,
    Z: cp.Expression,
    V: cp.Expression,
    T: cp.Expression,
    lam_prev: float,
    lam_next: float,
) -> tuple[cp.Expression, list[cp.Constraint]]:
    """Objective and domains of a state step, the next pre-activation ``V`` given."""
    constraints = list(previous.domain(U, Z))
    objective = float(lam_prev) * drop_constant_terms(previous.divergence(U, Z))
    if following is None:  # the softmax head's cross-entropy, weight one
        objective = objective + cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(T, V))
    else:
        objective = objective + float(lam_next) * drop_constant_terms(following.divergence(V, T))
        constraints += following.domain(V, T)
    return objective, constraints


def state_problem(
    previous: Activation,
    following: Activation | None,
    W: FloatArray,
    b: FloatArray,
    batch_size: int,
    lam_prev: float,
    lam_next: float,
    *,
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "state step",
    template: bool = True,
) -> CompiledProblem:
    r"""Compile the state step of a hidden layer for a batch of rows, the next weights constant.

    .. math::
        \min_Z\ \lambda_l D_{l-1}(U, Z) + \lambda_{l+1} D_l(Z W^\top + 1b^\top, T)

    (the softmax cross-entropy against ``T``, weight one, when ``following`` is ``None``),
    subject to both domains; parameters ``U`` (B × p) and ``T`` (B × q); variable ``Z``.
    :math:`W, b` change once per sweep, so the problem is compiled once per sweep and layer and
    re-solved for every batch of rows.

    With ``template`` (the default) and divergences that split by rows (elementwise ones, and
    ``sparsemax`` or the softmax as the next term), the block is assembled from one-element
    templates instead (:class:`~cvx_lifted.separable.TemplateStateStep`): one row per solve,
    any number of rows per call (``batch_size`` is then only a hint), memory linear in
    :math:`W`, and :meth:`~cvx_lifted.separable.TemplateStateStep.solve_rows` for all rows at
    once.
    """
    B = int(batch_size)
    q, p = W.shape
    if template and _template_state(previous, following, p, q):
        check_block_memory("template_state", what, rows=B, n_in=p, n_out=q)
        try:
            return TemplateStateStep(
                previous, following, W, b, lam_prev, lam_next, accuracy=accuracy,
                solvers=solvers, what=what,
            )  # fmt: skip
        except TemplateUnavailable:
            pass  # CVXPY's canonicalisation of the whole batch, below
    cones = {previous.cone, "exp" if following is None else following.cone}
    cone = "qp" if cones <= {"qp", "lp"} else "exp"
    check_block_memory("state", what, rows=B, n_in=p, n_out=q, cone=cone)
    softmax = following is None
    U = cp.Parameter((B, p), name="U")
    T = cp.Parameter((B, q), name="T", nonneg=softmax)
    Z = cp.Variable((B, p), name="Z")
    V = Z @ np.asarray(W, dtype=np.float64).T + np.ones((B, 1)) @ np.asarray(
        b, dtype=np.float64
    ).reshape(1, q)
    objective, constraints = _state_terms(previous, following, U, Z, V, T, lam_prev, lam_next)
    return CompiledProblem(
        objective,
        constraints,
        {"U": U, "T": T},
        {"Z": Z},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )


def _template_state(previous: Activation, following: Activation | None, p: int, q: int) -> bool:
    """Whether a state step is assembled from templates (both divergences split by rows)."""
    if not (separable(previous) or row_separable(previous, p)):
        return False
    return following is None or separable(following) or row_separable(following, q)


# ------------------------------------------------------------------------------------------
# Blocks with the data as parameters: one problem re-solved for any weights and rows (small
# problems, teaching and benchmarks; training uses the builders above).
#
# Products of parameters with the divergence (e.g. the bilinear u*z of Fenchel--Young
# divergences) are not DPP when both factors depend on parameters, so the affine map of the next
# layer enters through an auxiliary variable V with the DPP constraint V == Z @ W.T + 1 b^T
# (parameter @ variable). The divergence is then always evaluated with one argument a
# variable and the other a parameter, which is DPP for every DPP-in-u divergence. With W a
# parameter the canonicalisation grows with (rows x p) x (q x p): keep these for small blocks.
# ------------------------------------------------------------------------------------------
def _affine(X: Any, W: Any, b: Any, m: int) -> cp.Expression:
    expr: cp.Expression = X @ W.T + np.ones((m, 1)) @ cp.reshape(b, (1, b.shape[0]), order="C")
    return expr


def state_step_problem(
    previous: Activation,
    following: Activation | None,
    batch_size: int,
    width: int,
    next_width: int,
    lam_prev: float,
    lam_next: float,
    *,
    softmax: bool = False,
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "state step",
) -> CompiledProblem:
    r"""Compile the state step of one hidden layer for a batch of rows (generic path).

    .. math::
        \min_Z\ \lambda_l D_{l-1}(U, Z) + \lambda_{l+1} D_l(Z W^\top + 1b^\top, T)

    (the second term is the softmax cross-entropy against ``T`` when ``softmax``, with weight
    one), subject to both domains; parameters ``U`` (this layer's pre-activation), ``W``, ``b``
    (next layer) and ``T`` (next state or targets).

    Parameters
    ----------
    previous : Activation
        Activation whose divergence ties ``U`` to ``Z``.
    following : Activation or None
        Activation of the next layer (``None`` with ``softmax``).
    batch_size, width, next_width : int
        Rows per solve, width of ``Z``, width of the next state.
    lam_prev, lam_next : float
        Weights of the two terms.
    softmax : bool, default=False
        The next term is the softmax cross-entropy (last hidden layer of ``softmax_xent``).
    accuracy : {"default", "tight"}
    solvers : sequence of str, optional
    what : str
        Name used in errors.

    Returns
    -------
    CompiledProblem
        Parameters ``U``, ``W``, ``b``, ``T``; variable ``Z``.
    """
    B = int(batch_size)
    U = cp.Parameter((B, width), name="U")
    W = cp.Parameter((next_width, width), name="W")
    b = cp.Parameter(next_width, name="b")
    T = cp.Parameter((B, next_width), name="T", nonneg=softmax)
    Z = cp.Variable((B, width), name="Z")
    V = cp.Variable((B, next_width), name="V")
    objective, constraints = _state_terms(previous, following, U, Z, V, T, lam_prev, lam_next)
    constraints.insert(0, V == _affine(Z, W, b, B))
    return CompiledProblem(
        objective,
        constraints,
        {"U": U, "W": W, "b": b, "T": T},
        {"Z": Z},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )


def output_step_problem(
    head: Any,
    batch_size: int,
    width: int,
    lam: float,
    *,
    onehot: bool = False,
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "output step",
) -> CompiledProblem:
    r"""Compile the output-state step for a batch of rows (generic path).

    .. math:: \min_Z\ \mathcal L(Y, Z) + \lambda D_L(U, Z)

    subject to the output activation's domain; parameters ``U`` and ``Y`` (non-negative for
    classification heads).

    Parameters
    ----------
    head : OutputHead
        A head with an output state.
    batch_size, width : int
        Rows per solve and output width.
    lam : float
        Weight of the divergence.
    onehot : bool, default=False
        Use the head's cheaper loss form, exact when every row of ``Y`` is one-hot.
    accuracy : {"default", "tight"}
    solvers : sequence of str, optional
    what : str
        Name used in errors.

    Returns
    -------
    CompiledProblem
        Parameters ``U``, ``Y``; variable ``Z``.
    """
    B = int(batch_size)
    U = cp.Parameter((B, width), name="U")
    Y = cp.Parameter((B, width), name="Y", nonneg=bool(head.classification))
    Z = cp.Variable((B, width), name="Z")
    act = head.activation
    objective = head.loss_expr(Y, Z, onehot=onehot) + float(lam) * drop_constant_terms(
        act.divergence(U, Z)
    )
    return CompiledProblem(
        objective,
        act.domain(U, Z),
        {"U": U, "Y": Y},
        {"Z": Z},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )
