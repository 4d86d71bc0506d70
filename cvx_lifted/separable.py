# SPDX-License-Identifier: Apache-2.0
r"""Programs of separable divergences, assembled from a one-element template.

CVXPY's DPP canonicalisation of a block costs memory quadratic in the size of its parameters in
common cases (a parametrised linear term, ``abs`` on the QP path, exponential cones). When the
divergence is a sum of one scalar function over the entries,

.. math:: D(u, z) = \sum_k d(u_k, z_k),

with an elementwise domain, CVXPY only needs to see **one entry**: the problem
:math:`\min_a d(a, c)` (or :math:`d(c, a)`) with a ``(1, 1)`` variable :math:`a` and a ``(1, 1)``
parameter :math:`c` (:class:`Spec`). Its parametrised program, read through
:class:`~cvx_lifted._solver_backends.ProgramMap`, gives the rows, columns and cones of one
element, each entry affine in :math:`c` (:class:`Template`, canonicalised once per process and
solver). :class:`AssembledProgram` replicates them once per element (:class:`Group`), maps the
parameter values of all elements to solver data with one product per template, and splices in
what the template leaves out: the linear map that couples the elements (zero-cone rows first)
and fixed columns such as a weight step's :math:`w` and penalty (:class:`Fixed`):

=============  ==========================================  ====================================
block          variables                                   coupling rows (zero cone)
=============  ==========================================  ====================================
weight step    :math:`w \in \mathbb R^p`, :math:`b`,        :math:`v - Xw - b\mathbf 1 = 0`
(one unit)     :math:`v \in \mathbb R^m`                    (:math:`X` held once)
state step     :math:`z \in \mathbb R^p`,                   :math:`v - Wz - b = 0`
(one row)      :math:`v \in \mathbb R^q`                    (:math:`W` held once)
=============  ==========================================  ====================================

A divergence that couples the entries of a row but not the rows (``sparsemax``, the softmax
cross-entropy of a ``softmax_xent`` head) is a one-row template instead. The result has the
interface of a :class:`~cvx_lifted._solver_backends.ProgramMap`, so the solver adapters of
:mod:`cvx_lifted._solver_backends` take it unchanged; the blocks built on it are in
:mod:`cvx_lifted.separable_blocks`. :func:`separable` and :func:`row_separable` decide, by a
numerical check, whether an activation's divergence splits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from cvx_lifted._solver_backends import (
    FastPathUnavailable,
    ProgramData,
    ProgramMap,
)
from cvx_lifted.activations import Activation
from cvx_lifted.dcp import CANON_BACKEND, drop_constant_terms, problem_class

__all__ = [
    "AssembledProgram",
    "Block",
    "Fixed",
    "Group",
    "Layout",
    "Segment",
    "SparseColumns",
    "Spec",
    "Template",
    "TemplateUnavailable",
    "get_template",
    "matrix_columns",
    "row_separable",
    "separable",
    "spec_class",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class TemplateUnavailable(Exception):
    """The block cannot be built from a template; the caller uses CVXPY's canonicalisation."""


# ------------------------------------------------------------------------------ templates
@dataclass(frozen=True)
class Spec:
    """Which one-element problem a template is.

    ``role`` is "u" (the variable is the divergence's first argument, as in a weight step), "z"
    (its second, as in a state step) or "softmax" (the softmax cross-entropy, ``activation``
    None); ``c_shape`` and ``a_shape`` are the shapes of the parameter and the variable:
    ``(1, 1)`` for an elementwise divergence, one row otherwise.
    """

    role: str
    activation: Activation | None
    c_shape: tuple[int, int]
    a_shape: tuple[int, int]

    def problem(self) -> tuple[cp.Problem, cp.Parameter, cp.Variable]:
        """Return the one-element CVXPY problem, its parameter and its variable.

        Raises
        ------
        TemplateUnavailable
            If the problem is not DCP and DPP.
        """
        a = cp.Variable(self.a_shape, name="a")
        c = cp.Parameter(self.c_shape, name="c", nonneg=self.role == "softmax")
        c.value = np.zeros(self.c_shape)
        act = self.activation
        if act is None:
            objective = cp.sum(cp.log_sum_exp(a, axis=1)) - cp.sum(cp.multiply(c, a))
            constraints: list[cp.Constraint] = []
        elif self.role == "u":
            objective = drop_constant_terms(act.divergence(a, c))
            constraints = list(act.domain(a, c))
        else:
            objective = drop_constant_terms(act.divergence(c, a))
            constraints = list(act.domain(c, a))
        # constraints on the parameter alone are data, as in CompiledProblem
        prob = cp.Problem(cp.Minimize(objective), [k for k in constraints if k.variables()])
        if not prob.is_dcp() or not prob.is_dpp():
            raise TemplateUnavailable("the one-element problem is not DCP and DPP")
        return prob, c, a


@dataclass(frozen=True, eq=False)
class Template:
    """The parametrised program of one element, every entry affine in the parameter ``c``.

    ``*_lin`` (rows x k) and ``*_const`` (rows) give the values ``lin @ c + const``; rows of
    ``A`` and ``b`` are ordered zero, non-negative, second-order, exponential cones.
    """

    n: int
    k: int
    a_cols: IntArray
    n_zero: int
    n_nonneg: int
    soc: tuple[int, ...]
    n_exp: int
    A_rows: IntArray
    A_indptr: IntArray
    A_lin: FloatArray
    A_const: FloatArray
    b_lin: FloatArray
    b_const: FloatArray
    q_lin: FloatArray
    q_const: FloatArray
    d_lin: FloatArray
    d_const: float
    P_rows: IntArray
    P_indptr: IntArray
    P_lin: FloatArray
    P_const: FloatArray
    cls: str

    @property
    def n_rows(self) -> int:
        """Number of rows of the element's program."""
        return self.n_zero + self.n_nonneg + sum(self.soc) + 3 * self.n_exp

    def row_units(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Per row: cone section (0-3), first row of its cone, cone size, offset in its cone.

        Copy ``i`` of row ``t`` lands at ``section start + unit * count + i * size + offset``.
        """
        rows: list[tuple[int, int, int, int]] = []  # (section, unit, size, offset) per row
        rows += [(0, r, 1, 0) for r in range(self.n_zero)]
        rows += [(1, r, 1, 0) for r in range(self.n_nonneg)]
        start = 0
        for s in self.soc:
            rows += [(2, start, s, j) for j in range(s)]
            start += s
        rows += [(3, 3 * e, 3, j) for e in range(self.n_exp) for j in range(3)]
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        return table[:, 0], table[:, 1], table[:, 2], table[:, 3]

    def section_rows(self) -> tuple[int, int, int, int]:
        """Rows of each cone kind: zero, non-negative, second-order, exponential."""
        return (self.n_zero, self.n_nonneg, sum(self.soc), 3 * self.n_exp)


def _split(arr: FloatArray, k: int) -> tuple[FloatArray, FloatArray]:
    """Split the data of theta = [e_1 .. e_k, e_const] into its linear and constant parts."""
    if arr.shape[1] == 1:  # the block reads no parameter
        return np.zeros((arr.shape[0], k)), np.array(arr[:, 0], dtype=np.float64)
    return np.array(arr[:, :k], dtype=np.float64), np.array(arr[:, k], dtype=np.float64)


def _read_template(spec: Spec, solver: str) -> Template:
    prob, c, a = spec.problem()
    cls = problem_class(prob)
    prob.get_problem_data(solver, canon_backend=CANON_BACKEND)
    cache = prob._cache
    if cache.param_prog is None:
        raise FastPathUnavailable("CVXPY kept no parametrised program")
    pm = ProgramMap(cache.param_prog, {"c": c}, {"a": a})
    k = int(c.size)
    theta = np.zeros((pm.n_theta, k + 1))
    for _, col, size in pm.slots:
        theta[col : col + size, :size] = np.eye(size)
    theta[pm.const_col, k] = 1.0
    data = pm.data(theta)
    A_lin, A_const = _split(data.A, k)
    b_lin, b_const = _split(data.b, k)
    qd_lin, qd_const = _split(np.vstack([data.q, data.d]), k)
    if data.P is not None:
        P_lin, P_const = _split(data.P, k)
    else:
        P_lin, P_const = np.zeros((0, k)), np.zeros(0)
    # entries sorted by column, then row (the assembly relies on sorted columns)
    A_cols = np.repeat(np.arange(pm.n), np.diff(pm.A_indptr))
    A_order = np.lexsort((pm.A_indices, A_cols))
    P_order = np.lexsort((pm.P_indices, pm.P_cols))
    P_cols = np.asarray(pm.P_cols, dtype=np.int64)[P_order]
    (_, start, stop, _), *_ = pm.var_slices
    return Template(
        n=pm.n,
        k=k,
        a_cols=np.arange(start, stop, dtype=np.int64),
        n_zero=pm.n_zero,
        n_nonneg=pm.n_nonneg,
        soc=tuple(pm.soc),
        n_exp=pm.n_exp,
        A_rows=np.asarray(pm.A_indices, dtype=np.int64)[A_order],
        A_indptr=np.asarray(pm.A_indptr, dtype=np.int64),
        A_lin=A_lin[A_order],
        A_const=A_const[A_order],
        b_lin=b_lin,
        b_const=b_const,
        q_lin=qd_lin[: pm.n],
        q_const=qd_const[: pm.n],
        d_lin=qd_lin[pm.n],
        d_const=float(qd_const[pm.n]),
        P_rows=np.asarray(pm.P_indices, dtype=np.int64)[P_order],
        P_indptr=np.concatenate([[0], np.cumsum(np.bincount(P_cols, minlength=pm.n))]),
        P_lin=P_lin[P_order],
        P_const=P_const[P_order],
        cls=cls,
    )


_CACHE: OrderedDict[Any, Template | str] = OrderedDict()
_CACHE_SIZE = 256


def get_template(spec: Spec, solver: str) -> Template:
    """Return the template of ``spec`` for ``solver``, canonicalised once per process (LRU).

    Raises
    ------
    FastPathUnavailable
        When CVXPY cannot hand this one-element problem to ``solver`` or its program has a
        feature the assembly does not take; the message says which.
    """
    key: Any = (spec, solver)
    try:
        hit = _CACHE.get(key)
    except TypeError:  # an activation with unhashable parameters: no caching
        key, hit = None, None
    if hit is None:
        try:
            hit = _read_template(spec, solver)
        except (cp.SolverError, FastPathUnavailable, ValueError) as exc:
            hit = f"{solver} cannot take the one-element problem ({type(exc).__name__}: {exc})"
        if key is not None:
            _CACHE[key] = hit
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    elif key is not None:
        _CACHE.move_to_end(key)
    if isinstance(hit, str):
        raise FastPathUnavailable(hit)
    return hit


_CLASSES: dict[Any, str] = {}


def spec_class(spec: Spec) -> str:
    """Return the problem class (``"lp"``, ``"qp"``, ``"exp"``, ``"conic"``) of a template."""
    try:
        hit = _CLASSES.get(spec)
    except TypeError:  # unhashable activation parameters
        return problem_class(spec.problem()[0])
    if hit is None:
        if len(_CLASSES) >= _CACHE_SIZE:
            _CLASSES.clear()
        hit = _CLASSES[spec] = problem_class(spec.problem()[0])
    return hit


# ------------------------------------------------------------------------------ separability
_SEPARABLE: dict[Any, bool] = {}


def _value(expr: cp.Expression) -> float:
    val = expr.value
    return float("nan") if val is None else float(np.sum(val))


def _violations(act: Activation, u: FloatArray, z: FloatArray) -> float:
    total = 0.0
    for con in act.domain(cp.Constant(u), cp.Constant(z)):
        v = con.violation()
        total += float(np.sum(v)) if v is not None else float("nan")
    return total


def _splits_into(act: Activation, U: FloatArray, Z: FloatArray, pieces: list[Any]) -> bool:
    """Whether the divergence and the domain violation at (U, Z) are sums over ``pieces``."""
    full = _value(act.divergence(cp.Constant(U), cp.Constant(Z)))
    parts = sum(_value(act.divergence(cp.Constant(U[s]), cp.Constant(Z[s]))) for s in pieces)
    if not (np.isfinite(full) and np.isclose(full, parts, rtol=1e-9, atol=1e-9)):
        return False
    rng = np.random.default_rng(1)
    Zout = Z + rng.normal(scale=0.7, size=Z.shape)  # points outside the domain too
    full = _violations(act, U, Zout)
    parts = sum(_violations(act, U[s], Zout[s]) for s in pieces)
    return bool(np.isfinite(full) and np.isclose(full, parts, rtol=1e-9, atol=1e-9))


def _probe(act: Activation, rows: int, cols: int) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(0)
    U = rng.normal(scale=1.5, size=(rows, cols))
    Z = np.asarray(act.act(U + 0.3 * rng.normal(size=U.shape)), dtype=np.float64)
    return U, Z


def separable(activation: Activation) -> bool:
    r"""Whether the divergence is :math:`\sum_k d(u_k, z_k)` with an elementwise domain.

    ``activation.elementwise`` is required; the split is then checked numerically at random
    points (divergence values and domain violations entry by entry against the whole), once
    per activation.
    """
    if not (activation.elementwise and activation.has_program):
        return False
    return _cached_check(("elementwise", activation), lambda: _check(activation, 2, 3, True))


def row_separable(activation: Activation, width: int) -> bool:
    """Whether the divergence of ``width``-wide rows is a sum over rows (checked once)."""
    if not activation.has_program:
        return False
    key = ("rows", activation, int(width))
    return _cached_check(key, lambda: _check(activation, 2, int(width), False))


def _cached_check(key: Any, check: Callable[[], bool]) -> bool:
    try:
        hit = _SEPARABLE.get(key)
    except TypeError:
        return check()
    if hit is None:
        if len(_SEPARABLE) >= _CACHE_SIZE:
            _SEPARABLE.clear()
        hit = _SEPARABLE[key] = check()
    return hit


def _check(act: Activation, rows: int, cols: int, entries: bool) -> bool:
    try:
        U, Z = _probe(act, rows, cols)
        if entries:
            if Z.shape != U.shape:
                return False
            pieces: list[Any] = [
                np.s_[i : i + 1, j : j + 1] for i in range(rows) for j in range(cols)
            ]
        else:
            pieces = [np.s_[i : i + 1, :] for i in range(rows)]
        return _splits_into(act, U, Z, pieces)
    except Exception:  # noqa: BLE001 - any failure to evaluate means: not shown to split
        return False


# ------------------------------------------------------------------------------ assembly
@dataclass
class Segment:
    """Entries of a block of columns that have the same number of entries each.

    ``width`` entries per column: row indices ``rows`` and values ``sign * vals``, both
    broadcastable to ``(n_columns, width)``.
    """

    width: int
    rows: ArrayLike
    vals: ArrayLike
    sign: float = 1.0


@dataclass
class Group:
    """Copies of one template in a block.

    ``count`` copies, objective weight ``scale``, parameter values from the block parameter
    ``param`` (``count * k`` entries, copy by copy). Entry ``e`` of the template variable over
    all copies (copy ``e // ka``, variable column ``e % ka`` for a variable of ``ka`` columns)
    has the coupling entries ``cpl_rows[e]`` with values ``cpl_sign * cpl_vals[e]``.
    """

    spec: Spec
    count: int
    scale: float
    param: str
    cpl_rows: ArrayLike
    cpl_vals: ArrayLike
    cpl_sign: float = 1.0


@dataclass
class Fixed:
    """Columns before the templates' (``blocks``) and their objective and row data."""

    blocks: list[Block]
    q: FloatArray
    P_diag: FloatArray
    b_coupling: FloatArray
    b_nonneg: FloatArray
    b_soc: FloatArray


class Layout:
    """Row and column positions of a block.

    Rows: ``n_coupling`` zero rows first, then the groups' rows cone by cone (zero,
    non-negative, second-order, exponential), the fixed non-negative and second-order rows
    after the groups' rows of their cone. Columns: ``n_fixed`` fixed ones, then each group's
    template columns, each repeated ``count`` times.
    """

    def __init__(
        self,
        groups: Sequence[tuple[Group, Template]],
        n_coupling: int,
        n_fixed: int,
        fixed_nonneg: int = 0,
        fixed_soc: Sequence[int] = (),
    ) -> None:
        self.n_coupling, self.n_fixed = int(n_coupling), int(n_fixed)
        sizes = np.array([[r * g.count for r in t.section_rows()] for g, t in groups], np.int64)
        sizes = sizes.reshape(len(groups), 4)
        fixed = np.array([0, fixed_nonneg, sum(fixed_soc), 0], dtype=np.int64)
        totals = sizes.sum(axis=0) + fixed + np.array([n_coupling, 0, 0, 0])
        starts = np.concatenate([[0], np.cumsum(totals)[:-1]])
        # where each group's rows of each cone begin
        offsets = starts + np.array([n_coupling, 0, 0, 0]) + np.cumsum(sizes, axis=0) - sizes
        self.n_zero, self.n_nonneg = int(totals[0]), int(totals[1])
        self.n_exp = int(totals[3]) // 3
        self.m = int(totals.sum())
        self.fixed_nonneg_start = int(starts[1] + sizes[:, 1].sum())
        self.fixed_soc_start = int(starts[2] + sizes[:, 2].sum())
        self.soc: list[int] = []
        self.col_start: list[int] = []
        self.row_base: list[IntArray] = []
        self.row_stride: list[IntArray] = []
        col = self.n_fixed
        for gi, (g, t) in enumerate(groups):
            sec, unit, size, off = t.row_units()
            self.row_base.append(offsets[gi][sec] + unit * g.count + off)
            self.row_stride.append(size)
            self.col_start.append(col)
            col += t.n * g.count
            for s in t.soc:
                self.soc.extend([s] * g.count)
        self.soc.extend(int(s) for s in fixed_soc)
        self.n = col


@dataclass
class SparseColumns:
    """Columns with varying numbers of entries.

    ``counts`` per column; ``write(rows, vals)`` fills the entries of all the columns, in CSC
    order, into the given arrays.
    """

    counts: IntArray
    write: Callable[[NDArray[Any], FloatArray], None]


Block = tuple[int, list[Segment]] | SparseColumns


def _fill(
    blocks: Sequence[Block], itype: Any
) -> tuple[NDArray[Any], NDArray[Any], FloatArray, list[int]]:
    """Write column blocks into one CSC pattern; return indptr, indices, data, block starts."""
    counts = [
        b.counts if isinstance(b, SparseColumns) else np.full(b[0], sum(s.width for s in b[1]))
        for b in blocks
    ]
    indptr = np.concatenate([np.zeros(1, np.int64), np.cumsum(np.concatenate(counts))])
    nnz = int(indptr[-1])
    indices = np.empty(nnz, dtype=itype)
    data = np.empty(nnz)
    starts, at = [], 0
    for block, count in zip(blocks, counts, strict=True):
        starts.append(at)
        size = int(count.sum())
        if isinstance(block, SparseColumns):
            block.write(indices[at : at + size], data[at : at + size])
            at += size
            continue
        ncols, segs = block
        width = size // ncols if ncols else 0
        rows = indices[at : at + size].reshape(ncols, width)
        vals = data[at : at + size].reshape(ncols, width)
        off = 0
        for s in segs:
            rows[:, off : off + s.width] = s.rows
            np.multiply(s.vals, s.sign, out=vals[:, off : off + s.width])
            off += s.width
        at += size
    return indptr.astype(itype), indices, data, starts


def matrix_columns(
    M: FloatArray, sign: float, extra_rows: IntArray, extra_vals: FloatArray
) -> SparseColumns:
    """Return the columns of ``sign * M`` without its zeros (rows from 0), as a block.

    Column ``k`` is followed by the entries ``extra_rows[k]`` with the values ``extra_vals``
    (the same for every column).
    """
    M = np.asarray(M)
    e = extra_rows.shape[1]
    counts = np.count_nonzero(M, axis=0).astype(np.int64) + e

    def write(rows: NDArray[Any], vals: FloatArray) -> None:
        at = 0
        for k in range(M.shape[1]):
            nz = np.flatnonzero(M[:, k])
            n = nz.size
            rows[at : at + n] = nz
            np.multiply(M[nz, k], sign, out=vals[at : at + n])
            rows[at + n : at + n + e] = extra_rows[k]
            vals[at + n : at + n + e] = extra_vals
            at += n + e

    return SparseColumns(counts, write)


class AssembledProgram(ProgramMap):
    """The solver data of a block built from templates, in a :class:`ProgramMap`'s interface.

    The solver adapters of :mod:`cvx_lifted._solver_backends` take it as they take a program
    read from CVXPY; :meth:`data_one` and :meth:`data_many` map the block's parameter values
    (all elements of all instances by one product per template) to that data.

    Parameters
    ----------
    groups : sequence of (Group, Template)
        The replicated templates, in column order after the fixed columns.
    layout : Layout
    fixed : Fixed
        The fixed columns (their entries must use ``layout``'s row positions).
    variables : mapping of str to (int, tuple)
        First column and shape of each user variable (a contiguous run of columns).
    """

    def __init__(  # no ProgramMap.__init__: the data come from templates, not from CVXPY
        self,
        groups: Sequence[tuple[Group, Template]],
        layout: Layout,
        fixed: Fixed,
        variables: Mapping[str, tuple[int, tuple[int, ...]]],
    ) -> None:
        self.groups = list(groups)
        self.layout = layout
        self.n, self.m = layout.n, layout.m
        self.n_zero, self.n_nonneg = layout.n_zero, layout.n_nonneg
        self.soc, self.n_exp = list(layout.soc), layout.n_exp
        self.n_linear = self.n_zero + self.n_nonneg
        self.soc_starts = np.cumsum([0, *self.soc[:-1]]).astype(np.int64) if self.soc else None
        self.var_slices = [
            (name, col, col + (int(np.prod(shape)) if shape else 1), tuple(shape))
            for name, (col, shape) in variables.items()
        ]
        itype = np.int32 if layout.m < 2**31 - 1 else np.int64
        blocks, self._A_pos = self._a_blocks(fixed)
        self.A_indptr, self.A_indices, A0, starts = _fill(blocks, itype)
        group_starts = iter(starts[len(fixed.blocks) :])
        self._A_pos = [[(next(group_starts), *p) for p in pos] for pos in self._A_pos]
        self._A0 = A0[:, None]
        self.A_cols = np.zeros(0, np.int64)  # no solver adapter used here needs it
        self._csc = sp.csc_matrix(
            (A0, self.A_indices, self.A_indptr), shape=(self.m, self.n), copy=False
        )
        blocks = self._p_blocks(fixed)
        P_indptr, P_rows, P0, starts = _fill(blocks, np.int64)
        self._P_starts = starts[1:]  # per group and template column, in order
        self.P_indptr, self.P_indices = P_indptr, P_rows
        self.P_cols = np.repeat(np.arange(self.n), np.diff(P_indptr))
        self.has_P = bool(P_rows.size)
        self.P_weight = np.where(self.P_indices == self.P_cols, 0.5, 1.0)
        self._P0 = P0[:, None] if self.has_P else None
        self._q0 = np.zeros(self.n)
        self._q0[: layout.n_fixed] = fixed.q
        b0 = np.zeros(self.m)
        b0[: layout.n_coupling] = fixed.b_coupling
        nn, ns = fixed.b_nonneg.size, fixed.b_soc.size
        b0[layout.fixed_nonneg_start : layout.fixed_nonneg_start + nn] = fixed.b_nonneg
        b0[layout.fixed_soc_start : layout.fixed_soc_start + ns] = fixed.b_soc
        for gi, (g, t) in enumerate(self.groups):
            base, stride = layout.row_base[gi], layout.row_stride[gi]
            for r in range(t.n_rows):
                lo, s = int(base[r]), int(stride[r])
                b0[lo : lo + g.count * s : s] = t.b_const[r]
        self._b0 = b0
        self._A_dep = any(bool(np.any(t.A_lin)) for _, t in self.groups)
        self._P_dep = any(bool(np.any(t.P_lin)) for _, t in self.groups)

    # ------------------------------------------------------------------ structure
    def _a_blocks(self, fixed: Fixed) -> tuple[list[Block], list[list[tuple[int, ...]]]]:
        """Column blocks of A: the fixed ones, then per group and template column its copies."""
        blocks: list[Block] = list(fixed.blocks)
        positions = []
        for gi, (g, t) in enumerate(self.groups):
            ka = t.a_cols.size
            base, stride = self.layout.row_base[gi], self.layout.row_stride[gi]
            copies = np.arange(g.count, dtype=np.int64)[:, None]
            pos: list[tuple[int, ...]] = []
            for c in range(t.n):
                lo, hi = int(t.A_indptr[c]), int(t.A_indptr[c + 1])
                segs: list[Segment] = []
                hit = np.flatnonzero(t.a_cols == c)
                if hit.size:  # a column of the template variable: its coupling entries first
                    j = int(hit[0])
                    rows = np.asarray(g.cpl_rows)[j::ka]
                    vals = np.asarray(g.cpl_vals)[j::ka]
                    segs.append(Segment(rows.shape[1], rows, vals, g.cpl_sign))
                width = sum(s.width for s in segs)
                if hi > lo:
                    trows = t.A_rows[lo:hi]
                    segs.append(
                        Segment(hi - lo, base[trows] + copies * stride[trows], t.A_const[lo:hi])
                    )
                pos.append((width, lo, hi))
                blocks.append((g.count, segs))
            positions.append(pos)
        return blocks, positions

    def _p_blocks(self, fixed: Fixed) -> list[Block]:
        """Column blocks of the upper triangle of P, in the same column order as A."""
        nf = self.layout.n_fixed
        diag = [Segment(1, np.arange(nf)[:, None], fixed.P_diag[:, None])]
        blocks: list[Block] = [(nf, diag if np.any(fixed.P_diag) else [])]
        for gi, (g, t) in enumerate(self.groups):
            cs = self.layout.col_start[gi]
            copies = np.arange(g.count, dtype=np.int64)[:, None]
            for c in range(t.n):
                lo, hi = int(t.P_indptr[c]), int(t.P_indptr[c + 1])
                rows = cs + t.P_rows[lo:hi] * g.count + copies
                segs = [Segment(hi - lo, rows, t.P_const[lo:hi], g.scale)] if hi > lo else []
                blocks.append((g.count, segs))
        return blocks

    # ------------------------------------------------------------------ data
    def _values(
        self,
        per_row: Mapping[str, FloatArray],
        shared: Mapping[str, FloatArray],
        R: int,
        g: Group,
        t: Template,
    ) -> FloatArray:
        """Return the template parameter of every copy of every instance, shape (k, R*count)."""
        arr = per_row.get(g.param)
        if arr is None:
            arr = np.broadcast_to(shared[g.param], (R, *np.shape(shared[g.param])))
        return np.ascontiguousarray(np.reshape(arr, (R * g.count, t.k)).T)

    def data_many(
        self,
        per_row: Mapping[str, FloatArray],
        shared: Mapping[str, FloatArray],
        R: int,
    ) -> ProgramData:
        """Return the data of ``R`` instances, one column each.

        A block of data that no parameter changes stays one column, the same array on every
        call (the adapters then skip its update by an identity test).
        """
        q = np.repeat(self._q0[:, None], R, axis=1)
        b = np.repeat(self._b0[:, None], R, axis=1)
        d = np.zeros((1, R))
        A = np.repeat(self._A0, R, axis=1) if self._A_dep else self._A0
        P = self._P0
        if self._P_dep and P is not None:
            P = np.repeat(P, R, axis=1)
        p_starts = iter(self._P_starts)
        for gi, (g, t) in enumerate(self.groups):
            C = self._values(per_row, shared, R, g, t)
            cnt, cs = g.count, self.layout.col_start[gi]
            qv = g.scale * (t.q_lin @ C + t.q_const[:, None])
            q[cs : cs + t.n * cnt].reshape(t.n, cnt, R)[...] = qv.reshape(t.n, R, cnt).transpose(
                0, 2, 1
            )
            d[0] += g.scale * (t.d_lin @ C + t.d_const).reshape(R, cnt).sum(axis=1)
            dep = np.flatnonzero(np.any(t.b_lin, axis=1))
            if dep.size:
                bv = t.b_lin[dep] @ C + t.b_const[dep, None]
                base, stride = self.layout.row_base[gi], self.layout.row_stride[gi]
                for i, r in enumerate(dep):
                    lo, s = int(base[r]), int(stride[r])
                    b[lo : lo + cnt * s : s] = bv[i].reshape(R, cnt).T
            if self._A_dep:
                for start, width, lo, hi in self._A_pos[gi]:
                    if hi > lo and np.any(t.A_lin[lo:hi]):
                        vals = t.A_lin[lo:hi] @ C + t.A_const[lo:hi, None]
                        view = A[start : start + cnt * (width + hi - lo)]
                        view.reshape(cnt, width + hi - lo, R)[:, width:] = vals.reshape(
                            hi - lo, R, cnt
                        ).transpose(2, 0, 1)
            for c in range(t.n):
                start = next(p_starts)
                lo, hi = int(t.P_indptr[c]), int(t.P_indptr[c + 1])
                if self._P_dep and P is not None and hi > lo and np.any(t.P_lin[lo:hi]):
                    vals = g.scale * (t.P_lin[lo:hi] @ C + t.P_const[lo:hi, None])
                    P[start : start + cnt * (hi - lo)].reshape(cnt, hi - lo, R)[...] = vals.reshape(
                        hi - lo, R, cnt
                    ).transpose(2, 0, 1)
        return ProgramData(q=q, d=d, A=A, b=b, P=P)

    def data_one(self, values: Mapping[str, FloatArray]) -> ProgramData:
        """Return the data of one instance (see :meth:`data_many`)."""
        return self.data_many({name: np.asarray(v)[None] for name, v in values.items()}, {}, 1)

    def residual(self, x: FloatArray, data: ProgramData) -> FloatArray:
        """Return ``A x + b`` for a one-column ``data`` (a sparse product)."""
        if data.A is self._A0:
            mat = self._csc
        else:
            vals = np.ascontiguousarray(data.A[:, 0])
            mat = sp.csc_matrix((vals, self.A_indices, self.A_indptr), shape=(self.m, self.n))
        return np.asarray(mat @ x, dtype=np.float64) + data.b[:, 0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the assembled data (the solver keeps its own copy)."""
        arrays = [self.A_indices, self.A_indptr, self._A0, self.P_indices, self.P_indptr,
                  self.P_cols, self.P_weight, self._q0, self._b0, self.A_cols]  # fmt: skip
        return sum(int(a.nbytes) for a in arrays)
