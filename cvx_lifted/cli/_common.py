# SPDX-License-Identifier: Apache-2.0
"""What the subcommands of ``cvx-lifted`` share: errors, argument types, checks, progress, plots.

Argument types (:func:`positive_int`, ...) turn a command-line string into a value or raise
:class:`argparse.ArgumentTypeError`; output checks (:func:`check_output_path`,
:func:`check_output_folder`) run before any work and raise :class:`UsageError`, which
:func:`cvx_lifted.cli.main` prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import numpy as np

from cvx_lifted import defaults
from cvx_lifted.threads import available_cores

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

SubParsers = argparse._SubParsersAction
"""The type of ``parser.add_subparsers()``, which each subcommand adds its parser to."""


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: reason (see --help)``."""

    def error(self, message: str) -> NoReturn:  # noqa: D102
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def one_line(message: object) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    out = ""
    for part in (line.strip() for line in str(message).splitlines()):
        if not part:
            continue
        if out:
            out += " " if out.endswith((".", ":", ";", ",")) else "; "
        out += part
    return out


def _integer_in(text: str, lo: int, hi: int | None, expected: str) -> int:
    """Parse ``text`` as an integer in ``[lo, hi]`` (``hi=None``: no upper end), or fail."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """Argument type: an integer >= 1."""
    return _integer_in(text, 1, None, "a positive integer")


def non_negative_int(text: str) -> int:
    """Argument type: an integer >= 0."""
    return _integer_in(text, 0, None, "an integer >= 0")


def random_seed(text: str) -> int:
    """Argument type: a random seed, an integer in [0, 2**32) (what NumPy and scikit-learn take)."""
    return _integer_in(text, 0, 2**32 - 1, "a seed in [0, 2**32)")


def thread_count(text: str) -> int:
    """Argument type: 0 (automatic) or a number of threads up to this process's cores."""
    cores = available_cores()
    expected = f"0 (automatic) or a thread count up to the {cores} core(s) this process may use"
    return _integer_in(text, 0, cores, expected)


def positive_float(text: str) -> float:
    """Argument type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def lam_or_auto(text: str) -> float | str:
    """Argument type: ``auto`` or a finite number > 0 (the estimators' ``lam``)."""
    return "auto" if text == "auto" else positive_float(text)


def non_negative_float(text: str) -> float:
    """Argument type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def rho_or_auto(text: str) -> float | str:
    """Argument type: ``auto`` or a finite number >= 0 (the estimators' ``rho``)."""
    return "auto" if text == "auto" else non_negative_float(text)


def fraction(text: str) -> float:
    """Argument type: a number in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Turn a parser that raises ``ValueError`` into an argument type that keeps its message.

    Parameters
    ----------
    parse : callable
        ``parse(text) -> value``, raising ``ValueError`` with a reason for bad text.

    Returns
    -------
    callable
        The same parser, raising :class:`argparse.ArgumentTypeError` instead (argparse then
        prints ``argument --flag: <reason>``).
    """

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add_training_options(
    p: argparse.ArgumentParser,
    *,
    hidden: Sequence[int],
    activation: str,
    lam: float | str,
    rho: float | str,
    sweeps: int,
    seed: int,
    threads: int,
) -> None:
    """Add the options that ``demo`` and ``train`` share."""
    p.add_argument(
        "--hidden",
        type=positive_int,
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
    auto = lam == "auto"  # the estimators' lam="auto": it follows the solver
    p.add_argument(
        "--lam",
        type=lam_or_auto if auto else positive_float,
        default=lam,
        help="divergence weight lambda, or auto: 1 when full-batch BCD trains, 3 for the hidden "
        "layers and 1 for the output layer when mini-batch BCD does (default: auto)"
        if auto
        else f"divergence weight lambda (default: {lam:g})",
    )
    rows = defaults.MINIBATCH_RHO_ROWS  # the estimators' rho="auto": solver and rows decide
    p.add_argument(
        "--rho",
        type=rho_or_auto if rho == "auto" else non_negative_float,
        default=rho,
        help=f"weight decay rho, or auto: {defaults.RHO:g}, and {defaults.RHO:g} * {rows} / rows "
        f"when mini-batch BCD trains on more than {rows:,} rows (default: auto)"
        if rho == "auto"
        else f"weight decay rho (default: {rho:g})",
    )
    p.add_argument(
        "--sweeps",
        type=positive_int,
        default=sweeps,
        help=f"maximum number of BCD sweeps (default: {sweeps})",
    )
    p.add_argument("--seed", type=random_seed, default=seed, help=f"random seed (default: {seed})")
    p.add_argument(
        "--backend",
        choices=("auto", "numpy", "cvxpy"),
        default=defaults.BACKEND,
        help="block solvers: fast NumPy kernels where they exist ('auto'), only those ('numpy'), "
        "or compiled CVXPY problems for every block ('cvxpy', slow; small data only)",
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        default=threads,
        metavar="N",
        help="BLAS threads (0: automatic: one thread, and for full-batch BCD a thread count "
        f"measured per kind of large product) (default: {threads})",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="report each sweep with a progress bar, one line per sweep, or not at all "
        "(default: a bar on a terminal, lines otherwise)",
    )


def blas_threads(n: int) -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS threads to ``n`` (no limit for ``n <= 0``)."""
    if n <= 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n)


def progress_mode(choice: str) -> str:
    """Resolve ``--progress auto``: a bar on a terminal, one line per sweep otherwise."""
    if choice != "auto":
        return choice
    return "bar" if sys.stderr.isatty() else "lines"


class SweepPrinter:
    """Print one line per BCD sweep: its objective, and its validation score when there is one.

    Pass :meth:`callback` as a training callback to print each sweep as it ends, then call
    :meth:`finish` with the final history to print what is left (the last sweep).
    """

    def __init__(self, unit: str = "sweep") -> None:
        self.printed = 0
        self.unit = unit  # "epoch" for the mini-batch solver

    def report(self, history: Any, upto: int) -> None:
        """Print the sweeps not printed yet, up to ``upto`` (inclusive)."""
        while self.printed <= upto and self.printed < len(history.objective):
            k = self.printed
            line = f"  {self.unit} {k:>3}  objective {history.objective[k]:.6g}"
            if history.validation:
                line += f"  validation {history.validation[k]:.4f}"
            print(line, flush=True)
            self.printed += 1

    def callback(self, sweep: int, partial: Any) -> None:
        """Training callback: print the sweeps done so far (never stops training)."""
        self.report(partial.history, sweep)

    def finish(self, history: Any) -> None:
        """Print every sweep of the final ``history`` not printed yet."""
        self.report(history, len(history.objective) - 1)


def fit_with_progress(
    network: LiftedNetwork,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    progress: str,
    **options: Any,
) -> Any:
    """Train ``network``, reporting the objective per sweep as a bar or as printed lines."""
    mode = progress_mode(progress)
    printer = SweepPrinter()
    result = network.fit(
        X,
        Y,
        verbose=mode == "bar",
        callback=printer.callback if mode == "lines" else None,
        **options,
    )
    if mode == "lines":
        printer.finish(result.history)
    return result


def accuracy(network: LiftedNetwork, X: np.ndarray, y_index: np.ndarray) -> float:
    """Return the share of rows whose arg-max output is the class index ``y_index``."""
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


def maybe_plot(path: Path, history: Any, **kw: Any) -> None:
    """Save :func:`plot_training`'s figure and say where, or say why there is none."""
    try:
        written = plot_training(history, path, **kw)
    except ImportError:
        print("plot: matplotlib (a dependency of cvx-lifted) is missing, no plot")
        return
    print(f"plot saved to {written}")


def _write_probe(folder: Path) -> None:
    """Create and remove a file in ``folder``; raise the ``OSError`` if it cannot be created.

    Permission bits do not tell whether a folder can be written: root passes ``os.access`` on a
    read-only file system such as ``/proc``.
    """
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".cvx-lifted-write-test-")
    os.close(fd)
    os.unlink(probe)


def check_output_path(path: str | os.PathLike[str], flag: str) -> Path:
    """Check, before any work, that ``path`` can be written; raise UsageError saying why not."""
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
        _write_probe(folder)
    except OSError as exc:
        raise UsageError(
            f"cannot write {flag} {path}: the folder {folder} is not writable "
            f"({exc.strerror or exc})."
        ) from None
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"cannot write {flag} {path}: the file exists and is read-only.")
    return out


def check_plot_path(path: str | os.PathLike[str], flag: str) -> Path:
    """:func:`check_output_path` for a figure; return the file that will be written.

    A name without a suffix gets ``.png`` (as matplotlib would add, so the name printed is the
    file's); a suffix must be a format matplotlib writes.
    """
    from matplotlib.backend_bases import FigureCanvasBase  # slow import

    out = Path(path).expanduser()
    if not out.suffix:
        out = out.with_name(out.name + ".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise UsageError(
            f"{flag} {path}: matplotlib cannot write {out.suffix} files; end the name with one of "
            f"{', '.join('.' + f for f in sorted(formats))} (for example {out.stem}.png)."
        )
    return check_output_path(out, flag)


def check_output_folder(folder: Path, flag: str) -> None:
    """Check that ``folder`` is, or can be created as, a writable folder (nothing is left behind).

    The nearest existing folder is tested by creating and removing a file in it.
    """
    existing = folder.expanduser()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot use {flag} {folder}: {existing} is not a folder.")
    try:
        _write_probe(existing)
    except OSError as exc:
        raise UsageError(
            f"cannot use {flag} {folder}: {existing} is not writable ({exc.strerror or exc})."
        ) from None


def header_flag(choice: str) -> bool | None:
    """Turn ``--header auto|yes|no`` into ``None``, ``True`` or ``False``."""
    return {"auto": None, "yes": True, "no": False}[choice]
