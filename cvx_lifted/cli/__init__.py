# SPDX-License-Identifier: Apache-2.0
"""The ``cvx-lifted`` command line (also ``python -m cvx_lifted``).

Subcommands, one module each::

    cvx-lifted list                      the activation catalogue          (cli.catalogue)
    cvx-lifted verify [NAME ...]         convex program vs closed form     (cli.catalogue)
    cvx-lifted demo                      lifted network vs MLPClassifier   (cli.demo)
    cvx-lifted train DATA --out M.cvxl   fit an estimator, save its model  (cli.train)
    cvx-lifted predict M.cvxl DATA       labels, probabilities or values   (cli.predict)
    cvx-lifted reproduce                 the paper's §7 experiment         (cli.reproduce)

Each subcommand is a pair of functions, ``add_<name>(subparsers)`` and ``run_<name>(args)``,
listed in :data:`COMMANDS`; a new subcommand is one more module and one more entry. What they
share (errors, argument types, output checks, progress lines, plots) is in
:mod:`cvx_lifted.cli._common`. Exit codes: 0 on success, 1 when a check fails (``verify``) or
training fails, 2 on bad input, with a one-line reason on stderr (no traceback; ``--traceback``
shows it). Bad input is found before any work where it can be: output paths (``--out``,
``--plot``, ``-o``) are checked for writability before training or predicting, CSV files are
parsed with the :mod:`csv` module (quoted cells; a cell spanning lines is refused), and
magnitudes that would overflow are refused with the column to rescale.

Every subcommand takes ``--import MODULE`` (repeatable, also before the subcommand): the module
is imported first, e.g. the one that registers a custom activation, so that ``predict`` can load
a model that uses it. Activations of installed packages (entry-point group
``cvx_lifted.activations``, see :mod:`cvx_lifted.plugins`) need no ``--import``.

Defaults (activation, λ, ρ, sweeps, heads) come from :mod:`cvx_lifted.defaults`, as for
:class:`~cvx_lifted.network.LiftedNetwork` and the estimators. ``train`` fits the estimators
(:class:`~cvx_lifted.LiftedMLPClassifier`, :class:`~cvx_lifted.LiftedMLPRegressor`) and differs
from a direct fit by design in one respect: it standardises the features of CSV/NPZ files (and
regression targets) for training and folds the scaling back into the saved weights
(``--no-standardize`` turns this off).

Reading CSV/NPZ files, splitting and guessing the task live in :mod:`cvx_lifted.io`; the helpers
a Python user may want too (:func:`run_demo`, :func:`fold_input_standardization`,
:func:`fold_output_standardization`, :func:`plot_training`) are re-exported here.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

from cvx_lifted._version import __version__
from cvx_lifted.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Parser,
    SubParsers,
    UsageError,
    one_line,
    plot_training,
)
from cvx_lifted.cli.catalogue import add_list, add_verify, catalogue_rows, run_list, run_verify
from cvx_lifted.cli.demo import (
    DEMO_ACTIVATION,
    DEMO_HIDDEN,
    DEMO_LAM,
    DEMO_OUTPUT,
    DEMO_PLOT,
    DEMO_RHO,
    DEMO_SEED,
    DEMO_SWEEPS,
    DemoResult,
    add_demo,
    run_demo,
    run_demo_command,
)
from cvx_lifted.cli.predict import add_predict, run_predict
from cvx_lifted.cli.reproduce import add_reproduce, run_reproduce
from cvx_lifted.cli.train import (
    TRAIN_ACTIVATION,
    TRAIN_HIDDEN,
    TRAIN_LAM,
    TRAIN_RHO,
    TRAIN_SWEEPS,
    TRAIN_TOL,
    add_train,
    fold_input_standardization,
    fold_output_standardization,
    run_train,
)
from cvx_lifted.exceptions import CvxLiftedError, SolverFailedError
from cvx_lifted.plugins import import_modules

__all__ = [
    "COMMANDS",
    "DEMO_ACTIVATION",
    "DEMO_HIDDEN",
    "DEMO_LAM",
    "DEMO_OUTPUT",
    "DEMO_PLOT",
    "DEMO_RHO",
    "DEMO_SEED",
    "DEMO_SWEEPS",
    "TRAIN_ACTIVATION",
    "TRAIN_HIDDEN",
    "TRAIN_LAM",
    "TRAIN_RHO",
    "TRAIN_SWEEPS",
    "TRAIN_TOL",
    "DemoResult",
    "UsageError",
    "build_parser",
    "catalogue_rows",
    "fold_input_standardization",
    "fold_output_standardization",
    "main",
    "plot_training",
    "run_demo",
]

COMMANDS: dict[str, tuple[Callable[[SubParsers], None], Callable[[argparse.Namespace], int]]] = {
    "list": (add_list, run_list),
    "verify": (add_verify, run_verify),
    "demo": (add_demo, run_demo_command),
    "train": (add_train, run_train),
    "predict": (add_predict, run_predict),
    "reproduce": (add_reproduce, run_reproduce),
}
"""Subcommand name -> (add its parser, run it). Add an entry to add a subcommand."""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cvx-lifted`` argument parser."""
    parser = Parser(
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


# the Python names of parameters that errors raised by the library mention, as options
_FLAGS = {
    "solver": "--solver",
    "backend": "--backend",
    "output": "--output",
    "activation": "--activation",
    "lam": "--lam",
    "rho": "--rho",
    "batch_size": "--batch-size",
    "max_iter": "--sweeps",
    "random_state": "--seed",
}
_PARAMETER = re.compile(r"\b(" + "|".join(_FLAGS) + r")=(['\"]?)([\w.+\-]+)\2")


def in_cli_words(message: str) -> str:
    """Say a library error's fix with the command line's options.

    ``solver='bcd'`` becomes ``--solver bcd`` (and so on for the parameters that have an
    option), and the advice to register an activation in Python gains the ``--import`` option.
    """
    message = _PARAMETER.sub(lambda m: f"{_FLAGS[m[1]]} {m[3]}", message)
    if "cvx_lifted.custom_activation" in message and "--import" not in message:
        message = message.rstrip()
        message += "" if message.endswith(".") else "."
        message += (
            " On the command line, define it in a module and load that module with --import MODULE."
        )
    return message


# errors that mean bad input: missing or malformed files, unknown names, bad values
_BAD_INPUT: tuple[type[BaseException], ...] = (
    UsageError,
    CvxLiftedError,
    ValueError,
    OSError,
    NotImplementedError,
)


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
            import_modules(modules)
        return run(args)
    except BrokenPipeError:  # pragma: no cover - e.g. `cvx-lifted list | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except SolverFailedError as exc:
        if args.traceback:
            raise
        print(f"{prefix} {in_cli_words(one_line(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except _BAD_INPUT as exc:
        if args.traceback:
            raise
        message = one_line(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
        print(f"{prefix} {in_cli_words(message)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"cvx-lifted {args.command}: interrupted", file=sys.stderr)
        return 130
