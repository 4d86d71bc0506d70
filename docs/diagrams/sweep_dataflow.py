# SPDX-License-Identifier: Apache-2.0
"""Draw the data flow through one block-coordinate-descent sweep (the architecture page's figure).

Run by the documentation build (matplotlib's ``plot`` directive); ``python
docs/diagrams/sweep_dataflow.py out.png`` draws it into a file.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

STAGE = "#dbe9f6"  # the three blocks of a sweep
FAST = "#e3f1de"  # solved by a NumPy kernel
COMPILED = "#fbeed5"  # solved by a compiled CVXPY problem
DATA = "#eeeeee"  # arrays and results
EDGE = "#4d4d4d"


def box(
    ax: Axes,
    x: float,
    y: float,
    w: float,
    h: float,
    text: str,
    color: str,
    size: float = 8.5,
    weight: str = "normal",
) -> None:
    """Draw a rounded box with centred text.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw (data coordinates).
    x, y : float
        Lower-left corner.
    w, h : float
        Width and height.
    text : str
        Label (matplotlib mathtext allowed).
    color : str
        Fill colour.
    size : float, optional
        Font size in points.
    weight : str, optional
        Font weight.
    """
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", fc=color, ec=EDGE, lw=1.0
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, fontweight=weight)


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    rad: float = 0.0,
    style: str = "-|>",
    offset: tuple[float, float] = (0.0, 0.12),
) -> None:
    """Draw an arrow, optionally labelled at its middle.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    start, end : tuple of float
        End points in data coordinates.
    label : str, optional
        Text near the middle of the arrow.
    rad : float, optional
        Curvature (0 is straight).
    style : str, optional
        Arrow style.
    offset : tuple of float, optional
        Position of the label relative to the middle of the arrow.
    """
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=13,
            lw=1.2,
            color=EDGE,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=2,
            shrinkB=2,
        )
    )
    if label:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, label, ha="center", va="bottom", fontsize=7.5, style="italic")


def draw() -> Figure:
    """Draw the diagram.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (also pyplot's current figure, for the ``plot`` directive).
    """
    fig = plt.figure(figsize=(13.5, 7.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 27)
    ax.set_ylim(0, 14.8)
    ax.axis("off")

    # ---------------------------------------------------------------- inputs and start
    box(
        ax,
        0.3,
        11.3,
        4.4,
        2.6,
        "data\n$X_0 = X$  ($m \\times n_0$, rows are samples)\n$Y$  (one-hot labels or targets)",
        DATA,
    )
    box(
        ax,
        0.3,
        7.2,
        4.4,
        3.1,
        "start (or warm start)\nweights $W_l, b_l$: random init\n"
        "states $X_1 \\dots X_L$: forward pass\n$X_{L+1}$: one output step",
        DATA,
    )
    arrow(ax, (2.5, 11.3), (2.5, 10.3))

    # ---------------------------------------------------------------- the sweep
    ax.add_patch(
        FancyBboxPatch(
            (5.4, 0.5),
            16.0,
            13.8,
            boxstyle="round,pad=0.02,rounding_size=0.3",
            fc="white",
            ec=EDGE,
            lw=1.2,
            ls="--",
        )
    )
    ax.text(
        13.4,
        13.75,
        "one sweep of BCDSolver: every block minimised exactly, so the objective never increases",
        ha="center",
        fontsize=10,
        fontweight="bold",
    )
    stages = [
        (
            "1. weight step, every layer\n$l = 0 \\dots L$ (independent)",
            "$\\min_{W_l, b_l}\\ \\lambda_{l+1} D_l(X_l W_l^\\top + b_l,\\ X_{l+1})"
            " + \\rho_l \\pi(W_l)$",
            "reads $X_l, X_{l+1}$\nwrites $W_l, b_l$",
        ),
        (
            "2. state step, hidden layers\n$l = 1 \\dots L$, in turn",
            "$\\min_{X_l}\\ \\lambda_l D_{l-1}(U_{l-1}, X_l)$\n"
            "$+\\ \\lambda_{l+1} D_l(X_l W_l^\\top + b_l,\\ X_{l+1})$",
            "reads $U_{l-1}, W_l, b_l, X_{l+1}$\nwrites $X_l$",
        ),
        (
            "3. output step\n(heads with an output state)",
            "$\\min_{X_{L+1}}\\ \\mathrm{Loss}(Y, X_{L+1})$\n"
            "$+\\ \\lambda_{L+1} D_L(U_L, X_{L+1})$",
            "reads $U_L, Y$\nwrites $X_{L+1}$",
        ),
    ]
    fast = [
        "ridge regression with a reused\nCholesky factor ($\\ell_2$ divergences);\n"
        "column-wise L-BFGS (relu_fenchel);\nGLM / softmax regression",
        "box QP per row, shared Hessian:\nprojected or semismooth Newton\n"
        "($q \\leq 32$), FISTA otherwise;\ndamped Newton (Fenchel-Young)",
        "closed form (squared loss);\nsimplex cross-entropy by Newton\n"
        "on a certified bracket\n(Appendix A, corrected)",
    ]
    width, gap, left, lane = 4.9, 0.35, 5.75, 0.75
    for i, ((title, problem, io), kernel) in enumerate(zip(stages, fast, strict=True)):
        x = left + i * (width + gap)
        box(ax, x, 9.4, width, 3.9, "", STAGE)
        ax.text(x + width / 2, 12.75, title, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x + width / 2, 11.15, problem, ha="center", va="center", fontsize=8.5)
        ax.text(x + width / 2, 9.95, io, ha="center", va="center", fontsize=8, color="#333333")
        inner = width - lane
        box(ax, x, 4.9, inner, 3.4, "fast path: cvx_lifted.kernels\n\n" + kernel, FAST, size=8)
        arrow(ax, (x + inner / 2, 9.4), (x + inner / 2, 8.3), "has a kernel", offset=(0.0, -0.1))
        down = x + inner + lane / 2
        arrow(ax, (down, 9.4), (down, 4.1))
        ax.text(down + 0.12, 6.6, "otherwise", rotation=90, ha="left", va="center", fontsize=7.5)
        if i:
            arrow(ax, (x - gap, 11.35), (x, 11.35))
    span = 3 * width + 2 * gap
    box(
        ax,
        left,
        1.7,
        span,
        2.4,
        "compiled path: cvx_lifted.compile, cvx_lifted.blocks\n"
        "the block as a CVXPY problem, built once per layer with parameters (DPP) and re-solved "
        "with new parameter values\n(OSQP, Clarabel, ECOS or SCS by cone); "
        "an answer is kept only if the objective did not rise",
        COMPILED,
        size=8,
    )
    ax.text(
        left + span / 2,
        1.05,
        'backend="auto": each block takes the fast path when one exists, else the compiled one;'
        " history.paths records which",
        ha="center",
        va="center",
        fontsize=8,
        style="italic",
    )
    arrow(ax, (4.7, 8.75), (left, 11.35), rad=-0.25)

    # ---------------------------------------------------------------- record and stop
    box(
        ax,
        22.4,
        10.2,
        4.4,
        3.1,
        "record (BCDHistory)\nobjective $J$ and its terms:\nloss, one divergence per layer,\n"
        "penalty; block times; validation",
        DATA,
    )
    box(
        ax,
        22.4,
        6.0,
        4.4,
        2.9,
        "stop?\nrelative decrease < tol,\nmax_iter, time_limit, callback\n"
        "(a rise never counts as converged)",
        DATA,
    )
    box(
        ax,
        22.4,
        1.0,
        4.4,
        3.4,
        "BCDResult\nnetwork (weights in place),\nstates $X_1 \\dots X_{L+1}$,\n"
        "history, n_iter, stop_reason",
        DATA,
    )
    last = left + 2 * (width + gap) + width
    arrow(ax, (last, 11.35), (22.4, 11.75))
    arrow(ax, (24.6, 10.2), (24.6, 8.9))
    arrow(ax, (24.6, 6.0), (24.6, 4.4), "yes", offset=(0.35, -0.1))
    arrow(ax, (22.4, 7.45), (21.4, 7.45))
    ax.text(21.9, 7.6, "no: next\nsweep", ha="center", va="bottom", fontsize=7.5, style="italic")
    return fig


if __name__ == "__main__":
    figure = draw()
    if len(sys.argv) > 1:
        figure.savefig(sys.argv[1], dpi=110)
