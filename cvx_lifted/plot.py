# SPDX-License-Identifier: Apache-2.0
r"""Plots for training histories, divergence landscapes and solver timings (matplotlib).

matplotlib is a dependency of cvx-lifted (plots are how the package teaches), imported only when
a plot is drawn, so that ``import cvx_lifted`` stays fast. Every function draws on ``ax`` when
one is given, otherwise on a new :class:`matplotlib.figure.Figure` created without
:mod:`matplotlib.pyplot`, so nothing depends on (or opens) a GUI backend and nothing accumulates
in pyplot's figure registry; ``path`` saves the figure. Each function returns the
:class:`~matplotlib.axes.Axes` it drew on (``ax.figure`` is the
figure; in Jupyter, end a cell with ``ax.figure`` to show it).

=================================  ==============================================================
function                           draws
=================================  ==============================================================
:func:`plot_objective`             total training objective per sweep and each of its terms
:func:`plot_accuracy`              validation metric (and any other curves) per sweep
:func:`plot_divergence_landscape`  :math:`D(u, z)` over a grid, with the grid argmin overlaid on
                                   the closed form :math:`\phi(u)`
:func:`plot_resolve_timing`        re-solving a compiled (DPP) problem vs rebuilding it
=================================  ==============================================================

Examples
--------
>>> import numpy as np
>>> from cvx_lifted import LiftedNetwork
>>> from cvx_lifted.plot import plot_objective
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((30, 2)); Y = np.maximum(X[:, :1], 0)
>>> net = LiftedNetwork([2, 3, 1], lam=1.0, rho=1e-3)
>>> _ = net.fit(X, Y, max_iter=3, random_state=0)
>>> ax = plot_objective(net)            # doctest: +SKIP
>>> ax.figure.savefig("objective.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.activations.base import require_program

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "plot_accuracy",
    "plot_divergence_landscape",
    "plot_objective",
    "plot_resolve_timing",
]

PathLike = str | os.PathLike[str]

_INSTALL_HINT = 'pip install "cvx-lifted[plot]"'


def _require_matplotlib() -> Any:
    """Import matplotlib lazily, with an install hint when it is missing."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (checks the install is usable)
    except ImportError as exc:
        raise ImportError(
            f"cvx_lifted.plot needs matplotlib, which is not installed: {_INSTALL_HINT} "
            f"(or pip install matplotlib)."
        ) from exc
    return matplotlib


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """Return ``ax`` or the axes of a new pyplot-free figure."""
    _require_matplotlib()
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _finish(ax: Axes, path: PathLike | None) -> Axes:
    if path is not None:
        # the top-level figure: the axes' own, or the one holding their subfigure
        ax.figure.figure.savefig(os.fspath(path), dpi=120)
    return ax


def _as_history(obj: Any) -> Any:
    """Return the :class:`~cvx_lifted.bcd.BCDHistory` held by ``obj`` (or ``obj`` itself).

    Accepted: a ``BCDHistory``, its ``as_dict()``, a ``BCDResult`` (``.history``), a fitted
    estimator (``.history_``) or a trained :class:`~cvx_lifted.LiftedNetwork` (``.history``).
    """
    if isinstance(obj, Mapping):
        if "objective" not in obj:
            raise ValueError(
                "a history dict needs an 'objective' list (as in BCDHistory.as_dict()); "
                f"got keys {sorted(obj)}."
            )
        return SimpleNamespace(
            objective=list(obj["objective"]),
            terms=list(obj.get("terms", [])),
            validation=list(obj.get("validation", [])),
        )
    objective = getattr(obj, "objective", None)
    if objective is not None and not callable(objective) and hasattr(obj, "terms"):
        return obj
    for attr in ("history_", "history"):
        if hasattr(obj, attr):
            inner = getattr(obj, attr)
            if inner is None:
                raise ValueError(
                    f"{type(obj).__name__}.{attr} is None: train it first (fit) to get a history."
                )
            return _as_history(inner)
    if callable(getattr(obj, "fit", None)):
        raise ValueError(f"this {type(obj).__name__} has no history_ yet: call fit first.")
    raise TypeError(
        "expected a BCDHistory, a BCDResult, a fitted estimator (history_) or a trained "
        f"LiftedNetwork (history), got {type(obj).__name__}."
    )


def _term_label(key: str) -> str:
    if key.startswith("divergence_"):
        return f"divergence, layer {key.removeprefix('divergence_')}"
    return {"loss": "loss", "penalty": "weight penalty"}.get(key, key)


def _integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _use_log(total: ArrayLike, logy: bool | None) -> bool:
    """Log scale when the total objective is positive and spans at least a decade.

    Terms that reach zero (a loss at round-off) or are negative do not decide: they are simply
    not drawn where they are not positive, so that the total's fall after the first sweep stays
    visible instead of flattening into a line.
    """
    if logy is not None:
        return bool(logy)
    flat = np.ravel(np.asarray(total, dtype=np.float64))
    flat = flat[np.isfinite(flat)]
    if flat.size == 0 or np.any(flat <= 0):
        return False
    return bool(flat.max() / flat.min() >= 10.0)


def _step_label(history: Any) -> str:
    """Return the x-axis label: epochs for a mini-batch history, sweeps otherwise."""
    if "minibatch" in dict(getattr(history, "paths", None) or {}).values():
        return "mini-batch BCD epoch (0 = initial point)"
    return "BCD sweep (0 = initial point)"


def plot_objective(
    history: Any,
    ax: Axes | None = None,
    terms: bool = True,
    *,
    logy: bool | None = None,
    path: PathLike | None = None,
    title: str | None = "Lifted training objective",
) -> Axes:
    """Plot the total objective per BCD sweep and, optionally, each of its terms.

    Sweep 0 is the initial point (Xavier weights, feed-forward states). Block-coordinate descent
    minimises every block exactly, so the total never increases; individual terms may.

    Parameters
    ----------
    history : BCDHistory, BCDResult, LiftedNetwork, estimator or dict
        The training history, or anything holding one: ``result.history``, a trained network's
        ``.history``, a fitted estimator's ``history_``, or ``BCDHistory.as_dict()``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure by default.
    terms : bool, default=True
        Also draw each term of ``history.terms`` (loss, each layer's divergence, penalty).
    logy : bool, optional
        Logarithmic y axis; by default when the total objective is positive and spans at least
        a decade (terms that are not positive are then left out where they are not).
    path : str or os.PathLike, optional
        Save the figure there (format from the suffix).
    title : str or None, default="Lifted training objective"
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        One line for the total (label ``"total"``) and one per term.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError, TypeError
        If ``history`` holds no history.
    """
    hist = _as_history(history)
    total = np.asarray(hist.objective, dtype=np.float64)
    if total.size == 0:
        raise ValueError("the history is empty: no objective values to plot.")
    curves: dict[str, np.ndarray] = {}
    if terms and hist.terms:
        keys = [k for k in hist.terms[0] if k != "total"]
        for key in keys:
            curves[key] = np.array([t.get(key, np.nan) for t in hist.terms], dtype=np.float64)
    ax = _new_axes(ax, (6.4, 4.0))
    log = _use_log(total, logy)
    sweeps = np.arange(total.size)

    def shown(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, v, np.nan) if log else v

    ax.plot(sweeps, shown(total), "k-o", lw=2.0, ms=3.5, label="total")
    for key, values in curves.items():
        ax.plot(sweeps, shown(values), "--", lw=1.2, label=_term_label(key))
    if log:
        ax.set_yscale("log")
        # terms that reach round-off (e.g. a loss of 1e-16) would squash the rest: show at most
        # eight decades below the smallest total
        values = np.concatenate([total, *curves.values()])
        values = values[np.isfinite(values) & (values > 0)]
        floor = max(float(values.min()), float(np.nanmin(total[total > 0])) * 1e-8)
        ax.set_ylim(bottom=floor / 2)
    _integer_ticks(ax)
    ax.set_xlabel(_step_label(hist))
    ax.set_ylabel("objective")
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(ax, path)


def plot_accuracy(
    history_or_dict: Any,
    extra: Mapping[str, Sequence[float]] | None = None,
    *,
    ax: Axes | None = None,
    ylabel: str = "accuracy",
    label: str = "validation",
    path: PathLike | None = None,
    title: str | None = "Score per sweep",
) -> Axes:
    """Plot a validation (or training) metric per BCD sweep, plus any extra curves.

    Parameters
    ----------
    history_or_dict : BCDHistory, BCDResult, LiftedNetwork, estimator or dict
        A history with ``validation`` scores (drawn as ``label``; recorded when
        training is given ``validation=(X_val, Y_val)``), or a dict ``name -> list of float``
        of curves, each indexed by sweep.
    extra : dict of str to list of float, optional
        More curves by name, e.g. ``{"train": train_scores}``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure by default.
    ylabel : str, default="accuracy"
        Label of the y axis (e.g. ``"R^2"`` for regression).
    label : str, default="validation"
        Legend name of the history's ``validation`` curve: say ``"test"`` when the rows given
        to ``fit(..., validation=...)`` were the test set.
    path : str or os.PathLike, optional
        Save the figure there.
    title : str or None, default="Score per sweep"
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        One line per curve, labelled with its name.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If there is nothing to plot.
    """
    curves: dict[str, list[float]] = {}
    xlabel = "BCD sweep (0 = initial point)"
    if isinstance(history_or_dict, Mapping) and "objective" not in history_or_dict:
        curves.update({str(k): list(v) for k, v in history_or_dict.items()})
    else:
        hist = _as_history(history_or_dict)
        xlabel = _step_label(hist)
        if hist.validation:
            curves[label] = list(hist.validation)
    curves.update({str(k): list(v) for k, v in (extra or {}).items()})
    curves = {k: v for k, v in curves.items() if len(v)}
    if not curves:
        raise ValueError(
            "nothing to plot: the history has no validation scores (train with "
            "validation=(X_val, Y_val)) and no extra curves were given."
        )
    ax = _new_axes(ax, (6.4, 4.0))
    for name, values in curves.items():
        ax.plot(
            np.arange(len(values)), np.asarray(values, dtype=np.float64), "-o", ms=3.5, label=name
        )
    _integer_ticks(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(ax, path)


# ---------------------------------------------------------------------- divergence landscape
def _pointwise(act: Activation) -> Callable[[float, float], tuple[float, float]]:
    """Return ``f(u, z) -> (D(u, z), domain violation)`` for scalar ``u`` and ``z``.

    Built-in activations evaluate with their NumPy ``value`` and ``domain_violation`` on 1x1
    arrays. Activations that only have the CVXPY declaration (custom ones) get it built once
    with 1x1 parameters, which is several times faster than rebuilding it per point.
    """
    numpy_value = type(act).value is not Activation.value
    numpy_domain = type(act).domain_violation is not Activation.domain_violation
    if numpy_value and numpy_domain:

        def f(u: float, z: float) -> tuple[float, float]:
            U, Z = np.array([[u]]), np.array([[z]])
            with np.errstate(all="ignore"):
                return float(act.value(U, Z)), float(act.domain_violation(U, Z))

        return f
    import cvxpy as cp

    pu, pz = cp.Parameter((1, 1)), cp.Parameter((1, 1))
    expr = act.divergence(pu, pz)
    cons = act.domain(pu, pz)

    def g(u: float, z: float) -> tuple[float, float]:
        pu.value, pz.value = np.array([[u]]), np.array([[z]])
        with np.errstate(all="ignore"):
            val = expr.value
            viol = 0.0
            for c in cons:
                v = c.violation()
                viol = max(viol, float(np.max(v)) if v is not None and np.size(v) else 0.0)
        return (np.inf if val is None else float(val)), viol

    return g


def divergence_grid(
    activation: Activation | str,
    u_range: tuple[float, float] = (-3.0, 3.0),
    z_range: tuple[float, float] | None = None,
    resolution: int | tuple[int, int] = (121, 121),
    *,
    domain_tol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ma.MaskedArray, np.ndarray]:
    r"""Evaluate :math:`D(u, z)` of a scalar (elementwise) activation on a grid.

    Parameters
    ----------
    activation : Activation or str
        An elementwise activation with a convex program (built-in or custom).
    u_range : tuple of float, default=(-3, 3)
        Range of the pre-activation :math:`u`.
    z_range : tuple of float, optional
        Range of :math:`z`; by default the range of the closed form over ``u_range``, widened
        by a quarter of its span on each side (so the domain boundary shows).
    resolution : int or tuple of int, default=(121, 121)
        Grid points along ``u`` and along ``z``.
    domain_tol : float, default=1e-12
        Points whose domain violation exceeds this are masked.

    Returns
    -------
    u : numpy.ndarray, shape (n_u,)
    z : numpy.ndarray, shape (n_z,)
    D : numpy.ma.MaskedArray, shape (n_z, n_u)
        Divergence values, masked outside the domain and where :math:`D` is not finite.
    z_argmin : numpy.ndarray, shape (n_u,)
        For each ``u``, the grid point ``z`` with the smallest unmasked :math:`D` (NaN when the
        whole column is masked). For a convex :math:`D` it is within one grid step of the exact
        argmin.

    Raises
    ------
    ValueError
        For activations that are not elementwise or have no convex program.
    """
    act = get_activation(activation)
    if not act.elementwise:
        raise ValueError(
            f"a divergence landscape needs a scalar (elementwise) activation; {act.name!r} "
            "couples the entries of a row."
        )
    require_program(act)  # NotRepresentableError with the reason
    if isinstance(resolution, tuple | list | np.ndarray):
        n_u, n_z = (int(n) for n in resolution)
    else:
        n_u = n_z = int(resolution)
    if n_u < 2 or n_z < 2:
        raise ValueError(f"resolution must be at least 2 points per axis, got {resolution!r}.")
    u_lo, u_hi = map(float, u_range)
    if not u_lo < u_hi:
        raise ValueError(f"u_range must be increasing, got {u_range!r}.")
    u = np.linspace(u_lo, u_hi, n_u)
    phi = np.asarray(act.act(u[:, None]), dtype=np.float64)[:, 0]
    if z_range is None:
        lo, hi = float(np.min(phi)), float(np.max(phi))
        pad = 0.25 * (hi - lo) if hi > lo else 1.0
        z_range = (lo - pad, hi + pad)
    z_lo, z_hi = map(float, z_range)
    if not z_lo < z_hi:
        raise ValueError(f"z_range must be increasing, got {z_range!r}.")
    z = np.linspace(z_lo, z_hi, n_z)
    f = _pointwise(act)
    D = np.empty((n_z, n_u))
    bad = np.zeros((n_z, n_u), dtype=bool)
    for j, uj in enumerate(u):
        for i, zi in enumerate(z):
            val, viol = f(float(uj), float(zi))
            D[i, j] = val
            bad[i, j] = viol > domain_tol or not np.isfinite(val)
    D_masked = np.ma.masked_array(np.where(bad, 0.0, D), mask=bad)
    z_argmin = np.full(n_u, np.nan)
    for j in range(n_u):
        col = D_masked[:, j]
        if not np.all(col.mask):
            z_argmin[j] = z[int(np.ma.argmin(col))]
    return u, z, D_masked, z_argmin


def plot_divergence_landscape(
    activation: Activation | str,
    u_range: tuple[float, float] = (-3.0, 3.0),
    z_range: tuple[float, float] | None = None,
    ax: Axes | None = None,
    *,
    resolution: int | tuple[int, int] = (121, 121),
    shift: bool = False,
    levels: int = 12,
    path: PathLike | None = None,
    title: str | None = None,
) -> Axes:
    r"""Draw :math:`D(u, z)` for scalar :math:`u, z` with its argmin over the closed form.

    The heatmap shows the divergence over the grid (masked, in grey, outside the domain), with
    contour lines; the closed form :math:`\phi(u)` is drawn as a line and the argmin over ``z``
    found numerically on the grid as dots on top of it. That the dots sit on the line (within a
    grid step) is the statement :math:`\phi(u) = \operatorname{argmin}_z D(u, z)`.

    Parameters
    ----------
    activation : Activation or str
        An elementwise activation with a convex program: a catalogue name (``"relu"``,
        ``"sigmoid"``, ...) or an instance, custom ones included.
    u_range : tuple of float, default=(-3, 3)
        Range of :math:`u` (horizontal axis).
    z_range : tuple of float, optional
        Range of :math:`z` (vertical axis); by default the range of :math:`\phi` widened by a
        quarter of its span on each side.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure by default.
    resolution : int or tuple of int, default=(121, 121)
        Grid points along ``u`` and ``z``. Built-ins evaluate in NumPy (~20 µs a point); custom
        activations evaluate their CVXPY expression (~0.2 ms a point), so lower it for those
        if speed matters.
    shift : bool, default=False
        Draw :math:`D(u, z) - \min_z D(u, z)` instead: this removes every term in :math:`u`
        alone (e.g. :math:`\Phi^*(u)`), which does not move the argmin.
    levels : int, default=12
        Number of contour lines (0 for none).
    path : str or os.PathLike, optional
        Save the figure there.
    title : str, optional
        Axes title; by default the activation's name and divergence.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines`` holds two lines: the closed form (label ``"closed form phi(u)"``) and the
        grid argmin (label ``"grid argmin"``); the heatmap is ``ax.collections[0]``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        For activations that are not elementwise.
    NotRepresentableError
        For activations with a closed form only (softplus, sin).
    """
    _require_matplotlib()
    act = get_activation(activation)
    u, z, D, z_argmin = divergence_grid(act, u_range, z_range, resolution)
    if shift:
        D = D - D.min(axis=0, keepdims=True)
    ax = _new_axes(ax, (6.4, 4.8))
    from matplotlib.colors import Normalize, PowerNorm
    from matplotlib.patches import Patch

    finite = D.compressed()
    norm: Any = Normalize()
    if finite.size and finite.min() >= 0 and finite.max() > 0:
        norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=float(finite.max()))
    ax.set_facecolor("0.85")
    mesh = ax.pcolormesh(u, z, D, shading="nearest", cmap="viridis", norm=norm, rasterized=True)
    if levels and finite.size and finite.max() > finite.min():
        # levels evenly spaced in the colour scale, so they stay dense near the valley
        t = np.linspace(0.0, 1.0, int(levels) + 2)[1:-1]
        if isinstance(norm, PowerNorm):
            values = float(finite.max()) * t**2
        else:
            values = float(finite.min()) + (float(finite.max()) - float(finite.min())) * t
        ax.contour(u, z, D, levels=values, colors="white", linewidths=0.5, alpha=0.6)
    cbar = ax.figure.colorbar(mesh, ax=ax)
    cbar.set_label("D(u, z) - min_z D(u, z)" if shift else "D(u, z)")
    phi = np.asarray(act.act(u[:, None]), dtype=np.float64)[:, 0]
    ax.plot(u, phi, color="tab:red", lw=2.0, label="closed form phi(u)")
    step = max(1, u.size // 40)
    ax.plot(u[::step], z_argmin[::step], "o", color="white", mec="black", ms=4, label="grid argmin")
    handles, labels = ax.get_legend_handles_labels()
    if np.any(D.mask):
        handles.append(Patch(facecolor="0.85", edgecolor="0.6", label="outside the domain"))
    ax.legend(handles=handles, fontsize="small", loc="upper left")
    ax.set_xlim(u[0], u[-1])
    ax.set_ylim(z[0], z[-1])
    ax.set_xlabel("u (pre-activation)")
    ax.set_ylabel("z (activation)")
    if title is None:
        text = act.divergence_text or "D(u, z)"
        title = f"{act.name}: D(u, z) = {text}"
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(ax, path)


# ---------------------------------------------------------------------- timings
def plot_resolve_timing(
    sizes: Sequence[float],
    resolve_seconds: Sequence[float],
    rebuild_seconds: Sequence[float],
    *,
    compile_seconds: Sequence[float] | None = None,
    ax: Axes | None = None,
    xlabel: str = "batch size (rows per problem)",
    path: PathLike | None = None,
    title: str | None = "Compile once, re-solve vs rebuild",
) -> Axes:
    """Plot the time of re-solving a compiled (DPP) problem against rebuilding it, per size.

    Parameters
    ----------
    sizes : sequence of float
        Problem sizes (e.g. batch sizes), the horizontal axis (log scale).
    resolve_seconds : sequence of float
        Seconds per solve when only ``Parameter.value`` changes between solves.
    rebuild_seconds : sequence of float
        Seconds per solve when a new ``cp.Problem`` is built (and canonicalised) every time.
    compile_seconds : sequence of float, optional
        One-off compile time of the parametrised problem, drawn dotted.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure by default.
    xlabel : str, default="batch size (rows per problem)"
        Label of the horizontal axis.
    path : str or os.PathLike, optional
        Save the figure there.
    title : str or None, default="Compile once, re-solve vs rebuild"
        Axes title; the range of the ratio rebuild / re-solve is appended.

    Returns
    -------
    matplotlib.axes.Axes
        Lines labelled ``"re-solve (compiled once)"``, ``"rebuild every time"`` and, if given,
        ``"one-off compile"``; each rebuild point is annotated with its ratio.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the sequences do not have the same length.
    """
    x = np.asarray(sizes, dtype=np.float64)
    fast = np.asarray(resolve_seconds, dtype=np.float64)
    slow = np.asarray(rebuild_seconds, dtype=np.float64)
    series = [fast, slow] + ([] if compile_seconds is None else [np.asarray(compile_seconds)])
    if x.size == 0 or any(s.shape != x.shape for s in series):
        raise ValueError(
            "sizes, resolve_seconds, rebuild_seconds (and compile_seconds) must be non-empty "
            f"sequences of the same length, got lengths {[np.size(s) for s in [x, *series]]}."
        )
    ax = _new_axes(ax, (6.4, 4.0))
    ms = 1e3
    ax.plot(x, fast * ms, "-o", color="tab:green", label="re-solve (compiled once)")
    ax.plot(x, slow * ms, "-s", color="tab:red", label="rebuild every time")
    if compile_seconds is not None:
        ax.plot(
            x,
            np.asarray(compile_seconds, dtype=np.float64) * ms,
            ":^",
            color="0.4",
            label="one-off compile",
        )
    ratio = slow / fast
    for xi, yi, r in zip(x, slow * ms, ratio, strict=True):
        ax.annotate(
            f"{r:.0f}x" if r >= 10 else f"{r:.1f}x",
            (xi, yi),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("milliseconds per solve (median)")
    if title:
        ax.set_title(f"{title}: {ratio.min():.1f}x to {ratio.max():.1f}x", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(ax, path)
