"""The ``weaksep`` command: every action of the package is one of its verbs.

    weaksep separate MIX.wav FOLDER/ --prompt violin --prompt "something brass" -o out/ --residual
    weaksep train --regime weak --sources 2 --out runs/weak_n2
    weaksep evaluate --checkpoint results/models/weak_n2.pt --sources 2
    weaksep data prepare --root MUSIC/ --out manifests/
    weaksep --help                      (every verb; weaksep VERB --help for its options)

``python -m weaksep`` is the same command (``torchrun ... -m weaksep train ...``
under torchrun). This package holds the arguments, checks and one-line errors of
each verb, one module per group; the work itself is in the modules they call,
which never import this package. Bad input ends with one line
``weaksep: error: ...`` on stderr and exit status 2, having written nothing;
``separate`` skips an unreadable file among several with one line
``weaksep: skipped: ...``, writes the others and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from . import data, separate, study, tools, train
from .common import PROG, CliError, fail, one_line

__all__ = ["PROG", "CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``weaksep`` and all its verbs."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Text-queried audio source separation (weakly-supervised, Mahmud et al. ICLR 2024): "
        "separate your own audio, train a separator, evaluate one, and every step of the study.",
    )
    parser.add_argument("--version", action="version", version=f"weaksep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    separate.add_parsers(sub)  # separate, confidence
    train.add_parsers(sub)  # train, evaluate
    data.add_parsers(sub)  # data render | prepare | recorded | fixture
    study.add_parsers(sub)  # figures, collapse-progress
    tools.add_parsers(sub)  # bench, bench-step, bench-data, gpu-check, budget
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``weaksep`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse prints it; status 2)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    args.argv = argv
    try:
        with warnings.catch_warnings():  # our warnings (e.g. another CLAP file) in one line too
            warnings.showwarning = lambda msg, *a, **k: print(f"{PROG}: warning: {one_line(str(msg))}", file=sys.stderr)
            return args.run(args)
    except CliError as e:
        return fail(str(e))
