# SPDX-License-Identifier: Apache-2.0
r"""User-defined activations declared as convex programs.

:func:`custom_activation` turns three plain functions (the divergence as a CVXPY expression, its
domain constraints, and the closed form) into a registered :class:`Activation` that works wherever
a built-in does: verification, compiled argmin problems, lifted training through the CVXPY path,
and model files (which store the registry name).

The definition is checked when it is created, on a small probe shape, and again whenever a problem
is compiled for a real shape:

* convex (DCP) in ``z`` with ``u`` a parameter, and DPP in ``u`` (otherwise it cannot be
  compiled once): :class:`~cvx_lifted.exceptions.NonConvexError` and
  :class:`~cvx_lifted.exceptions.NotDPPError` name the sub-expression that breaks the rule;
* convex in ``u`` with ``z`` fixed (needed by the weight step of lifted training) and jointly
  convex: recorded as ``convexity`` = ``"joint"``, ``"biconvex"`` or ``"z-only"`` (usable as an
  activation and verifiable, but not trainable).

Examples
--------
>>> import cvxpy as cp, numpy as np
>>> from cvx_lifted import custom_activation, verify
>>> soft = custom_activation(
...     name="doc_soft_threshold",
...     divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
...     closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
... )
>>> soft.convexity
'joint'
>>> verify(soft).passed
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted.activations import ACTIVATIONS, BUILTIN_ACTIVATIONS, register_activation
from cvx_lifted.activations.base import Activation, Convexity, FloatArray
from cvx_lifted.dcp import explain_not_dcp, problem_class
from cvx_lifted.exceptions import NonConvexError, NotDPPError
from cvx_lifted.kernels.fenchel_young import ScalarFY

__all__ = ["CustomActivation", "FenchelYoungForm", "check_divergence", "custom_activation"]

DivergenceFn = Callable[[Any, Any], cp.Expression]
DomainFn = Callable[[Any, Any], Sequence[cp.Constraint]]
ClosedFormFn = Callable[[np.ndarray], ArrayLike]
ElementwiseFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FenchelYoungForm:
    r"""An activation's Fenchel--Young pair, as CVXPY expressions and as NumPy functions.

    Given to :func:`custom_activation`, it defines the divergence
    :math:`D(u, z) = \sum_k \Phi(z_k) + \Phi^*(u_k) - u_k z_k` (so no ``divergence`` is needed)
    and lets the activation train on the fast NumPy path in every block (but see ``closed``), as
    the catalogue's ``sigmoid`` and ``tanh`` do. The closed form :math:`\phi = (\Phi^*)'` is the
    activation's ``closed_form``. Every NumPy function is checked against the CVXPY expressions
    and the closed form when the activation is declared.

    Parameters
    ----------
    phi : callable ``z -> cvxpy.Expression``
        :math:`\sum \Phi(z)` over all entries, convex in ``z`` (its domain is implied by the atoms,
        e.g. ``cp.entr``, or given by ``lo``/``hi``).
    phi_conj : callable ``u -> cvxpy.Expression``
        :math:`\sum \Phi^*(u)`, convex in ``u``.
    phi_value, phi_grad, phi_hess : callable ``ndarray -> ndarray``
        :math:`\Phi`, :math:`\Phi' = \phi^{-1}` and :math:`\Phi'' > 0`, elementwise, on the open
        interval ``(lo, hi)``.
    conj_value, conj_hess : callable ``ndarray -> ndarray``
        :math:`\Phi^*` and :math:`\phi' = (\Phi^*)'' \ge 0`, elementwise, on the real line.
    lo, hi : float, default -inf, inf
        The interval holding the outputs.
    closed : bool, default=False
        Whether ``lo``/``hi`` can be attained (:math:`\Phi'` finite there, like ``relu_fenchel``'s
        0); ``False`` for barriers like the sigmoid's entropy, whose minimisers stay inside.
        With ``closed=True`` the activation's own state step is solved by its compiled CVXPY
        problem (the NumPy Newton method keeps its iterates strictly inside the domain); the
        weight steps and the next layer's state step stay on the fast path.
    curvature : float, default=1.0
        An upper bound on :math:`\phi'` (1/4 for the sigmoid).
    """

    phi: Callable[[Any], cp.Expression]
    phi_conj: Callable[[Any], cp.Expression]
    phi_value: ElementwiseFn
    phi_grad: ElementwiseFn
    phi_hess: ElementwiseFn
    conj_value: ElementwiseFn
    conj_hess: ElementwiseFn
    lo: float = -np.inf
    hi: float = np.inf
    closed: bool = False
    curvature: float = 1.0


def _problem(act: Activation, u: Any, z: Any) -> cp.Problem:
    return cp.Problem(cp.Minimize(act.divergence(u, z)), list(act.domain(u, z)))


def check_divergence(act: Activation, n_features: int = 3, n_rows: int = 2) -> Convexity:
    """Check the convexity of an activation's divergence and classify it.

    Parameters
    ----------
    act : Activation
        The activation to check.
    n_features, n_rows : int
        Probe shape of ``u``.

    Returns
    -------
    str
        ``"joint"``, ``"biconvex"`` or ``"z-only"``.

    Raises
    ------
    NonConvexError
        If the divergence is not convex (DCP) in ``z`` for a parameter ``u``.
    NotDPPError
        If it is convex in ``z`` but not DPP in ``u``.
    """
    k = act.output_size(n_features)
    u = cp.Parameter((n_rows, n_features))
    z = cp.Variable((n_rows, k))
    what = f"divergence of {act.name!r} in z (u a Parameter)"
    try:
        prob = _problem(act, u, z)
    except cp.error.DCPError as exc:  # raised eagerly by some atoms, e.g. quad_over_lin
        raise NonConvexError(f"The {what} is not DCP: {exc}") from None
    if not prob.is_dcp():
        raise NonConvexError(explain_not_dcp(prob, what=what))
    if not prob.is_dpp():
        raise NotDPPError(explain_not_dcp(prob, dpp=True, what=what))
    try:
        joint = _problem(act, cp.Variable((n_rows, n_features)), cp.Variable((n_rows, k)))
        if joint.is_dcp():
            return "joint"
        in_u = _problem(act, cp.Variable((n_rows, n_features)), cp.Parameter((n_rows, k)))
        if in_u.is_dcp():
            return "biconvex"
    except (cp.error.DCPError, ValueError):
        pass
    return "z-only"


class CustomActivation(Activation):
    """Base of activations built by :func:`custom_activation` (one generated subclass each)."""

    _divergence_fn: ClassVar[DivergenceFn]
    _domain_fn: ClassVar[DomainFn | None] = None
    _closed_form_fn: ClassVar[ClosedFormFn]
    #: The module whose code called :func:`custom_activation` (where to import it from).
    _defined_in: ClassVar[str | None] = None
    convexity: ClassVar[Convexity] = "z-only"
    cone: ClassVar[str] = "?"

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle by name and module when declared in an importable module (as model files do).

        Its class is made at run time, so ``pickle`` cannot find it by reference. A registered
        activation declared in a module other than ``__main__`` pickles as its name and that
        module: unpickling imports the module if the name is not registered yet (in a new
        process, a Dask worker). One declared in a script or notebook (``__main__``), or not
        registered, pickles as any object: ``cloudpickle`` (Dask, joblib) sends its definition
        by value, ``pickle`` cannot.
        """
        module = type(self)._defined_in
        if ACTIVATIONS.get(self.name) is type(self) and module not in (None, "__main__"):
            return (_registered, (self.name, module))
        return super().__reduce_ex__(protocol)

    def divergence(self, u: Any, z: Any) -> cp.Expression:  # noqa: D102
        expr = type(self)._divergence_fn(u, z)
        if not isinstance(expr, cp.Expression):
            raise TypeError(
                f"the divergence of {self.name!r} must return a CVXPY expression, got "
                f"{type(expr).__name__}."
            )
        if expr.size != 1:
            raise ValueError(
                f"the divergence of {self.name!r} must be a scalar (sum over rows and entries), "
                f"got shape {expr.shape}; wrap it in cp.sum(...)."
            )
        return expr

    _fy_form: ClassVar[FenchelYoungForm | None] = None
    #: Factory of the ``torch.nn.Module`` computing the closed form (for ``to_torch``), or None.
    torch_module: ClassVar[Callable[[], Any] | None] = None

    def domain(self, u: Any, z: Any) -> list[cp.Constraint]:  # noqa: D102
        fn = type(self)._domain_fn
        returned: Any = [] if fn is None else fn(u, z)
        # one constraint on its own (z >= 0) is a list of one
        single = isinstance(returned, cp.constraints.constraint.Constraint)
        try:
            cons: list[cp.Constraint] = [returned] if single else list(returned)
        except TypeError:
            raise TypeError(
                f"the domain of {self.name!r} must return a list of CVXPY constraints (such as "
                f"[z >= 0]), got {type(returned).__name__}."
            ) from None
        bad = [c for c in cons if not isinstance(c, cp.constraints.constraint.Constraint)]
        if bad:
            raise TypeError(
                f"the domain of {self.name!r} must return a list of CVXPY constraints (such as "
                f"z >= 0), got {bad[0]!r} of type {type(bad[0]).__name__}; a Python bool means a "
                "comparison of constants, not of the variable z."
            )
        form = type(self)._fy_form
        if form is not None:
            if np.isfinite(form.lo):
                cons.append(z >= form.lo)
            if np.isfinite(form.hi):
                cons.append(z <= form.hi)
        return cons

    def _act(self, u: FloatArray) -> FloatArray:
        raw = type(self)._closed_form_fn(u)
        out = np.asarray(raw, dtype=u.dtype)
        k = self.output_size(u.shape[1])
        if out.shape != (u.shape[0], k):
            raise ValueError(
                f"the closed form of {self.name!r} must map an (m, n) array to an (m, {k}) array "
                f"(one output per input entry, rows are samples); for input shape {u.shape} it "
                f"returned shape {out.shape}. Write it with NumPy operations that keep the shape, "
                "e.g. np.maximum(u, 0) rather than max(u) or a Python scalar."
            )
        if not np.all(np.isfinite(out)):
            bad = np.argwhere(~np.isfinite(out))[0]
            raise ValueError(
                f"the closed form of {self.name!r} returned {out[tuple(bad)]} at u = "
                f"{float(u[tuple(bad)])!r} (row {bad[0]}, column {bad[1]}) for a finite input: the "
                "activation's closed form, not the data, needs fixing (guard overflow with "
                "np.clip, scipy.special.expit or np.logaddexp)."
            )
        return out

    @property
    def fy(self) -> ScalarFY | None:  # noqa: D102
        form = type(self)._fy_form
        if form is None:
            return None
        closed_form = type(self)._closed_form_fn
        return ScalarFY(
            name=self.name,
            conj=form.conj_value,
            conj_grad=lambda u: np.asarray(closed_form(u), dtype=np.float64),
            conj_hess=form.conj_hess,
            phi=form.phi_value,
            phi_grad=form.phi_grad,
            phi_hess=form.phi_hess,
            lo=float(form.lo),
            hi=float(form.hi),
            closed=bool(form.closed),
            curvature=float(form.curvature),
        )

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        if type(self)._fy_form is None:
            return super().value(u, z)
        return float(np.sum(self.row_values(u, z)))

    def row_values(self, u: ArrayLike, z: ArrayLike) -> np.ndarray:  # noqa: D102
        form = type(self)._fy_form
        if form is None:
            return super().row_values(u, z)
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        terms = form.phi_value(z) + form.conj_value(u) - u * z
        out: np.ndarray = np.asarray(terms, dtype=np.float64).sum(axis=1)
        return out


def custom_activation(
    *,
    name: str,
    closed_form: ClosedFormFn,
    divergence: DivergenceFn | None = None,
    domain: DomainFn | None = None,
    fenchel_young: FenchelYoungForm | None = None,
    elementwise: bool | None = None,
    formula: str = "",
    register: bool = True,
    overwrite: bool = False,
    probe_features: int = 3,
    check_closed_form: bool = True,
    torch_module: Callable[[], Any] | None = None,
) -> Activation:
    r"""Declare an activation as a convex program, check it, and (by default) register it.

    Parameters
    ----------
    name : str
        Registry name (must not be a built-in's).
    closed_form : callable ``(ndarray) -> ndarray``
        :math:`\phi(u)` on an ``(m, n)`` NumPy array.
    divergence : callable ``(u, z) -> cvxpy.Expression``, optional
        :math:`D(u, z)` summed over all entries; ``u`` is a parameter or an affine expression,
        ``z`` a variable, both of shape ``(m, n)`` (rows are samples). Required unless
        ``fenchel_young`` is given.
    domain : callable ``(u, z) -> list of cvxpy.Constraint``, optional
        Domain constraints.
    fenchel_young : FenchelYoungForm, optional
        The activation's Fenchel--Young pair :math:`(\Phi, \Phi^*)` in CVXPY and NumPy. The
        divergence is then :math:`\Phi(z) + \Phi^*(u) - u^\top z`, and the activation trains on
        the fast NumPy path (like ``sigmoid``); without it, training goes through compiled CVXPY
        problems.
    elementwise : bool, optional
        Whether :math:`\phi` acts entry by entry (then the compiled weight step splits into one
        small problem per output unit). Detected from the closed form when not given.
    formula : str, optional
        Text shown by ``cvx-lifted list``.
    register : bool, default=True
        Add it to :data:`cvx_lifted.ACTIVATIONS` so that ``get_activation(name)`` and saved
        models can find it.
    overwrite : bool, default=False
        Replace an earlier registration under the same name. Not needed to replace an
        activation that ``custom_activation`` made from the same module (the defining code run
        again, as a notebook cell is).
    probe_features : int, default=3
        Width of the probe used to check convexity now.
    check_closed_form : bool, default=True
        Solve the argmin once now (two rows of ``probe_features`` inputs in (-2, 2), ECOS or
        CVXPY's default solver) and refuse a closed form more than 1e-3 (relative) away from it; a
        wrong closed form otherwise trains states and predicts with another function. It
        catches gross mistakes only: :func:`cvx_lifted.verify` checks a grid of inputs against
        tight tolerances.
    torch_module : callable ``() -> torch.nn.Module``, optional
        Makes the PyTorch module computing the closed form (e.g. ``torch.nn.Softshrink`` for a
        soft threshold), so that :func:`cvx_lifted.interop.torch.to_torch` and ``from_torch``
        can copy networks that use the activation; checked against the closed form there.

    Returns
    -------
    Activation
        An instance of a new :class:`CustomActivation` subclass.

    Raises
    ------
    NonConvexError, NotDPPError
        With a message naming the offending sub-expression.
    ValueError
        For a bad name or a name clash, a closed form that fails on a NumPy array or is not the
        argmin of the divergence, or a divergence without a minimiser.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("custom_activation needs a non-empty name.")
    if fenchel_young is not None:
        if not isinstance(fenchel_young, FenchelYoungForm):
            raise TypeError(
                "fenchel_young must be a cvx_lifted.FenchelYoungForm, got "
                f"{type(fenchel_young).__name__}."
            )
        if divergence is not None:
            raise ValueError(
                "give either divergence or fenchel_young, not both: fenchel_young defines the "
                "divergence Phi(z) + Phi*(u) - u z."
            )
        form = fenchel_young

        def divergence(u: Any, z: Any) -> cp.Expression:
            expr: cp.Expression = form.phi(z) + form.phi_conj(u) - cp.sum(cp.multiply(u, z))
            return expr

    if divergence is None:
        raise ValueError(
            "custom_activation needs divergence=(u, z) -> cvxpy expression, or "
            "fenchel_young=FenchelYoungForm(...)."
        )
    for arg, fn in (("divergence", divergence), ("closed_form", closed_form)):
        if not callable(fn):
            raise ValueError(f"{arg} must be callable, got {type(fn).__name__}.")
    if torch_module is not None and (
        not callable(torch_module)
        or (hasattr(torch_module, "forward") and not isinstance(torch_module, type))
    ):
        raise ValueError(
            f"torch_module must make a module: a torch.nn.Module class or a function such as "
            f"lambda: torch.nn.Softshrink(0.1), not {type(torch_module).__name__} "
            f"{'instance ' if callable(torch_module) else ''}(each layer gets its own module)."
        )
    if domain is not None and not callable(domain):
        raise ValueError(f"domain must be callable or None, got {type(domain).__name__}.")
    defined_in = _caller_module()
    if register and name in BUILTIN_ACTIVATIONS:
        raise ValueError(f"{name!r} is a built-in activation; choose another name.")
    if register and name in ACTIVATIONS and not overwrite:
        if not _redefinition(ACTIVATIONS[name], defined_in):
            raise ValueError(
                f"an activation named {name!r} is already registered; pass overwrite=True."
            )
        overwrite = True  # the same code run again (a notebook cell): the new definition wins
    attrs: dict[str, Any] = {
        "name": name,
        "_divergence_fn": staticmethod(divergence),
        "_domain_fn": staticmethod(domain) if domain is not None else None,
        "_closed_form_fn": staticmethod(closed_form),
        "_defined_in": defined_in,
        "_fy_form": fenchel_young,
        "torch_module": staticmethod(torch_module) if torch_module is not None else None,
        "kernel": "fenchel_young" if fenchel_young is not None else None,
        "formula": formula or "user closed form",
        "divergence_text": (
            "Phi(z) + Phi*(u) - u z (user)" if fenchel_young else "user CVXPY expression"
        ),
        "domain_text": "user constraints" if domain is not None else "-",
        "__doc__": f"User-defined activation {name!r} (see cvx_lifted.custom_activation).",
        "__module__": defined_in or __name__,
    }
    # a new subclass per activation, built at run time
    cls = cast(type[CustomActivation], type(f"Custom_{name}", (CustomActivation,), attrs))
    probe = cls()
    cls.convexity = check_divergence(probe, n_features=probe_features)
    cls.cone = _cone(probe, probe_features)
    # checked now, not at the first solve: a domain must return CVXPY constraints
    probe.domain(cp.Parameter((1, probe_features)), cp.Variable((1, probe_features)))
    if check_closed_form:
        _check_closed_form(probe, probe_features)
    cls.elementwise = _is_elementwise(probe) if elementwise is None else bool(elementwise)
    if fenchel_young is not None:
        _check_fenchel_young(probe, fenchel_young)
    if register:
        register_activation(cls, name, overwrite=overwrite)
    return probe


def _registered(name: str, module: str) -> Activation:
    """Return the registered custom activation ``name``, importing ``module`` if needed."""
    if name not in ACTIVATIONS:
        importlib.import_module(module)
    if name not in ACTIVATIONS:
        raise ValueError(
            f"cannot unpickle the custom activation {name!r}: it is not registered in this "
            f"process, and importing {module!r}, where it was declared, did not register it."
        )
    return ACTIVATIONS[name]()


def _caller_module() -> str | None:
    """Return the module whose code called :func:`custom_activation` (a notebook: ``__main__``)."""
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
        "cvx_lifted.activations"
    ):
        frame = frame.f_back  # type: ignore[assignment]
    return None if frame is None else frame.f_globals.get("__name__")


def _redefinition(existing: type[Activation], defined_in: str | None) -> bool:
    """Whether ``existing`` was made by :func:`custom_activation` in the module defining now.

    Running the code that defines an activation again (a notebook cell, a module reloaded)
    replaces it; an activation of the catalogue or of another module needs ``overwrite=True``.
    """
    if not issubclass(existing, CustomActivation) or defined_in is None:
        return False
    return bool(getattr(existing, "_defined_in", None) == defined_in)


def _check_closed_form(act: Activation, n: int) -> None:
    """Compare the closed form with the argmin of the divergence on two rows (one solve)."""
    u = np.random.default_rng(0).uniform(-2.0, 2.0, size=(2, n))
    try:
        closed = act.act(u)  # a ValueError names a wrong shape or a non-finite value
    except (TypeError, AttributeError, ArithmeticError) as exc:
        raise ValueError(
            f"the closed form of {act.name!r} failed on a NumPy array of shape {u.shape} "
            f"({type(exc).__name__}: {exc}); write it with NumPy operations on whole arrays, "
            "e.g. np.tanh(u) rather than math.tanh(u)."
        ) from exc
    z = cp.Variable(closed.shape)
    problem = cp.Problem(cp.Minimize(act.divergence(u, z)), list(act.domain(u, z)))
    mask = act.unique_mask(u)  # where the argmin is not unique, any answer is one

    def excess() -> NDArray[np.float64]:
        value = np.asarray(z.value, dtype=np.float64)
        out: NDArray[np.float64] = np.abs(value - closed) - 1e-3 * (1.0 + np.abs(closed))
        out[~mask] = -np.inf
        return out

    # ECOS first: after Clarabel reports "unbounded", a fork()ed child process hangs in its next
    # Clarabel solve (clarabel 0.11.1; docs/solver-facts.md). ECOS's certificates are final;
    # the default solver (Clarabel) gets a second look at anything else ECOS leaves in doubt.
    try:
        problem.solve(solver=cp.ECOS)
        settled = problem.status in ("infeasible", "unbounded") or (
            problem.status == "optimal" and excess().max() <= 0
        )
    except cp.error.SolverError:
        settled = False
    if not settled:
        try:
            problem.solve()
        except cp.error.SolverError:  # no installed solver takes it: nothing to compare
            return
    rows = np.round(u, 4).tolist()
    if z.value is None or problem.status not in ("optimal", "optimal_inaccurate"):
        raise ValueError(
            f"the divergence of {act.name!r} has no minimiser in z at u = {rows[0]} (the "
            f"solver reports {problem.status!r}); an activation is its argmin, so it must be "
            "bounded below (check its sign and its domain)."
        )
    gap = excess()
    if gap.max() > 0:
        i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise ValueError(
            f"the closed form of {act.name!r} is not the argmin of its divergence: at "
            f"u = {rows[i]} the solver gives z[{j}] = {z.value[i, j]:.6g}, the closed form "
            f"{closed[i, j]:.6g}. Fix one of them (cvx_lifted.verify reports a grid of inputs), "
            "or pass check_closed_form=False to declare it anyway."
        )


def _is_elementwise(act: Activation) -> bool:
    """Whether the closed form acts entry by entry (probed on random rows)."""
    rng = np.random.default_rng(0)
    u = rng.normal(scale=2.0, size=(3, 4))
    try:
        full = act.act(u)
        single = act.act(u.reshape(-1, 1)).reshape(full.shape)
    except ValueError:
        return False
    return bool(np.allclose(full, single, rtol=1e-9, atol=1e-12))


def _check_fenchel_young(act: Activation, form: FenchelYoungForm) -> None:
    """Check the NumPy pieces of a Fenchel--Young form against CVXPY and the closed form."""
    if not form.lo < form.hi:
        raise ValueError(
            f"FenchelYoungForm of {act.name!r}: lo must be < hi, got {form.lo}, {form.hi}."
        )
    if not (np.isfinite(form.curvature) and form.curvature > 0):
        raise ValueError(
            f"FenchelYoungForm of {act.name!r}: curvature must be a positive bound "
            f"on phi', got {form.curvature!r}."
        )
    u = np.concatenate([np.linspace(-6.0, 6.0, 25), [-0.3, 0.7, 2.5]])[None, :]
    z = act.act(u)
    inside = (z > form.lo) & (z < form.hi)
    h = 1e-5

    def fail(piece: str, at: str, got: Any, want: Any) -> None:
        raise ValueError(
            f"FenchelYoungForm of {act.name!r}: {piece} disagrees with {at}: got {got!r}, "
            f"expected {want!r}. Each NumPy function must be the elementwise counterpart of the "
            "CVXPY expressions and the closed form."
        )

    def close(a: Any, b: Any, tol: float) -> bool:
        return bool(np.allclose(a, b, rtol=tol, atol=tol))

    want = form.phi_conj(cp.Constant(u)).value
    got = float(np.sum(form.conj_value(u)))
    if not close(got, want, 1e-6):
        fail("conj_value (summed)", "phi_conj", got, want)
    zi = z[inside][None, :]
    want = form.phi(cp.Constant(zi)).value
    got = float(np.sum(form.phi_value(zi)))
    if not close(got, want, 1e-6):
        fail("phi_value (summed)", "phi at phi(u)", got, want)
    grad = form.phi_grad(zi)
    if not close(grad, u[inside][None, :], 1e-5):
        fail(
            "phi_grad (the inverse of the closed form)", "u at z = closed_form(u)", grad, u[inside]
        )
    slope = (act.act(u + h) - act.act(u - h)) / (2 * h)
    # smooth where the one-sided slopes agree (not at a kink such as a ReLU's 0, where the
    # central difference is the mean of two derivatives and conj_hess may be either)
    one_sided = (act.act(u + h) - z) / h - (z - act.act(u - h)) / h
    smooth = np.abs(slope - (act.act(u + 2 * h) - act.act(u - 2 * h)) / (4 * h)) < 1e-6
    smooth &= np.abs(one_sided) < 1e-3
    hess = form.conj_hess(u)
    if not close(hess[smooth], slope[smooth], 1e-4):
        fail("conj_hess", "the derivative of the closed form", hess[smooth], slope[smooth])
    if np.any(slope > form.curvature * (1 + 1e-6)):
        fail(
            "curvature", "the largest slope of the closed form", form.curvature, float(slope.max())
        )
    zs = zi[0]
    ok = (zs - 2 * h > form.lo) & (zs + 2 * h < form.hi)
    fd = (form.phi_grad(zs + h) - form.phi_grad(zs - h)) / (2 * h)
    hess = form.phi_hess(zs)
    if not close(hess[ok], fd[ok], 1e-4):
        fail("phi_hess", "the derivative of phi_grad", hess[ok], fd[ok])


def _cone(act: Activation, n: int) -> str:
    u = cp.Parameter((1, n))
    z = cp.Variable((1, act.output_size(n)))
    return problem_class(_problem(act, u, z))
