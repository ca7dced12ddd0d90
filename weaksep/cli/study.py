"""The verbs of the study's own files: ``figures`` (redraw every figure and the summary from the result
CSVs) and ``collapse-progress`` (what ``make reproduce`` runs on each executed notebook)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CliError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "figures",
        help="redraw every figure and the summary from the result CSVs, without training",
        description="Redraw every figure that the CSVs in RESULTS_DIR allow into RESULTS_DIR/figures/, write "
        "RESULTS_DIR/summary.md and summary.csv, and print the summary table; trains nothing (make figures).",
    )
    p.add_argument("results", nargs="?", default="results", metavar="RESULTS_DIR", help="default: results")
    p.set_defaults(run=_run_figures)

    p = sub.add_parser(
        "collapse-progress",
        help="keep only the last redraw of each progress bar in executed notebooks",
        description="Keep, of each progress bar in an executed notebook, only what a terminal would show, and "
        "no path of the machine that ran it (weaksep/reproduce/collapse_progress.py).",
    )
    p.add_argument("notebooks", nargs="+", type=Path, help="executed .ipynb files, rewritten in place")
    p.set_defaults(run=_run_collapse_progress)


def _run_figures(args: argparse.Namespace) -> int:
    from ..reproduce.plots import redraw_all
    from ..reproduce.summary import to_markdown

    out = redraw_all(args.results)
    print(to_markdown(out["claims"][["claim", "metric", "paper", "ours", "ci_low", "ci_high", "verdict"]], digits=1))
    for p in [*out["figures"], out["summary_md"], out["summary_csv"]]:
        print(f"wrote {p}")
    return 0


def _run_collapse_progress(args: argparse.Namespace) -> int:
    from ..reproduce.collapse_progress import collapse_progress

    for path in args.notebooks:
        try:
            before, after = collapse_progress(path)
        except (ValueError, OSError) as e:
            raise CliError(str(e)) from e
        print(f"{path}: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")
    return 0
