# SPDX-License-Identifier: Apache-2.0
r"""Which fast path solves each block of a sweep: registries keyed by what layers declare.

Every block of block-coordinate descent has a fast NumPy path when a kernel of
:mod:`cvx_lifted.kernels` fits what the layer's activation (or the head) declares, and a
compiled CVXPY problem (:mod:`cvx_lifted.blocks`) otherwise. The choice is made by four
registries, each an ordered list of entries ``(name, matches, solve)``; the first entry whose
``matches`` accepts the subject wins:

==================  ================================  ==========================================
registry            subject                           entries (first match wins)
==================  ================================  ==========================================
:data:`WEIGHT`      the layer's divergence            ``softmax`` (the softmax head, ``None``),
                    (``None``: softmax head)          ``ridge`` (``weight_step == "ridge"``),
                                                      ``relu_fenchel``, ``fenchel_young``
                                                      (``act.fy`` is set)
:data:`COUPLING`    the next layer's divergence       ``softmax``, ``l2``, ``relu_fenchel``,
                                                      ``fenchel_young``
:data:`STATE`       the layer's own divergence        ``box`` (``act.box``), ``fenchel_young``
                                                      (an interior ``act.fy``), ``simplex``
:data:`OUTPUT`      the output head                   ``simplex_xent``, ``squared_box``
==================  ================================  ==========================================

A new fast path is one :meth:`Registry.register` call plus its kernel, for example::

    from cvx_lifted import paths

    @paths.WEIGHT.register("my_glm", lambda act: getattr(act, "my_flag", False))
    def my_weight_step(act, X, T, W0, b0, lam, rho, options):
        ...
        return paths.StepResult((W, b), info)

Every ``solve`` returns a :class:`~cvx_lifted.kernels.StepResult` (re-exported here), the
result type of the kernels themselves: the block's answer and, here, the :meth:`summary
<cvx_lifted.kernels.StepResult.summary>` of how the kernel ended (worst iterations, residual,
convergence), which the training loop merges over chunks (:func:`merge_info`) into its history.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from cvx_lifted import kernels, threads
from cvx_lifted._validation import caller_stacklevel
from cvx_lifted.kernels import StepResult
from cvx_lifted.kernels._result import merge_info, summarise_info

__all__ = [
    "COUPLING",
    "OUTPUT",
    "STATE",
    "WEIGHT",
    "Registry",
    "map_rows",
    "StepOptions",
    "StepResult",
    "merge_info",
    "summarise_info",
]

FloatArray = NDArray[np.floating[Any]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StepOptions:
    """Tolerances and helpers a fast path may use (set by :class:`~cvx_lifted.bcd.BCDSolver`).

    Attributes
    ----------
    weight_tol, weight_max_iter : float, int
        Stopping rule of the iterative weight steps.
    state_tol : float
        Tolerance of the state steps.
    ridge : callable
        ``ridge(alpha) -> kernels.Ridge``: the (cached) factor of the layer input's Gram plus
        ``alpha I``.
    """

    weight_tol: float
    weight_max_iter: int
    state_tol: float
    ridge: Callable[[float], kernels.Ridge]


class Registry(Generic[F]):
    """An ordered table of fast paths for one kind of block.

    Parameters
    ----------
    kind : str
        What the registry chooses (used in messages).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: list[tuple[str, Callable[[Any], bool], F]] = []

    def register(
        self, name: str, matches: Callable[[Any], bool], *, first: bool = False
    ) -> Callable[[F], F]:
        """Register ``solve`` (the decorated function) for subjects that ``matches`` accepts.

        Parameters
        ----------
        name : str
            Entry name, unique in the registry (re-registering replaces the entry).
        matches : callable
            ``matches(subject) -> bool``.
        first : bool, default=False
            Put the entry before the existing ones (it then takes precedence).

        Returns
        -------
        callable
            The decorator: it registers the function and returns it unchanged.
        """

        def add(solve: F) -> F:
            self._entries = [e for e in self._entries if e[0] != name]
            entry = (name, matches, solve)
            if first:
                self._entries.insert(0, entry)
            else:
                self._entries.append(entry)
            return solve

        return add

    def find(self, subject: Any) -> tuple[str, F] | None:
        """Return ``(name, solve)`` of the first entry that matches ``subject``, or ``None``."""
        for name, matches, solve in self._entries:
            if matches(subject):
                return name, solve
        return None

    def names(self) -> list[str]:
        """Entry names in order of precedence."""
        return [name for name, _, _ in self._entries]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


WEIGHT: Registry[Callable[..., StepResult]] = Registry("weight step")
"""Weight steps: ``solve(act, X, T, W0, b0, lam, rho, options) -> StepResult((W, b), info)``;
they need the ridge penalty with ``rho > 0``."""

COUPLING: Registry[Callable[..., Any]] = Registry("state-step coupling")
"""Couplings to the next layer: ``make(following, T) -> kernels coupling``."""

STATE: Registry[Callable[..., StepResult]] = Registry("state step")
"""State steps: ``solve(act, U, W, b, coupling, lam_prev, lam_next, Z0, options) ->
StepResult(Z, info)``."""

OUTPUT: Registry[Callable[..., StepResult]] = Registry("output step")
"""Output steps: ``solve(head, U, Y, lam) -> StepResult(Z)``."""


def _fy(act: Any) -> Any:
    return getattr(act, "fy", None)


# ------------------------------------------------------------------------------ weight steps
def _f64(a: Any) -> NDArray[np.float64]:
    return np.asarray(a, dtype=np.float64)


@WEIGHT.register("softmax", lambda act: act is None)
def _softmax_weight(
    act: Any, X: FloatArray, T: FloatArray, W0: FloatArray, b0: FloatArray, lam: float,
    rho: float, options: StepOptions,
) -> StepResult:  # fmt: skip
    # softmax is invariant to a common shift of the (unpenalised) biases: the kernel returns the
    # minimiser with zero-mean biases, as every other path does
    alpha = X.shape[0] * rho
    ridge = options.ridge(alpha)
    return kernels.softmax_step(
        X, T, alpha, _f64(W0), _f64(b0), ridge=ridge, tol=options.weight_tol,
        max_iter=options.weight_max_iter, ops=ridge.ops,
    ).summarised()  # fmt: skip


@WEIGHT.register("ridge", lambda act: act is not None and act.weight_step == "ridge")
def _ridge_weight(
    act: Any, X: FloatArray, T: FloatArray, W0: FloatArray, b0: FloatArray, lam: float,
    rho: float, options: StepOptions,
) -> StepResult:  # fmt: skip
    return StepResult(options.ridge(X.shape[0] * rho / lam).solve(T))


@WEIGHT.register("relu_fenchel", lambda act: act is not None and act.weight_step == "relu_fenchel")
def _relu_fenchel_weight(
    act: Any, X: FloatArray, T: FloatArray, W0: FloatArray, b0: FloatArray, lam: float,
    rho: float, options: StepOptions,
) -> StepResult:  # fmt: skip
    alpha = X.shape[0] * rho / lam
    return kernels.relu_fenchel_step(
        options.ridge(alpha), T, alpha, _f64(W0), _f64(b0), tol=options.weight_tol,
        max_iter=options.weight_max_iter,
    ).summarised()  # fmt: skip


@WEIGHT.register("fenchel_young", lambda act: act is not None and _fy(act) is not None)
def _fy_weight(
    act: Any, X: FloatArray, T: FloatArray, W0: FloatArray, b0: FloatArray, lam: float,
    rho: float, options: StepOptions,
) -> StepResult:  # fmt: skip
    alpha = X.shape[0] * rho / lam
    return kernels.fy_step(
        options.ridge(alpha), T, alpha, _f64(W0), _f64(b0), act.fy, tol=options.weight_tol,
        max_iter=options.weight_max_iter,
    ).summarised()  # fmt: skip


# ------------------------------------------------------------------------------ couplings
COUPLING.register("softmax", lambda act: act is None)(lambda act, T: kernels.SoftmaxCoupling(T))
COUPLING.register("l2", lambda act: act is not None and act.weight_step == "ridge")(
    lambda act, T: kernels.L2Coupling(T)
)
COUPLING.register(
    "relu_fenchel", lambda act: act is not None and act.weight_step == "relu_fenchel"
)(lambda act, T: kernels.ReluFenchelCoupling(T))
COUPLING.register("fenchel_young", lambda act: act is not None and _fy(act) is not None)(
    lambda act, T: kernels.FYCoupling(act.fy, T)
)


# ------------------------------------------------------------------------------ state steps
@STATE.register("box", lambda act: act.box is not None)
def _box_state(
    act: Any, U: FloatArray, W: FloatArray, b: FloatArray, coupling: Any, lam_prev: float,
    lam_next: float, Z0: FloatArray, options: StepOptions,
) -> StepResult:  # fmt: skip
    lo, hi = act.box
    return kernels.state_step(
        U, W, b, coupling, lam_prev, lam_next, lo, hi, Z0=Z0, tol=options.state_tol
    ).summarised()


@STATE.register("fenchel_young", lambda act: _fy(act) is not None and not act.fy.closed)
def _fy_state(
    act: Any, U: FloatArray, W: FloatArray, b: FloatArray, coupling: Any, lam_prev: float,
    lam_next: float, Z0: FloatArray, options: StepOptions,
) -> StepResult:  # fmt: skip
    return kernels.fy_state_step(
        U, W, b, coupling, lam_prev, lam_next, act.fy, Z0=Z0, tol=options.state_tol
    ).summarised()


@STATE.register("simplex", lambda act: act.kernel == "simplex")
def _simplex_state(
    act: Any, U: FloatArray, W: FloatArray, b: FloatArray, coupling: Any, lam_prev: float,
    lam_next: float, Z0: FloatArray, options: StepOptions,
) -> StepResult:  # fmt: skip
    return kernels.simplex_state_step(
        U, W, b, coupling, lam_prev, lam_next, Z0=Z0, tol=options.state_tol
    ).summarised()


# ------------------------------------------------------------------------------ output steps
@OUTPUT.register("simplex_xent", lambda head: head.name == "simplex_xent")
def _simplex_xent_output(head: Any, U: FloatArray, Y: FloatArray, lam: float) -> StepResult:
    return kernels.simplex_xent_prox(U, Y, lam).summarised()


@OUTPUT.register(
    "squared_box",
    lambda head: (
        head.name == "squared" and head.activation is not None and head.activation.box is not None
    ),
)
def _squared_box_output(head: Any, U: FloatArray, Y: FloatArray, lam: float) -> StepResult:
    lo, hi = head.activation.box
    return StepResult(np.clip((Y + lam * U) / (1.0 + lam), lo, hi))


# ------------------------------------------------------------------------------ rows
def map_rows(
    step: Callable[..., StepResult], *arrays: Any, chunk_rows: int, dtype: Any, **consts: Any
) -> tuple[FloatArray, dict[str, float]]:
    """Run a row-separable step over equal chunks of at most ``chunk_rows`` rows.

    ``step(*row_chunks, **consts)`` returns a summarised :class:`StepResult` whose value has the
    shape of the first array's chunk. The chunks run through
    :func:`cvx_lifted.threads.map_row_parts` (on measured worker threads during training; a
    chunk's own chunks then run in order on its thread), which bounds the memory of the step to a
    few chunks.

    Parameters
    ----------
    step : callable
        A row-separable step, such as :func:`state_rows` or :func:`output_rows`.
    *arrays : ndarray
        Arrays with one row per row of the data, cut into the same chunks.
    chunk_rows : int
        The most rows per chunk.
    dtype : dtype
        Floating type of the returned values.
    **consts
        Passed to every call of ``step``.

    Returns
    -------
    tuple
        The values stacked in ``dtype``, and the chunks' summaries merged.
    """
    first = arrays[0]
    out = np.empty(first.shape, dtype=dtype)
    m = first.shape[0]

    def work(start: int, stop: int) -> dict[str, float]:
        rows = slice(start, stop)
        result = step(*(a[rows] for a in arrays), **consts)
        out[rows] = result.value
        return result.info

    infos = threads.map_row_parts(
        work, m, -(-m // chunk_rows), key=f"rows:{getattr(step, '__name__', 'step')}"
    )
    info: dict[str, float] = {}
    for chunk_info in infos:
        info = merge_info(info, chunk_info)
    return out, info


def state_rows(
    U: FloatArray, Z: FloatArray, T: FloatArray, *, solve: Callable[..., StepResult],
    couple: Callable[..., Any], act: Any, following: Any, W: FloatArray, b: FloatArray,
    lam_prev: float, lam_next: float, options: StepOptions,
) -> StepResult:  # fmt: skip
    """Run a :data:`STATE` entry ``solve`` on some rows, with the coupling ``couple`` makes."""
    return solve(act, U, W, b, couple(following, T), lam_prev, lam_next, Z, options)


def output_rows(
    U: FloatArray, Y: FloatArray, *, solve: Callable[..., StepResult], head: Any, lam: float
) -> StepResult:
    """Run an :data:`OUTPUT` entry ``solve`` on some rows."""
    return solve(head, U, Y, lam)


def no_ridge(alpha: float) -> kernels.Ridge:
    """Stand in for :attr:`StepOptions.ridge` where no step needs one (the row-separable ones)."""
    raise RuntimeError("a row-separable step asked for a ridge factor")


def require_fast(network: Any, missing: list[str]) -> None:
    """Raise for ``backend="numpy"`` when blocks of ``network`` have no fast path (``missing``).

    Parameters
    ----------
    network : LiftedNetwork
    missing : list of str
        The blocks (``"W0"``, ``"X1"``, ``"output"``, ...) without one; nothing is raised if empty.

    Raises
    ------
    ValueError
        Naming the blocks, the network's activations and head, and the backends that can solve
        them.
    """
    if missing:
        raise ValueError(
            f"backend='numpy' has no fast path for block(s) {missing} of this network "
            f"(activations {[a.name for a in network.activations]}, output "
            f"{network.head.name!r}); use backend='auto' to solve those blocks with compiled "
            "CVXPY problems, or backend='cvxpy'."
        )


def warn_slow_weight_steps(network: Any, chosen: dict[str, str], backend: str) -> None:
    """Warn when rho = 0 alone sends a weight step from its fast path to CVXPY (training only).

    Parameters
    ----------
    network : LiftedNetwork
    chosen : dict of str to str
        The path of each block (``BCDSolver.paths``).
    backend : str
        The solver's backend.
    """
    if backend != "auto" or network.penalty != "l2":
        return
    slow = [
        f"W{layer}"
        for layer in range(network.n_layers)
        if chosen.get(f"W{layer}") == "cvxpy"
        and WEIGHT.find(network.divergence_of(layer)) is not None
        and not network.rho[layer] > 0
    ]
    if slow:
        warnings.warn(
            f"rho = 0 leaves the weight step(s) {slow} without their fast ridge-type path, so "
            "compiled CVXPY problems solve them (much slower); a small rho such as 1e-8 keeps "
            "the fast path.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def warn_unconverged_states(history: Any) -> None:
    """Warn when a state or output step stopped at its iteration cap in some sweep (training).

    Weight steps take a fixed number of iterations by design; a state step that does not
    converge means a badly scaled problem (large targets make large weights, and the state
    step's Newton systems ill-conditioned). The answers are still the best found, and no block
    raises the objective.

    Parameters
    ----------
    history : BCDHistory
        The fit's history (its ``residuals``: ``"<block>.converged"`` per sweep).
    """
    worst: dict[str, float] = {}
    for sweep in history.residuals:
        for key, value in sweep.items():
            block, _, what = key.partition(".")
            if what == "converged" and block[0] != "W" and value < 1.0:
                worst[block] = max(worst.get(block, 0.0), sweep.get(f"{block}.residual", np.nan))
    if worst:
        residuals = ", ".join(f"{block} {value:.2g}" for block, value in sorted(worst.items()))
        warnings.warn(
            f"the state step(s) {sorted(worst)} stopped at their iteration cap in some sweeps "
            f"(largest residuals: {residuals}): the problem is badly scaled; standardise the "
            "inputs and the targets (large targets make large weights).",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
