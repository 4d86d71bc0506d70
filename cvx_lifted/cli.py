# SPDX-License-Identifier: Apache-2.0
"""The ``cvx-lifted`` command line (also ``python -m cvx_lifted``).

Subcommands::

    cvx-lifted list                      the activation catalogue
    cvx-lifted verify [NAME ...]         convex program vs closed form, per activation
    cvx-lifted demo                      lifted network vs MLPClassifier on scikit-learn's digits
    cvx-lifted train DATA --out M.cvxl   train on a data set name or a CSV/NPZ file, save a model
    cvx-lifted predict M.cvxl DATA       labels, probabilities or values for new rows

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
listed in :data:`COMMANDS`; a new subcommand (e.g. ``reproduce``) is one more entry. Exit codes:
0 on success, 1 when a check fails (``verify``) or training fails, 2 on bad input, with a
one-line reason on stderr (no traceback; ``--traceback`` shows it). Bad input is found before
any work where it can be: output paths (``--out``, ``--plot``, ``-o``) are checked for
writability before training or predicting, CSV files are parsed with the :mod:`csv` module
(quoted cells; a cell spanning lines is refused), and magnitudes that would overflow are
refused with the column to rescale.

Every subcommand takes ``--import MODULE`` (repeatable, also before the subcommand): the module
is imported first, e.g. the one that registers a custom activation, so that ``predict`` can load
a model that uses it. Activations of installed packages (entry-point group
``cvx_lifted.activations``, see :mod:`cvx_lifted.plugins`) need no ``--import``.

Defaults (activation, λ, ρ, sweeps, heads) come from :mod:`cvx_lifted.defaults`, as for
:class:`~cvx_lifted.network.LiftedNetwork` and the estimators. ``train`` differs from a direct
fit by design in one respect: it standardises the features of CSV/NPZ files (and regression
targets) for training and folds the scaling back into the saved weights (``--no-standardize``
turns this off).

The module stays thin: reading CSV/NPZ files, splitting and guessing the task live in
:mod:`cvx_lifted.io` (:func:`~cvx_lifted.io.read_table`, :func:`~cvx_lifted.io.infer_task`,
:func:`~cvx_lifted.io.train_validation_split`); the few helpers defined here that a Python user may
want too (:func:`run_demo`, :func:`fold_input_standardization`,
:func:`fold_output_standardization`, :func:`plot_training`) have docstrings of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from cvx_lifted import defaults
from cvx_lifted._version import __version__

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "COMMANDS",
    "DemoResult",
    "build_parser",
    "fold_input_standardization",
    "fold_output_standardization",
    "main",
    "plot_training",
    "run_demo",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Defaults of ``cvx-lifted demo`` and ``cvx-lifted train``: those of cvx_lifted.defaults, shared
# with LiftedNetwork and the estimators. Measured on digits (seed 0, hidden 100, lam=1,
# rho=1e-3, simplex_xent, 1 BLAS thread; CPU seconds of training on a busy 2-core machine):
# relu_fenchel 0.978 test accuracy after 10 sweeps (0.7 s), 0.982 after 20 (1.2 s), 0.984 after
# 40 (2.8 s); softmax_xent head 0.976 after 20 (2.1 s); relu 0.940 after 10 (0.5 s), no better
# later.
DEMO_HIDDEN: tuple[int, ...] = defaults.HIDDEN
DEMO_ACTIVATION = defaults.ACTIVATION
DEMO_OUTPUT = defaults.CLASSIFIER_HEAD
DEMO_LAM = defaults.LAM
DEMO_RHO = defaults.RHO
DEMO_SWEEPS = defaults.SWEEPS
DEMO_SEED = defaults.SEED
DEMO_PLOT = "cvx_lifted_demo.png"

TRAIN_HIDDEN: tuple[int, ...] = defaults.HIDDEN
TRAIN_ACTIVATION = defaults.ACTIVATION
TRAIN_LAM = defaults.LAM
TRAIN_RHO = defaults.RHO
TRAIN_SWEEPS = defaults.SWEEPS
TRAIN_TOL = defaults.TOL


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: reason (see --help)``."""

    def error(self, message: str) -> NoReturn:  # noqa: D102
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _one_line(message: object) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    out = ""
    for part in (line.strip() for line in str(message).splitlines()):
        if not part:
            continue
        if out:
            out += " " if out.endswith((".", ":", ";", ",")) else "; "
        out += part
    return out


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


# ---------------------------------------------------------------------------------- list
def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="show the activation catalogue",
        description="Show every registered activation: divergence, domain, closed form, "
        "convexity class and fast kernel.",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")


def catalogue_rows() -> list[tuple[str, ...]]:
    """Return one row per registered activation: name, divergence, domain, closed form, ..."""
    from cvx_lifted.activations import ACTIVATIONS

    rows = []
    for name, cls in ACTIVATIONS.items():
        rows.append(
            (
                name,
                cls.divergence_text,
                cls.domain_text,
                cls.formula,
                str(cls.convexity),
                str(cls.cone),
                cls.kernel or "-",
            )
        )
    return rows


def _run_list(args: argparse.Namespace) -> int:
    from cvx_lifted.plugins import load_activation_plugins

    try:
        load_activation_plugins()  # list what installed packages provide too
    except ValueError as exc:
        print(f"cvx-lifted list: warning: {_one_line(exc)}", file=sys.stderr)
    header = ("name", "divergence D(u, z)", "domain", "closed form", "convexity", "cone", "kernel")
    rows = catalogue_rows()
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for r in rows:
            # a pipe splits a table cell even inside backticks in GitHub Markdown: escape it
            cells = ((f"`{c}`" if i < 4 else c).replace("|", "\\|") for i, c in enumerate(r))
            print("| " + " | ".join(cells) + " |")
        return EXIT_OK
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


# ---------------------------------------------------------------------------------- verify
def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="solve each activation's convex program and compare with its closed form",
        description="Solve argmin_z D(u, z) for standard inputs (random rows, a log-spaced grid "
        "of +-1e-6 to +-1e3, and 0, +-1e-8, +-50, domain boundaries) with a compiled CVXPY "
        "problem and compare with the closed form. Exits with 1 when any activation misses its "
        "tolerance, and with 2 when a named activation has a closed form only (nothing to "
        "verify).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="activations (default: all)")
    p.add_argument(
        "--accuracy",
        choices=("tight", "default"),
        default="tight",
        help="solver tolerances (default: tight)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="rows per compiled problem")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")


def _run_verify(args: argparse.Namespace) -> int:
    import json

    from cvx_lifted.network import resolve_activation
    from cvx_lifted.verify import format_reports, verify_all

    closed_form_only = []
    for name in args.names:
        try:
            act = resolve_activation(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not act.has_program:
            closed_form_only.append(act.name)
    if closed_form_only:
        names = ", ".join(closed_form_only)
        raise UsageError(
            f"{names} {'has' if len(closed_form_only) == 1 else 'have'} a closed form only (no "
            "convex program), so there is nothing to verify it against; 'cvx-lifted list' shows "
            "which activations have a program."
        )
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    reports = verify_all(args.names or None, accuracy=args.accuracy, batch_size=args.batch_size)
    if args.json:
        print(
            json.dumps(
                [
                    {"activation": r[0], "skipped": r[1]} if isinstance(r, tuple) else r.as_dict()
                    for r in reports
                ],
                indent=2,
            )
        )
    else:
        print(format_reports(reports))
    failed = [r for r in reports if not isinstance(r, tuple) and not r.passed]
    if not args.json:
        n = sum(not isinstance(r, tuple) for r in reports)
        skipped = [r[0] for r in reports if isinstance(r, tuple)]
        note = (
            f" ({len(skipped)} skipped, closed form only: {', '.join(skipped)})" if skipped else ""
        )
        print(f"\n{n - len(failed)}/{n} activations within tolerance{note}.")
    return EXIT_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------------------- shared
def _add_training_options(
    p: argparse.ArgumentParser,
    *,
    hidden: Sequence[int],
    activation: str,
    lam: float,
    rho: float,
    sweeps: int,
    seed: int,
    threads: int,
) -> None:
    """Add the options that ``demo`` and ``train`` share."""
    p.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        default=list(hidden),
        metavar="H",
        help=f"hidden layer widths, e.g. --hidden 300 100 (default: {' '.join(map(str, hidden))})",
    )
    p.add_argument(
        "--activation",
        default=activation,
        help=f"hidden activation, a name from 'cvx-lifted list' (default: {activation})",
    )
    p.add_argument(
        "--lam",
        type=_positive_float,
        default=lam,
        help=f"divergence weight lambda (default: {lam:g})",
    )
    p.add_argument(
        "--rho", type=_nonneg_float, default=rho, help=f"weight decay rho (default: {rho:g})"
    )
    p.add_argument(
        "--sweeps",
        type=_positive_int,
        default=sweeps,
        help=f"maximum number of BCD sweeps (default: {sweeps})",
    )
    p.add_argument("--seed", type=int, default=seed, help=f"random seed (default: {seed})")
    p.add_argument(
        "--backend",
        choices=("auto", "numpy", "cvxpy"),
        default=defaults.BACKEND,
        help="block solvers: fast NumPy kernels where they exist ('auto'), only those ('numpy'), "
        "or compiled CVXPY problems for every block ('cvxpy', slow; small data only)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=threads,
        metavar="N",
        help="BLAS threads (0: automatic, one thread for small problems, which run fastest "
        f"that way) (default: {threads})",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="report each sweep with a progress bar, one line per sweep, or not at all "
        "(default: a bar on a terminal, lines otherwise)",
    )


def _blas_threads(n: int) -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS threads to ``n`` (no limit for ``n <= 0``)."""
    if n <= 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n)


def _progress_mode(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bar" if sys.stderr.isatty() else "lines"


def _fit(
    network: LiftedNetwork,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    progress: str,
    **options: Any,
) -> Any:
    """Train ``network``, reporting the objective per sweep as a bar or as printed lines."""
    printed = 0

    def report(history: Any, upto: int) -> None:
        nonlocal printed
        while printed <= upto and printed < len(history.objective):
            line = f"  sweep {printed:>3}  objective {history.objective[printed]:.6g}"
            if history.validation:
                line += f"  validation {history.validation[printed]:.4f}"
            print(line, flush=True)
            printed += 1

    def callback(sweep: int, partial: Any) -> None:
        report(partial.history, sweep)

    mode = _progress_mode(progress)
    result = network.fit(
        X,
        Y,
        verbose=mode == "bar",
        callback=callback if mode == "lines" else None,
        **options,
    )
    if mode == "lines":
        report(result.history, len(result.history.objective) - 1)
    return result


def _accuracy(network: LiftedNetwork, X: np.ndarray, y_index: np.ndarray) -> float:
    return float(np.mean(network.predict(X).argmax(axis=1) == y_index))


def plot_training(
    history: Any,
    path: str | os.PathLike[str],
    *,
    accuracies: dict[str, float] | None = None,
    title: str = "",
) -> Path:
    """Save a PNG of the objective per sweep (and validation score, and final accuracies).

    Parameters
    ----------
    history : BCDHistory
        Training history (``objective`` and optionally ``validation`` per sweep).
    path : str or os.PathLike
        PNG file to write.
    accuracies : dict of str to float, optional
        Bar chart of final scores by model name, drawn in a second panel.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If matplotlib, a dependency of cvx-lifted, is missing (a broken install).
    """
    from matplotlib.figure import Figure

    from cvx_lifted.plot import plot_accuracy, plot_objective

    out = Path(path).expanduser()
    panels = 1 + bool(history.validation) + bool(accuracies)
    fig = Figure(figsize=(5.5 * panels, 4.2), layout="constrained")
    plot_objective(
        history, ax=fig.add_subplot(1, panels, 1), logy=True, title="objective per BCD sweep"
    )
    if history.validation:
        plot_accuracy(
            history,
            ax=fig.add_subplot(1, panels, 2),
            ylabel="validation score",
            title="validation score per sweep",
        )
    if accuracies:
        bx = fig.add_subplot(1, panels, panels)
        names = list(accuracies)
        values = [accuracies[n] for n in names]
        bars = bx.bar(names, values, color=["tab:blue", "tab:gray", "tab:green"][: len(names)])
        for bar, v in zip(bars, values, strict=True):
            bx.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom")
        bx.set_ylim(0, 1.05)
        bx.set_ylabel("test accuracy")
        bx.set_title("test accuracy")
    if title:
        fig.suptitle(title)
    fig.savefig(out, dpi=110)
    return out


def _maybe_plot(path: Path, history: Any, **kw: Any) -> None:
    try:
        written = plot_training(history, path, **kw)
    except ImportError:
        print("plot: matplotlib (a dependency of cvx-lifted) is missing, no plot")
        return
    print(f"plot saved to {written}")


def _check_output_path(path: str | os.PathLike[str], flag: str) -> Path:
    """Check, before any work, that ``path`` can be written; raise UsageError saying why not."""
    import tempfile

    out = Path(path).expanduser()
    if out.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name inside it.")
    folder = out.parent
    if not folder.exists():
        raise UsageError(
            f"cannot write {flag} {path}: the folder {folder} does not exist (create it first)."
        )
    if not folder.is_dir():
        raise UsageError(f"cannot write {flag} {path}: {folder} is not a folder.")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".cvx-lifted-write-test-")
    except OSError as exc:
        raise UsageError(
            f"cannot write {flag} {path}: the folder {folder} is not writable "
            f"({exc.strerror or exc})."
        ) from None
    os.close(fd)
    os.unlink(probe)
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"cannot write {flag} {path}: the file exists and is read-only.")
    return out


def _check_output_folder(folder: Path, flag: str) -> None:
    """Check that ``folder`` is, or can be created as, a writable folder (nothing is created)."""
    existing = folder.expanduser()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot use {flag} {folder}: {existing} is not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot use {flag} {folder}: {existing} is not writable.")


# ---------------------------------------------------------------------------------- demo
@dataclass
class DemoResult:
    """What :func:`run_demo` measured.

    Attributes
    ----------
    network : LiftedNetwork
        The trained lifted network.
    history : BCDHistory
        Its training history.
    stop_reason : str
        Why training stopped (``"tol"``, ``"max_iter"``, ...).
    lifted_accuracy, lifted_train_accuracy : float
        Test and train accuracy of the lifted network (feed-forward rule).
    mlp_accuracy : float
        Test accuracy of scikit-learn's ``MLPClassifier`` on the same split.
    mlp_converged : bool
        Whether the MLP converged within its ``max_iter`` epochs.
    mlp_n_iter, mlp_max_iter : int
        Epochs the MLP ran, and its limit.
    lifted_seconds, mlp_seconds : float
        Training wall times.
    n_train, n_test, n_features, n_classes : int
        Shape of the problem.
    """

    network: LiftedNetwork
    history: Any
    stop_reason: str
    lifted_accuracy: float
    lifted_train_accuracy: float
    mlp_accuracy: float
    mlp_converged: bool
    mlp_n_iter: int
    mlp_max_iter: int
    lifted_seconds: float
    mlp_seconds: float
    n_train: int
    n_test: int
    n_features: int
    n_classes: int
    extra: dict[str, Any] = field(default_factory=dict)


def run_demo(
    *,
    hidden: Sequence[int] = DEMO_HIDDEN,
    activation: str = DEMO_ACTIVATION,
    output: str = DEMO_OUTPUT,
    lam: float = DEMO_LAM,
    rho: float = DEMO_RHO,
    sweeps: int = DEMO_SWEEPS,
    seed: int = DEMO_SEED,
    backend: str = "auto",
    threads: int = 1,
    progress: str = "none",
    announce: Callable[[str], None] | None = None,
) -> DemoResult:
    """Train a lifted network and an ``MLPClassifier`` on scikit-learn's digits; compare them.

    Both see the same stratified 75/25 split of the 1,797 8x8 digits (pixels scaled to [0, 1])
    and the same hidden widths; the MLP keeps scikit-learn's defaults otherwise (adam, 200
    epochs) with ``random_state=seed``.

    Parameters
    ----------
    hidden : sequence of int
        Hidden layer widths of both networks.
    activation : str
        Hidden activation of the lifted network.
    output : str
        Output head of the lifted network (``"simplex_xent"``, ``"softmax_xent"``).
    lam, rho : float
        Divergence weight and weight decay of the lifted network.
    sweeps : int
        Maximum number of BCD sweeps (training stops earlier when the objective stalls).
    seed : int
        Seed of the initialisation of both networks.
    backend : {"auto", "numpy", "cvxpy"}
        Block solvers of the lifted network.
    threads : int
        BLAS threads for both trainings (``0``: the lifted solver's automatic choice and the
        library default for the MLP).
    progress : {"bar", "lines", "none", "auto"}
        How each sweep is reported.
    announce : callable, optional
        Called with a line of text before each phase.

    Returns
    -------
    DemoResult
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from cvx_lifted.datasets import load_digits
    from cvx_lifted.network import LiftedNetwork

    say = announce or (lambda _line: None)
    X_train, y_train, X_test, y_test = load_digits()
    n_classes = int(y_train.max()) + 1
    sizes = [X_train.shape[1], *hidden, n_classes]
    net = LiftedNetwork(sizes, activation=activation, output=output, lam=lam, rho=rho)
    say(
        f"lifted network {sizes}, activation {activation}, output {output}, lam={lam:g}, "
        f"rho={rho:g}, up to {sweeps} sweeps, seed {seed}"
    )
    t0 = time.perf_counter()
    result = _fit(
        net,
        X_train,
        np.eye(n_classes)[y_train],
        progress=progress,
        max_iter=sweeps,
        backend=backend,
        random_state=seed,
        blas_threads=threads if threads > 0 else "auto",
    )
    lifted_seconds = time.perf_counter() - t0
    say(f"MLPClassifier(hidden_layer_sizes={tuple(hidden)}, random_state={seed}), defaults")
    mlp = MLPClassifier(hidden_layer_sizes=tuple(hidden), random_state=seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, _blas_threads(threads):
        warnings.simplefilter("always", ConvergenceWarning)
        mlp.fit(X_train, y_train)
    mlp_seconds = time.perf_counter() - t0
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return DemoResult(
        network=net,
        history=result.history,
        stop_reason=result.stop_reason,
        lifted_accuracy=_accuracy(net, X_test, y_test),
        lifted_train_accuracy=_accuracy(net, X_train, y_train),
        mlp_accuracy=float(mlp.score(X_test, y_test)),
        mlp_converged=not warned and mlp.n_iter_ < mlp.max_iter,
        mlp_n_iter=int(mlp.n_iter_),
        mlp_max_iter=int(mlp.max_iter),
        lifted_seconds=lifted_seconds,
        mlp_seconds=mlp_seconds,
        n_train=X_train.shape[0],
        n_test=X_test.shape[0],
        n_features=X_train.shape[1],
        n_classes=n_classes,
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a lifted network on scikit-learn's digits and compare with MLPClassifier",
        description="Train a lifted network by block-coordinate descent on scikit-learn's 8x8 "
        "digits (bundled, no files needed) with a fixed seed, print the objective per sweep, "
        "then the test accuracy next to scikit-learn's MLPClassifier on the same split (same "
        "hidden widths, its defaults otherwise), and save the plot cvx_lifted_demo.png.",
    )
    _add_training_options(
        p,
        hidden=DEMO_HIDDEN,
        activation=DEMO_ACTIVATION,
        lam=DEMO_LAM,
        rho=DEMO_RHO,
        sweeps=DEMO_SWEEPS,
        seed=DEMO_SEED,
        threads=1,
    )
    p.add_argument(
        "--output",
        choices=("simplex_xent", "softmax_xent"),
        default=DEMO_OUTPUT,
        help=f"output head of the lifted network (default: {DEMO_OUTPUT})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help=f"folder for the plot {DEMO_PLOT} (default: current folder; created if missing)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not save a plot")


def _demo_from_args(args: argparse.Namespace) -> DemoResult:
    return run_demo(
        hidden=args.hidden,
        activation=args.activation,
        output=args.output,
        lam=args.lam,
        rho=args.rho,
        sweeps=args.sweeps,
        seed=args.seed,
        backend=args.backend,
        threads=args.threads,
        progress=args.progress,
        announce=lambda line: print(line, flush=True),
    )


def _run_demo(args: argparse.Namespace) -> int:
    if not args.no_plot:
        _check_output_folder(args.out, "--out")
    print("cvx-lifted demo: scikit-learn digits (8x8 images, pixels / 16), stratified 75/25 split")
    res = _demo_from_args(args)
    print(
        f"{res.n_train} train / {res.n_test} test images, {res.n_features} features, "
        f"{res.n_classes} classes"
    )
    print(
        f"lifted network: {len(res.history.objective) - 1} sweeps in {res.lifted_seconds:.1f} s "
        f"(stopped: {res.stop_reason}), train accuracy {res.lifted_train_accuracy:.4f}"
    )
    note = (
        f"converged after {res.mlp_n_iter} epochs"
        if res.mlp_converged
        else f"did NOT converge within max_iter={res.mlp_max_iter} epochs "
        "(ConvergenceWarning silenced)"
    )
    print(f"MLPClassifier: {res.mlp_seconds:.1f} s, {note}")
    print("test accuracy:")
    print(f"  lifted network (feed-forward rule)  {res.lifted_accuracy:.4f}")
    print(f"  scikit-learn MLPClassifier          {res.mlp_accuracy:.4f}")
    if not args.no_plot:
        args.out.mkdir(parents=True, exist_ok=True)
        _maybe_plot(
            args.out / DEMO_PLOT,
            res.history,
            accuracies={"lifted": res.lifted_accuracy, "MLPClassifier": res.mlp_accuracy},
            title=f"digits: lifted network {list(res.network.layer_sizes)} vs MLPClassifier",
        )
    return EXIT_OK


# ---------------------------------------------------------------------------------- train
def fold_input_standardization(
    network: LiftedNetwork, mean: np.ndarray, scale: np.ndarray
) -> LiftedNetwork:
    r"""Make a network trained on standardised inputs accept raw inputs (exactly).

    A network trained on :math:`(x - \mu)/s` computes :math:`W_0 (x - \mu)/s + b_0` in its first
    layer; with :math:`W_0' = W_0\,\mathrm{diag}(1/s)` and :math:`b_0' = b_0 - W_0' \mu` it
    computes the same pre-activation from :math:`x`. Both the feed-forward and the lifted
    prediction rule only see that pre-activation, so predictions are unchanged.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network (modified in place).
    mean, scale : numpy.ndarray, shape (n_inputs,)
        The :math:`\mu` and :math:`s > 0` used in training.

    Returns
    -------
    LiftedNetwork
        ``network``.
    """
    W, b = network.weights[0], network.biases[0]
    W_new = W / np.asarray(scale, dtype=W.dtype)[None, :]
    b_new = b - W_new @ np.asarray(mean, dtype=W.dtype)
    network.set_weights([W_new, *network.weights[1:]], [b_new, *network.biases[1:]])
    return network


def fold_output_standardization(
    network: LiftedNetwork, mean: np.ndarray, scale: np.ndarray
) -> LiftedNetwork:
    r"""Make a regression network trained on standardised targets predict raw targets.

    With an identity output the prediction is :math:`W_L x + b_L`; targets standardised as
    :math:`(y - \mu)/s` are undone by :math:`W_L' = \mathrm{diag}(s) W_L` and
    :math:`b_L' = s \odot b_L + \mu`.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network with the ``"squared"`` head and identity output (modified in place).
    mean, scale : numpy.ndarray, shape (n_outputs,)
        The :math:`\mu` and :math:`s > 0` used in training.

    Returns
    -------
    LiftedNetwork
        ``network``.

    Raises
    ------
    ValueError
        If the output is not the identity (the rescaling would change the model).
    """
    act = network.head.activation
    if network.head.name != "squared" or act is None or act.name != "identity":
        raise ValueError("only an identity 'squared' output can absorb a target rescaling.")
    W, b = network.weights[-1], network.biases[-1]
    s = np.asarray(scale, dtype=W.dtype)
    W_new = W * s[:, None]
    b_new = b * s + np.asarray(mean, dtype=W.dtype)
    network.set_weights([*network.weights[:-1], W_new], [*network.biases[:-1], b_new])
    return network


def _standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[~(scale > 1e-12 * max(1.0, float(np.abs(X).max())))] = 1.0
    return mean, scale


@dataclass
class _TrainData:
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    feature_names: list[str] | None
    target_name: str | None
    source: str
    is_dataset: bool


def _is_dataset_name(text: str) -> bool:
    from cvx_lifted.datasets import DATASETS

    return not Path(text).exists() and text.strip().lower().replace("_", "-") in DATASETS


def _header_flag(choice: str) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[choice]


def _training_data(args: argparse.Namespace) -> _TrainData:
    from cvx_lifted.io import read_table

    if _is_dataset_name(args.data):
        from cvx_lifted.datasets import load_dataset

        kw: dict[str, Any] = {}
        if args.data_dir is not None:
            kw["path"] = args.data_dir
        X, y, X_test, y_test = load_dataset(args.data, **kw)
        return _TrainData(X, y, X_test, y_test, None, None, args.data, True)
    path = Path(args.data)
    if not path.exists():
        from cvx_lifted.datasets import DATASETS

        raise UsageError(
            f"{args.data!r} is neither a data file nor a dataset name "
            f"(datasets: {', '.join(DATASETS)})."
        )
    target: str | int = -1 if args.target is None else args.target
    table = read_table(path, target=target, header=_header_flag(args.header))
    assert table.y is not None
    return _TrainData(
        table.X, table.y, None, None, table.feature_names, table.target_name, str(path), False
    )


def _regression_scores(Y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    Y = Y.reshape(P.shape)
    ss_res = float(np.sum((Y - P) ** 2))
    ss_tot = float(np.sum((Y - Y.mean(axis=0)) ** 2))
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "rmse": math.sqrt(ss_res / Y.size),
    }


def _add_train(sub: argparse._SubParsersAction) -> None:
    from cvx_lifted.datasets import DATASETS

    p = sub.add_parser(
        "train",
        help="train a lifted network on a data set or a CSV/NPZ file and save it",
        description="Train a lifted network by block-coordinate descent and save it as a model "
        f"file. DATA is a dataset name ({', '.join(DATASETS)}; trained on its training split, "
        "scored on its test split) or a file: CSV (comma, tab or semicolon; header detected; the "
        "last column is the target unless --target) or NPZ (arrays X and y). Class labels "
        "(numbers or strings) are stored in the model, so 'predict' returns them.",
    )
    p.add_argument("data", metavar="DATA", help="dataset name or CSV/NPZ file")
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="MODEL",
        help="model file to write (.cvxl is appended when the name has no extension)",
    )
    p.add_argument("--target", metavar="COL", help="CSV target column: name or 0-based index")
    p.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV has a header row (default: detected)",
    )
    p.add_argument(
        "--task",
        choices=("auto", "classify", "regress"),
        default="auto",
        help="default: classify when the target holds strings or integers, regress otherwise",
    )
    _add_training_options(
        p,
        hidden=TRAIN_HIDDEN,
        activation=TRAIN_ACTIVATION,
        lam=TRAIN_LAM,
        rho=TRAIN_RHO,
        sweeps=TRAIN_SWEEPS,
        seed=defaults.SEED,
        threads=0,
    )
    p.add_argument(
        "--output",
        choices=("simplex_xent", "softmax_xent", "squared"),
        help="output head (default: simplex_xent to classify, squared to regress)",
    )
    p.add_argument(
        "--tol",
        type=_nonneg_float,
        default=TRAIN_TOL,
        help=f"stop when a sweep decreases the objective by less than this (relative; "
        f"default: {TRAIN_TOL:g})",
    )
    p.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="hold out this fraction of the training rows, scored after every sweep (default: 0)",
    )
    p.add_argument("--time-limit", type=_positive_float, metavar="SECONDS", help="wall-time budget")
    p.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="standardise features (and regression targets) for training, folded back into the "
        "saved weights so the model takes raw data (default: on for files, off for the named "
        "datasets, already scaled to [0, 1])",
    )
    p.add_argument("--plot", metavar="PNG", help="save the objective per sweep as a PNG")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the data set's folder of IDX files, or a folder holding mnist/, mnist-10k/, "
        "fashion-mnist/ like $CVX_LIFTED_DATA (default: $CVX_LIFTED_DATA)",
    )


def _fit_train(
    net: LiftedNetwork,
    X: np.ndarray,
    Y: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None,
    args: argparse.Namespace,
) -> Any:
    return _fit(
        net,
        X,
        Y,
        progress=args.progress,
        max_iter=args.sweeps,
        tol=args.tol,
        backend=args.backend,
        random_state=args.seed,
        time_limit=args.time_limit,
        validation=val,
        blas_threads=args.threads if args.threads > 0 else "auto",
    )


def _run_train(args: argparse.Namespace) -> int:
    from cvx_lifted.io import MAX_EXACT_INTEGER, infer_task, save_network, train_validation_split
    from cvx_lifted.modelfile import DEFAULT_SUFFIX
    from cvx_lifted.network import LiftedNetwork, resolve_activation

    # everything that can be checked is checked before training: outputs, then the activation
    model_path = Path(args.out).expanduser()
    if not model_path.suffix and not model_path.is_dir():
        model_path = model_path.with_name(model_path.name + DEFAULT_SUFFIX)
    _check_output_path(model_path, "--out")
    if args.plot:
        _check_output_path(args.plot, "--plot")
    resolve_activation(args.activation)
    data = _training_data(args)
    y = np.asarray(data.y)
    task = args.task if args.task != "auto" else infer_task(y)
    how = "" if args.task != "auto" else " (detected; override with --task)"
    extra: dict[str, Any] = {"task": task, "source": data.source}
    if task == "classify":
        if y.ndim != 1:
            raise UsageError(f"classification needs a 1-D target, got shape {y.shape}.")
        if (
            y.dtype.kind == "f"
            and np.all(np.abs(y) <= MAX_EXACT_INTEGER)
            and np.all(y == np.round(y))
        ):
            y = y.astype(np.int64)  # exact: |y| <= 2**53
        classes, y_index = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise UsageError(f"the target has a single class ({classes[0]!r}); nothing to learn.")
        output = args.output or "simplex_xent"
        Y = np.eye(classes.size)[y_index]
        target_for_split = y_index
        extra["classes"] = classes.tolist()
        print(f"task: classify{how}, {classes.size} classes")
    else:
        if y.dtype.kind not in "biuf":
            raise UsageError(
                "the target holds non-numeric values, which cannot be regressed; "
                "use --task classify."
            )
        output = args.output or "squared"
        if output != "squared":
            raise UsageError(f"--output {output} is for classification; regression uses squared.")
        Y = y.reshape(y.shape[0], -1).astype(np.float64)
        target_for_split = Y
        print(f"task: regress{how}, {Y.shape[1]} target(s)")
    X_tr, T_tr, X_val, T_val = train_validation_split(
        data.X,
        target_for_split,
        args.validation_fraction,
        random_state=args.seed,
        stratify=task == "classify",
    )
    standardize = args.standardize if args.standardize is not None else not data.is_dataset
    mean, scale = _standardizer(X_tr) if standardize else (None, None)

    def prep(X: np.ndarray) -> np.ndarray:
        return (X - mean) / scale if mean is not None else X

    if task == "classify":
        Y_tr = np.eye(classes.size)[T_tr]
        val = (prep(X_val), T_val) if X_val is not None else None
        y_mean = y_scale = None
    else:
        Y_tr = T_tr
        y_mean, y_scale = _standardizer(Y_tr) if standardize else (None, None)
        if y_mean is not None:
            Y_tr = (Y_tr - y_mean) / y_scale
        val = None
        if X_val is not None:
            val = (prep(X_val), (T_val - y_mean) / y_scale if y_mean is not None else T_val)
    n_out = Y.shape[1]
    sizes = [data.X.shape[1], *args.hidden, n_out]
    net = LiftedNetwork(
        sizes, activation=args.activation, output=output, lam=args.lam, rho=args.rho
    )
    print(
        f"training {sizes} ({args.activation}, output {output}) on {X_tr.shape[0]} rows"
        + (f", validating on {X_val.shape[0]}" if X_val is not None else "")
        + f", up to {args.sweeps} sweeps"
    )
    t0 = time.perf_counter()
    result = _fit_train(net, prep(X_tr), Y_tr, val, args)
    seconds = time.perf_counter() - t0
    if mean is not None:
        fold_input_standardization(net, mean, scale)
    if y_mean is not None:
        fold_output_standardization(net, y_mean, y_scale)
    extra["preprocessing"] = (
        "features standardised for training; folded into layer 0, the model takes raw features"
        if mean is not None
        else "none"
    )
    print(
        f"trained in {seconds:.1f} s: {result.n_iter} sweeps, stopped by {result.stop_reason}, "
        f"objective {result.history.objective[0]:.6g} -> {result.history.objective[-1]:.6g}"
    )
    splits = [("train", X_tr, T_tr), ("validation", X_val, T_val)]
    if data.X_test is not None and data.y_test is not None:
        if task == "classify":
            known = np.isin(data.y_test, classes)
            splits.append(
                ("test", data.X_test[known], np.searchsorted(classes, data.y_test[known]))
            )
        else:
            splits.append(("test", data.X_test, data.y_test.reshape(len(data.y_test), -1)))
    metrics: dict[str, dict[str, float]] = {}
    for name, Xs, Ts in splits:
        if Xs is None or Ts is None or len(Xs) == 0:
            continue
        if task == "classify":
            metrics[name] = {"accuracy": _accuracy(net, Xs, Ts)}
            print(f"{name} accuracy: {metrics[name]['accuracy']:.4f}")
        else:
            metrics[name] = _regression_scores(Ts, net.predict(Xs))
            print(f"{name} R^2: {metrics[name]['r2']:.4f}, RMSE: {metrics[name]['rmse']:.6g}")
    extra.update(
        metrics=metrics,
        feature_names=data.feature_names,
        target_name=data.target_name,
        n_features=int(data.X.shape[1]),
    )
    written = save_network(net, args.out, extra=extra)
    print(f"model saved to {written}")
    if args.plot:
        _maybe_plot(Path(args.plot), result.history, title=f"cvx-lifted train {data.source}")
    return EXIT_OK


# ---------------------------------------------------------------------------------- predict
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict with a saved model on a CSV/NPZ file",
        description="Predict with a model saved by 'train' (or LiftedNetwork.save). DATA is a CSV "
        "(features only, or any columns when it has a header naming the model's features) or "
        "an NPZ with an array X. Prints CSV with a header line: the original class labels for "
        "classifiers, values for regressors, or one probability column per class with --proba.",
    )
    p.add_argument("model", metavar="MODEL", help="model file (.cvxl)")
    p.add_argument("data", metavar="DATA", help="CSV or NPZ file with the rows to predict")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--proba", action="store_true", help="class probabilities instead of labels (classifiers)"
    )
    p.add_argument(
        "--lifted",
        action="store_true",
        help="use the lifted prediction rule (minimise the penalties over the states, paper eq. "
        "12) instead of the feed-forward rule",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "numpy", "cvxpy"),
        default="auto",
        help="block solvers of the lifted rule (default: auto)",
    )
    p.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV has a header row (default: detected)",
    )


def _format_value(value: Any) -> str:
    """Format a label or a number for CSV output (floats in their shortest exact form)."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _run_predict(args: argparse.Namespace) -> int:
    import csv

    from cvx_lifted.io import load_model, read_table

    if args.output:
        _check_output_path(args.output, "-o/--output")
    model = load_model(args.model)
    net, extra = model.network, model.extra
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    if not net.is_fitted:
        raise UsageError(f"{model.path} holds an untrained network (no weights).")
    names = extra.get("feature_names")
    table = read_table(
        args.data,
        target=None,
        features=names if isinstance(names, list) and len(names) == n_in else None,
        header=_header_flag(args.header),
    )
    if table.X.shape[1] != n_in:
        hint = " (drop the target column?)" if table.X.shape[1] == n_in + 1 else ""
        raise UsageError(
            f"{args.data} has {table.X.shape[1]} feature column(s), the model expects {n_in}{hint}."
        )
    task = extra.get("task") or ("classify" if net.head.classification else "regress")
    if args.proba and task != "classify":
        raise UsageError("--proba needs a classifier; this model is a regressor.")
    out = net.predict_lifted(table.X, backend=args.backend) if args.lifted else net.predict(table.X)
    out = np.asarray(out)
    classes = extra.get("classes")
    if not isinstance(classes, list) or len(classes) != n_out:
        classes = list(range(n_out))
    target = extra.get("target_name") or ("label" if task == "classify" else "prediction")
    if args.proba:
        header = [_format_value(c) for c in classes]
        rows = [[_format_value(v) for v in row] for row in out]
    elif task == "classify":
        header = [target]
        rows = [[_format_value(classes[k])] for k in out.argmax(axis=1)]
    else:
        header = [target] if n_out == 1 else [f"{target}_{k}" for k in range(n_out)]
        rows = [[_format_value(v) for v in row] for row in out]
    if args.output:
        with open(args.output, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {len(rows)} prediction(s) to {args.output}")
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return EXIT_OK


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    from cvx_lifted.experiments import add_reproduce_parser

    add_reproduce_parser(sub)


def _run_reproduce(args: argparse.Namespace) -> int:
    from cvx_lifted.experiments import run_reproduce

    return run_reproduce(args)


COMMANDS: dict[
    str,
    tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]],
] = {
    "list": (_add_list, _run_list),
    "verify": (_add_verify, _run_verify),
    "demo": (_add_demo, _run_demo),
    "train": (_add_train, _run_train),
    "predict": (_add_predict, _run_predict),
    "reproduce": (_add_reproduce, _run_reproduce),
}
"""Subcommand name -> (add its parser, run it). Add an entry to add a subcommand."""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cvx-lifted`` argument parser."""
    parser = _Parser(
        prog="cvx-lifted",
        description="Lifted neural networks: activations as convex programs, trained by "
        "block-coordinate descent.",
    )
    parser.add_argument("--version", action="version", version=f"cvx-lifted {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of errors"
    )
    import_help = (
        "import MODULE before running (repeatable), e.g. the module that registers a custom "
        "activation with cvx_lifted.custom_activation; the current folder is searched too"
    )
    parser.add_argument(
        "--import",
        dest="imports_global",
        action="append",
        default=[],
        metavar="MODULE",
        help=import_help,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    for subparser in sub.choices.values():
        subparser.add_argument(
            "--import",
            dest="imports",
            action="append",
            default=[],
            metavar="MODULE",
            help=import_help,
        )
    return parser


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input: missing or malformed files, unknown names, bad values."""
    from cvx_lifted.exceptions import CvxLiftedError

    return (UsageError, CvxLiftedError, ValueError, OSError, NotImplementedError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a check or training fails, 2 on bad input.
    """
    from cvx_lifted.exceptions import SolverFailedError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _, run = COMMANDS[args.command]
    prefix = f"cvx-lifted {args.command}: error:"
    try:
        modules = [*getattr(args, "imports_global", []), *getattr(args, "imports", [])]
        if modules:
            from cvx_lifted.plugins import import_modules

            import_modules(modules)
        return run(args)
    except BrokenPipeError:  # pragma: no cover - e.g. `cvx-lifted list | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except SolverFailedError as exc:
        if args.traceback:
            raise
        print(f"{prefix} {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except _bad_input_errors() as exc:
        if args.traceback:
            raise
        message = _one_line(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
        print(f"{prefix} {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"cvx-lifted {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
