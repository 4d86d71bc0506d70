# SPDX-License-Identifier: Apache-2.0
"""``cvx-lifted reproduce``: the paper's §7 experiment (:mod:`cvx_lifted.paper`).

The options are parsed into a :class:`~cvx_lifted.paper.ReproduceConfig` (or, with
``--study``, a :class:`~cvx_lifted.paper.StudyConfig`), which checks them before any data is
read; :func:`~cvx_lifted.paper.reproduce` then runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cvx_lifted.cli._common import (
    EXIT_OK,
    SubParsers,
    UsageError,
    argument_type,
    non_negative_int,
    positive_int,
)
from cvx_lifted.interop.torch import import_torch
from cvx_lifted.paper import (
    CLI_DATASETS,
    INITS,
    ReproduceConfig,
    StudyConfig,
    output_folder,
    parse_architecture,
    parse_lam,
    parse_learning_rate,
    parse_output_scale,
    reproduce,
    study_lifted_init,
)

__all__ = ["add_reproduce", "config_from_args", "run_reproduce"]


def add_reproduce(sub: SubParsers) -> None:
    """Add the ``reproduce`` subcommand."""
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's Table 1 / Figure 1: lifted vs random initialisations",
        description="Train lifted networks, use them to initialise ReLU networks in PyTorch, "
        "train those and random-initialised twins (Normal, Xavier, σ²-scale) by mini-batch SGD, "
        "and write a Markdown table, Figure 1 (PNG), runs.csv and results.json. Resumable with "
        "--resume: finished runs are stored in OUT/runs.jsonl and never recomputed. Needs PyTorch "
        '(pip install torch==2.13.0, then pip install "cvx-lifted[torch,tune,plot]").',
    )
    p.add_argument("--dataset", choices=CLI_DATASETS, default="mnist-10k", help="data set")
    p.add_argument(
        "--quick",
        action="store_true",
        help="one architecture, 2 seeds, 3 epochs, 2 sweeps, 3,000 rows, no tuning (< 2 min)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default experiments/DATASET, or experiments/DATASET-2, -3, ... when "
        "that one holds an earlier run)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the output folder, reusing its finished runs (without it, an "
        "earlier run's folder is never written to)",
    )
    p.add_argument("--seeds", type=positive_int, default=None, help="number of seeds (5)")
    p.add_argument(
        "--architectures",
        type=argument_type(parse_architecture),
        nargs="+",
        default=None,
        metavar="ARCH",
        help="hidden widths, e.g. 300 500-200-100 (default: the paper's five)",
    )
    p.add_argument("--epochs", type=positive_int, default=None, help="SGD epochs (17)")
    p.add_argument(
        "--lr",
        type=argument_type(parse_learning_rate),
        nargs="+",
        default=None,
        metavar="LR",
        help="learning rates: paper:ETA (the paper's rate, x100 for the averaged loss), tuned, "
        "or a number (default: paper:1e-5 paper:1e-6 tuned)",
    )
    p.add_argument(
        "--inits",
        nargs="+",
        default=list(INITS),
        metavar="INIT",
        help=f"initialisations (default: {' '.join(INITS)})",
    )
    p.add_argument("--optimizer", default="sgd", help="sgd (the paper's) or adam")
    p.add_argument("--sweeps", type=positive_int, default=None, help="BCD sweeps (8)")
    p.add_argument(
        "--lam",
        type=argument_type(parse_lam),
        default="tune",
        help="λ of the lifted model, or 'tune' (default)",
    )
    p.add_argument(
        "--tune-trials", type=non_negative_int, default=None, help="λ search budget (12)"
    )
    p.add_argument(
        "--head",
        default="simplex_xent",
        help="lifted output head: simplex_xent (default) or softmax_xent",
    )
    p.add_argument(
        "--output-scale",
        type=argument_type(parse_output_scale),
        default="balanced",
        help="logit scale of the lifted init: balanced (default), last, none or a number",
    )
    p.add_argument(
        "--max-train-rows", type=positive_int, default=None, help="subsample the training set"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="the data set's folder of IDX files, or a folder holding mnist/, mnist-10k/, "
        "fashion-mnist/ like $CVX_LIFTED_DATA (default: $CVX_LIFTED_DATA)",
    )
    p.add_argument("--cache", default=None, help="cache of lifted weights (default OUT/cache)")
    p.add_argument(
        "--study",
        action="store_true",
        help="instead: compare lifted heads and output scalings at several learning rates on "
        "the validation split (study_lifted_init; default out experiments/DATASET-study)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, out: Path | None = None) -> ReproduceConfig:
    """Return the :class:`~cvx_lifted.paper.ReproduceConfig` that ``reproduce`` options ask for.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser built by :func:`add_reproduce`.
    out : pathlib.Path, optional
        The output folder (default: ``--out``, resolved by the configuration).

    Returns
    -------
    ReproduceConfig

    Raises
    ------
    ValueError
        For a bad option (unknown initialisation, optimiser or head, ...).
    """
    return ReproduceConfig(
        dataset=args.dataset,
        architectures=args.architectures,
        seeds=args.seeds,
        epochs=args.epochs,
        learning_rates=[r.spec for r in args.lr] if args.lr else None,
        out_dir=out if out is not None else args.out,
        quick=args.quick,
        inits=args.inits,
        optimizer=args.optimizer,
        lam=args.lam,
        sweeps=args.sweeps,
        tune_trials=args.tune_trials,
        head=args.head,
        output_scale=args.output_scale,
        max_train_rows=args.max_train_rows,
        data_dir=args.data_dir,
        cache_dir=args.cache,
        progress=not args.no_progress,
        resume=True,  # the output folder is chosen before the run (run_reproduce)
    )


def _study_config(args: argparse.Namespace, out: Path) -> StudyConfig:
    given = {"epochs": args.epochs, "sweeps": args.sweeps}
    return StudyConfig(
        dataset=args.dataset,
        hidden=args.architectures[0] if args.architectures else (300,),
        max_train_rows=args.max_train_rows,
        out_dir=out,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        resume=True,  # the output folder was chosen by run_reproduce
        **{k: v for k, v in given.items() if v is not None},  # else the study's defaults
    )


def run_reproduce(args: argparse.Namespace) -> int:
    """Run ``cvx-lifted reproduce`` from parsed arguments; return the exit code.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser built by :func:`add_reproduce`.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    UsageError
        For bad input (unknown initialisation or optimiser, no PyTorch, an output folder that
        holds an earlier run without ``--resume``), found before any work; missing data files
        are reported by the caller as ``OSError``.
    """
    try:
        config = config_from_args(args)  # every option checked before anything else
        import_torch()
        dataset = config.dataset
        default = Path("experiments") / (
            f"{dataset}-study" if args.study else f"{dataset}-quick" if args.quick else dataset
        )
        out = output_folder(args.out, default, resume=args.resume)
    except (ValueError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    if args.out is None and out != default:
        print(f"{default} holds an earlier run (--resume continues it); writing to {out}")
    if args.study:
        try:
            study_cfg = _study_config(args, out)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(study_lifted_init(study_cfg)["markdown"])
        return EXIT_OK
    result = reproduce(config_from_args(args, out))
    print(
        f"{result.computed} run(s) computed, {result.reused} reused from {result.paths['store']} "
        f"in {result.seconds:.0f} s"
    )
    for key in ("markdown", "csv", "pretrain_csv", "json"):
        print(f"wrote {result.paths[key]}")
    for fig in result.paths["figures"]:
        print(f"wrote {fig}")
    return EXIT_OK
