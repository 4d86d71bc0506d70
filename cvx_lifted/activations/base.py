# SPDX-License-Identifier: Apache-2.0
r"""The activation protocol: an activation is the argmin of a convex divergence.

Every activation :math:`\phi` in cvx_lifted is declared as

.. math::

    \phi(u) = \operatorname*{argmin}_{z \in \operatorname{dom}(u)} D(u, z),

where :math:`D` is convex in :math:`z` for fixed :math:`u` (the *bi-convex representation*, BCR, of
the paper) and, for the weight step of lifted training to be convex, also convex in :math:`u` for
fixed :math:`z`. When :math:`D` is jointly convex in :math:`(u, z)` the activation satisfies the
stronger *jointly convex representation* (JCR).

An activation states *what* it is: a CVXPY expression for :math:`D` (:meth:`Activation.divergence`),
its domain constraints (:meth:`Activation.domain`), a numerically stable closed form
(:meth:`Activation.act`), a NumPy evaluation of :math:`D` (:meth:`Activation.value`), and a few
flags. *How* it is solved lives elsewhere: :mod:`cvx_lifted.compile` builds parametrised CVXPY
problems, :mod:`cvx_lifted.kernels` holds NumPy fast paths.

Conventions: rows are samples. ``u`` and ``z`` have shape ``(m, n)`` (``z`` may be narrower for
pooling); :math:`D` is the sum over rows of the per-sample divergence. Quadratic divergences carry a
factor one half, :math:`D(u, z) = \tfrac12\|z-u\|^2`, so that the ReLU divergence and its
Fenchel--Young form agree on :math:`z, u \ge 0`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NoReturn

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted.exceptions import NotRepresentableError
from cvx_lifted.kernels.fenchel_young import ScalarFY

__all__ = [
    "Activation",
    "BoxActivation",
    "Convexity",
    "FenchelYoungActivation",
    "ParamsMixin",
    "ProjectionActivation",
    "as_float_array",
]

Convexity = Literal["joint", "biconvex", "z-only", "none"]
"""``"joint"``: JCR, jointly convex in (u, z); ``"biconvex"``: convex in each argument only;
``"z-only"``: convex in z only (a custom activation usable as an output); ``"none"``: no convex
program (closed form only)."""

FloatArray = NDArray[np.floating[Any]]


def _has_variables(x: Any) -> bool:
    return isinstance(x, cp.Expression) and bool(x.variables())


def _operand(u: cp.Expression | ArrayLike) -> cp.Expression | NDArray[Any]:
    """``u`` as a CVXPY expression or a NumPy array, so that arithmetic on it is elementwise."""
    return u if isinstance(u, cp.Expression) else np.asarray(u)


def as_float_array(x: ArrayLike, name: str = "u", *, allow_nonfinite: bool = False) -> FloatArray:
    """Convert ``x`` to a floating NumPy array, rejecting NaN and infinity.

    Parameters
    ----------
    x : array_like
        Input values.
    name : str, default="u"
        Name used in error messages.
    allow_nonfinite : bool, default=False
        Accept NaN and infinite entries.

    Returns
    -------
    numpy.ndarray
        ``x`` as float64 (or float32 when ``x`` already is float32).

    Raises
    ------
    ValueError
        If ``x`` is not numeric or holds NaN or infinity.
    """
    arr = np.asarray(x)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        out = arr
    elif np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
        out = arr.astype(np.float64)
    else:
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
    if not allow_nonfinite and not np.all(np.isfinite(out)):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or impute the input first."
        )
    return out


class ParamsMixin:
    """Describe an object by its constructor parameters: ``repr``, ``==`` and ``hash`` from them.

    Subclasses override :attr:`params`; two objects are equal when they have the same type and
    equal parameters, and equal objects hash alike. Activations and output heads use it.

    Examples
    --------
    >>> from cvx_lifted import get_activation
    >>> get_activation("clip", lo=0.0, hi=2.0)
    Clip(lo=0.0, hi=2.0)
    >>> get_activation("leaky_relu", alpha=0.1) == get_activation("leaky_relu", alpha=0.1)
    True
    """

    @property
    def params(self) -> dict[str, Any]:
        """Constructor parameters: ``type(self)(**params)`` rebuilds the object."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params == other.params

    def __hash__(self) -> int:
        # parameters in name order (equal dicts may list them differently); a value that cannot
        # be hashed (a list, an array) counts by its name only, so equal objects still hash alike
        items = []
        for key, value in sorted(self.params.items()):
            try:
                hash(value)
            except TypeError:
                value = None
            items.append((key, value))
        return hash((type(self), tuple(items)))


class Activation(ParamsMixin, abc.ABC):
    r"""An activation function represented as the argmin of a convex divergence.

    Subclasses declare the class attributes below and implement :meth:`divergence` and
    :meth:`act`; everything else has a sensible default (:attr:`params`, ``repr``, ``==`` and
    ``hash`` come from :class:`ParamsMixin`).

    Attributes
    ----------
    name : str
        Registry name (``cvx_lifted.ACTIVATIONS[name]`` is the class).
    convexity : {"joint", "biconvex", "z-only", "none"}
        Whether :math:`D` is jointly convex (JCR) or only convex in each argument (BCR); see
        :data:`Convexity`.
    cone : {"qp", "lp", "exp"}
        The smallest cone class the argmin problem needs; it decides the solver order.
    kernel : str or None
        The NumPy fast path that evaluates and trains this activation, if any:
        ``"box"`` (projection onto a box, shared-Hessian state step), ``"simplex"``
        (sort-based simplex projection), ``"fenchel_young"`` (a generalised linear model in the
        weights and a damped Newton state step, from :attr:`fy`), or ``None`` (the compiled
        CVXPY path only).
    weight_step : {"ridge", "relu_fenchel"} or None
        The fast weight-step kernel: ``"ridge"`` when :math:`D` is :math:`\tfrac12\|z-u\|^2` in
        :math:`u`, ``"relu_fenchel"`` for the Fenchel--Young ReLU divergence, ``None`` otherwise.
    has_program : bool
        ``False`` for activations with a closed form but no DCP divergence (softplus, sin).
    elementwise : bool
        Whether :math:`\phi` acts on each entry independently.
    formula, divergence_text, domain_text : str
        Human-readable descriptions used by ``cvx-lifted list`` and the docs.
    """

    name: ClassVar[str] = ""
    convexity: ClassVar[Convexity] = "joint"
    cone: ClassVar[str] = "qp"
    kernel: ClassVar[str | None] = None
    weight_step: ClassVar[str | None] = None
    has_program: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True
    formula: ClassVar[str] = ""
    divergence_text: ClassVar[str] = ""
    domain_text: ClassVar[str] = "-"
    edge_values: ClassVar[tuple[float, ...]] = (0.0, 1e-8, -1e-8, 1.0, -1.0, 50.0, -50.0)
    """Inputs worth checking for this activation (0, tiny, large, and domain boundaries)."""

    # ------------------------------------------------------------------ declaration
    @abc.abstractmethod
    def divergence(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> cp.Expression:
        """Return :math:`D(u, z)` summed over all rows, as a CVXPY expression.

        Parameters
        ----------
        u : cvxpy.Expression or array_like
            Pre-activations, shape ``(m, n)``: a ``cp.Parameter`` in the argmin and state steps,
            an affine expression of the weights in the weight step.
        z : cvxpy.Expression
            Activations, shape ``(m, k)``: a ``cp.Variable`` in the argmin and state steps.

        Returns
        -------
        cvxpy.Expression
            A scalar expression, convex in ``z`` (and in ``u`` when ``u`` is affine).
        """

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:
        """Return the constraints that define the domain of :math:`D` (none by default).

        Parameters
        ----------
        u : cvxpy.Expression or array_like
            Pre-activations, shape ``(m, n)``.
        z : cvxpy.Expression
            Activations, shape ``(m, k)``.

        Returns
        -------
        list of cvxpy.Constraint
        """
        return []

    @abc.abstractmethod
    def _act(self, u: FloatArray) -> FloatArray:
        """Evaluate the closed form on a validated float array (hook for :meth:`act`)."""

    # ------------------------------------------------------------------ numerics
    def act(self, u: ArrayLike) -> FloatArray:
        r"""Evaluate the closed form :math:`\phi(u)` row by row.

        Parameters
        ----------
        u : array_like, shape (m, n) or (n,)
            Pre-activations; NaN and infinity are rejected.

        Returns
        -------
        numpy.ndarray
            :math:`\phi(u)`, same dtype as ``u`` (float32 stays float32).
        """
        arr = as_float_array(u, "u")
        if arr.ndim == 1:
            row: FloatArray = self._act(arr[None, :])[0]
            return row
        if arr.ndim != 2:
            raise ValueError(f"u must be 1-D or 2-D (rows are samples), got shape {arr.shape}.")
        return self._act(arr)

    def __call__(self, u: ArrayLike) -> FloatArray:
        """Alias of :meth:`act`."""
        return self.act(u)

    def value(self, u: ArrayLike, z: ArrayLike) -> float:
        """Evaluate :math:`D(u, z)` (summed over rows) in NumPy, ignoring the domain.

        The default evaluates the CVXPY expression on constants; built-in activations override it
        with vectorised NumPy. Use :meth:`domain_violation` to check the domain.

        Parameters
        ----------
        u : array_like, shape (m, n)
            Pre-activations.
        z : array_like, shape (m, k)
            Activations.

        Returns
        -------
        float
        """
        expr = self.divergence(cp.Constant(np.atleast_2d(u)), cp.Constant(np.atleast_2d(z)))
        val = expr.value
        return float(np.inf if val is None else val)

    def row_values(self, u: ArrayLike, z: ArrayLike) -> NDArray[np.float64]:
        """Evaluate :math:`D(u_i, z_i)` for every row ``i`` (NumPy; the domain is ignored).

        The default calls :meth:`value` row by row; built-ins vectorise it.

        Parameters
        ----------
        u : array_like, shape (m, n)
            Pre-activations.
        z : array_like, shape (m, k)
            Activations.

        Returns
        -------
        numpy.ndarray, shape (m,)
        """
        u = np.atleast_2d(np.asarray(u))
        z = np.atleast_2d(np.asarray(z))
        return np.array([self.value(u[i : i + 1], z[i : i + 1]) for i in range(u.shape[0])])

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:
        """Return the largest violation of the domain constraints at ``(u, z)`` (0 when inside).

        Parameters
        ----------
        u : array_like, shape (m, n)
            Pre-activations.
        z : array_like, shape (m, k)
            Activations.

        Returns
        -------
        float
        """
        zc = cp.Constant(np.atleast_2d(z))
        cons = self.domain(cp.Constant(np.atleast_2d(u)), zc)
        worst = 0.0
        for c in cons:
            v = c.violation()
            worst = max(worst, float(np.max(v)) if np.size(v) else 0.0)
        return worst

    @property
    def box(self) -> tuple[float, float] | None:
        r"""The box holding the outputs when :math:`D` is :math:`\tfrac12\|z-u\|^2` in :math:`z`.

        ``(lo, hi)`` when, as a function of :math:`z`, :math:`D(u, z)` equals
        :math:`\tfrac12\|z-u\|^2` plus terms in :math:`u` only, restricted to ``lo <= z <= hi``;
        the hidden-state step then is a box-constrained QP with a shared Hessian (fast path).
        ``None`` otherwise.
        """
        return None

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:
        """Move a solver's ``z`` the last ~1e-9 back into the domain (default: unchanged).

        Interior-point and ADMM solvers return points within their tolerance of the domain;
        divergences with logarithms are NaN just outside it. Training calls this after every
        CVXPY state step so that no NaN reaches the objective.

        Parameters
        ----------
        u : numpy.ndarray, shape (m, n)
            Pre-activations.
        z : numpy.ndarray, shape (m, k)
            Solver answer.

        Returns
        -------
        numpy.ndarray
        """
        return z

    def output_size(self, n: int) -> int:
        """Return the number of outputs for ``n`` inputs (``n`` except for pooling)."""
        return n

    @property
    def fy(self) -> ScalarFY | None:
        r"""The elementwise Fenchel--Young pair :math:`(\Phi, \Phi^*)` in NumPy, if there is one.

        Activations that have it train on the fast path in every block: the weight step is a
        generalised linear model with gradient :math:`X^\top(\phi(U) - Z)`
        (:func:`cvx_lifted.kernels.fy_wstep`) and the state step a damped Newton method per row
        (:func:`cvx_lifted.kernels.fy_state_step`). ``None`` (the default) means the compiled path.
        """
        return None

    def bias_shift(self, u: FloatArray, z: FloatArray) -> NDArray[np.float64]:
        r"""Per-column shift of the biases that makes ``(u - shift, z)`` satisfy the domain.

        Only divergences whose domain depends on ``u`` (``leaky_relu``: :math:`z \ge \alpha u`)
        need one: a compiled weight step meets such a constraint only to the solver's tolerance,
        and the next state step, whose feasible set is then empty by ~1e-8, would fail. The
        default is no shift.

        Parameters
        ----------
        u : numpy.ndarray, shape (m, n)
            Pre-activations from the weight step's answer.
        z : numpy.ndarray, shape (m, n)
            The states they must be compatible with.

        Returns
        -------
        numpy.ndarray, shape (n,)
        """
        return np.zeros(np.shape(u)[-1])

    def unique_mask(self, u: FloatArray) -> NDArray[np.bool_]:
        r"""Mark the entries of :math:`\phi(u)` that the argmin determines uniquely (default: all).

        Verification compares solver answers with the closed form only on these entries.
        """
        return np.ones((u.shape[0], self.output_size(u.shape[1])), dtype=bool)


class ProjectionActivation(Activation):
    r"""Activations that are Euclidean projections: :math:`D(u,z) = \tfrac12\|z-u\|^2`, z in C.

    The divergence is jointly convex and the weight step is a ridge regression.
    """

    convexity: ClassVar[Convexity] = "joint"
    cone: ClassVar[str] = "qp"
    weight_step: ClassVar[str | None] = "ridge"
    divergence_text: ClassVar[str] = "1/2 ||z - u||^2"

    def divergence(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> cp.Expression:
        r"""Return :math:`\tfrac12\|z-u\|^2`.

        When exactly one argument holds variables it is written
        :math:`\tfrac12\|z\|^2 - u^\top z + \tfrac12\|u\|^2`: CVXPY then hands OSQP a QP with
        half the variables (no epigraph for the difference), and re-solves are 1.1-1.5x faster
        and more accurate (measured at batch sizes 1-256).
        """
        expr: cp.Expression
        if _has_variables(u) != _has_variables(z):
            expr = 0.5 * cp.sum_squares(z) - cp.sum(cp.multiply(u, z)) + 0.5 * cp.sum_squares(u)
        else:
            expr = 0.5 * cp.sum_squares(z - u)
        return expr

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        d = np.asarray(z, dtype=np.float64) - np.asarray(u, dtype=np.float64)
        return 0.5 * float(np.vdot(d, d))

    def row_values(self, u: ArrayLike, z: ArrayLike) -> NDArray[np.float64]:  # noqa: D102
        d = np.atleast_2d(np.asarray(z, dtype=np.float64) - np.asarray(u, dtype=np.float64))
        rows: NDArray[np.float64] = 0.5 * np.einsum("ij,ij->i", d, d)
        return rows


class BoxActivation(ProjectionActivation):
    r"""Projection onto a box :math:`[lo, hi]` (ReLU, clip, hard tanh, identity).

    .. math:: \phi(u) = \operatorname*{argmin}_{lo \le z \le hi} \tfrac12\|z-u\|^2
              = \min(hi, \max(lo, u)).
    """

    kernel: ClassVar[str | None] = "box"
    lo: float = -np.inf
    hi: float = np.inf

    @property
    def box(self) -> tuple[float, float]:
        """The box ``(lo, hi)`` that holds the outputs."""
        return (self.lo, self.hi)

    @property
    def edge_values(self) -> tuple[float, ...]:  # type: ignore[override]
        """Zero, tiny and large inputs plus the box boundaries and their neighbours."""
        edges = [0.0, 1e-8, -1e-8, 1.0, -1.0, 50.0, -50.0]
        for b in (self.lo, self.hi):
            if np.isfinite(b):
                edges += [b, b + 1e-8, b - 1e-8]
        return tuple(edges)

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        cons: list[cp.Constraint] = []
        if np.isfinite(self.lo):
            cons.append(z >= self.lo)
        if np.isfinite(self.hi):
            cons.append(z <= self.hi)
        return cons

    def _act(self, u: FloatArray) -> FloatArray:
        return np.clip(u, self.lo, self.hi)

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return np.clip(z, self.lo, self.hi)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.asarray(z, dtype=np.float64)
        if z.size == 0:
            return 0.0
        return float(max(0.0, np.max(self.lo - z), np.max(z - self.hi)))


class FenchelYoungActivation(Activation):
    r"""Fenchel--Young divergences :math:`D(u,z) = \Phi(z) + \Phi^*(u) - u^\top z` (paper eq. 6-7).

    :math:`\Phi` is convex with :math:`\nabla\Phi^* = \phi`; :math:`D \ge 0` with equality exactly
    at :math:`z = \phi(u)`. The :math:`\Phi^*(u)` term is constant in :math:`z` (it does not move
    the argmin) but it makes :math:`D` convex and bounded below in :math:`u`, which the weight step
    needs. Such divergences are convex in each argument but in general not jointly convex.

    Subclasses implement :meth:`phi`, :meth:`phi_conj` (CVXPY), :meth:`phi_value`,
    :meth:`phi_conj_value` (NumPy) and :meth:`_act`.
    """

    convexity: ClassVar[Convexity] = "biconvex"

    @abc.abstractmethod
    def phi(self, z: cp.Expression) -> cp.Expression:
        r"""Return :math:`\sum \Phi(z)` as a CVXPY expression (convex in ``z``)."""

    @abc.abstractmethod
    def phi_conj(self, u: cp.Expression | ArrayLike) -> cp.Expression:
        r"""Return :math:`\sum \Phi^*(u)` as a CVXPY expression (convex in ``u``)."""

    @abc.abstractmethod
    def phi_value(self, z: FloatArray) -> float:
        r""":math:`\sum \Phi(z)` in NumPy."""

    @abc.abstractmethod
    def phi_conj_value(self, u: FloatArray) -> float:
        r""":math:`\sum \Phi^*(u)` in NumPy."""

    def divergence(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = self.phi(z) + self.phi_conj(u) - cp.sum(cp.multiply(u, z))
        return expr

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        u = np.asarray(u, dtype=np.float64)
        z = np.asarray(z, dtype=np.float64)
        return self.phi_value(z) + self.phi_conj_value(u) - float(np.vdot(u, z))


def require_program(act: Activation) -> None:
    """Raise the reason why ``act`` has no convex program, if it has none.

    Parameters
    ----------
    act : Activation
        The activation to check.

    Raises
    ------
    NotRepresentableError
        If ``act.has_program`` is false; the message gives the reason.
    """
    if not act.has_program:
        why = str(getattr(act, "why", ""))
        _not_representable(act.name, why)()


def _not_representable(name: str, why: str) -> Callable[..., NoReturn]:
    def raise_it(*args: Any, **kwargs: Any) -> NoReturn:
        raise NotRepresentableError(
            f"activation {name!r} has a closed form but no convex-program (DCP) form: {why}"
        )

    return raise_it


class ClosedFormOnly(Activation):
    """Activations listed with their closed form only; asking for their program raises."""

    has_program: ClassVar[bool] = False
    convexity: ClassVar[Convexity] = "none"
    cone: ClassVar[str] = "-"
    divergence_text: ClassVar[str] = "(no DCP form)"
    why: ClassVar[str] = ""

    def divergence(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> cp.Expression:  # noqa: D102
        return _not_representable(self.name, self.why)()

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        return _not_representable(self.name, self.why)()

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        return _not_representable(self.name, self.why)()
