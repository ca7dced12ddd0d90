"""The ``weaksep`` command: separate your own audio, train, evaluate.

    weaksep separate MIX.wav --prompt violin --prompt "something brass" -o out/
    weaksep train --regime weak --sources 2 --out runs/weak_n2
    weaksep evaluate --checkpoint results/models/weak_n2.pt --sources 2

``python -m weaksep`` is the same command. Bad input ends with one line
``weaksep: error: ...`` on stderr and exit status 2, having written nothing.
"""
from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

PROG = "weaksep"
DEFAULT_CHECKPOINT = Path("results") / "models" / "weak_n2.pt"  # relative to the repository


class CliError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def _one_line(message: str, limit: int = 600) -> str:
    line = re.sub(r"\s+", " ", str(message)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- separate
def _add_separate(sub: argparse._SubParsersAction) -> None:
    from .separate import REFERENCE_RMS

    p = sub.add_parser(
        "separate", help="extract the sound each text prompt describes from an audio file",
        description="Extract from AUDIO the sound each --prompt describes, one 32-bit float WAV per prompt "
                    "(OUTDIR/<prompt with spaces as _>.wav) at the input's sample rate, length and channel "
                    "count. Any format soundfile reads (WAV, FLAC, OGG, ...) and any length: long inputs are "
                    "separated in overlapping windows of the model's training clip length and crossfaded.")
    p.add_argument("audio", metavar="AUDIO", help="the input sound file (mono or multi-channel; each channel is separated)")
    p.add_argument("-p", "--prompt", action="append", required=True, metavar="TEXT",
                   help="what to extract, e.g. 'violin' or 'a bowed string instrument'; repeat for several sounds")
    p.add_argument("-o", "--out", "--output-dir", dest="out", required=True, metavar="OUTDIR",
                   help="folder for the output files (created; existing files of the same names are replaced)")
    p.add_argument("-c", "--checkpoint", default=None, metavar="CKPT",
                   help=f"separator checkpoint (model.pt of a training run); default: the quick study's weak "
                        f"model <repo>/{DEFAULT_CHECKPOINT}")
    p.add_argument("--clap-checkpoint", default=None, metavar="FILE",
                   help="the CLAP the separator was trained with; default: the one its run config names, else "
                        "<repo>/results/models/clap_proxy.pt")
    p.add_argument("--tokenizer-dir", default=None, metavar="DIR",
                   help="laion CLAP only: folder with roberta-base's vocab.json and merges.txt")
    p.add_argument("--expect-profile", default=None, choices=["smoke", "quick", "paper"],
                   help="refuse a checkpoint whose model size is not that of this profile")
    p.add_argument("--overlap", type=float, default=0.5,
                   help="share of each window that overlaps the next, 0..0.5 "
                        "(default 0.5: a Hann crossfade at 50 %%)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="windows separated at once: more is faster and needs more memory (default 8)")
    p.add_argument("--no-template", action="store_true",
                   help="use each prompt as it is instead of 'The sound of <prompt>' (the training template)")
    p.add_argument("--no-normalize", action="store_true",
                   help=f"do not scale the input to the training mixtures' level (RMS {REFERENCE_RMS:.3f}) "
                        "before separating (the estimates are always scaled back)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_separate)


def _default_checkpoint() -> Path:
    from .study import REPO_ROOT

    path = REPO_ROOT / DEFAULT_CHECKPOINT
    if not path.is_file():
        raise CliError(f"no --checkpoint given and no default model {path}; make one with `make reproduce` "
                       f"(the quick study) or `weaksep train --regime weak --sources 2 --out runs/weak_n2`, "
                       f"then pass --checkpoint runs/weak_n2/model.pt")
    return path


def _run_separate(args: argparse.Namespace) -> int:
    from .separate import load_for_inference, output_paths, read_audio, write_outputs

    if not 0 <= args.overlap <= 0.5:
        raise CliError(f"--overlap must be within 0..0.5, got {args.overlap}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        paths = output_paths(args.prompt, args.out)  # checks the prompts before any slow work
        wav, rate = read_audio(args.audio)
        ckpt = Path(args.checkpoint) if args.checkpoint else _default_checkpoint()
        sep = load_for_inference(ckpt, args.clap_checkpoint, args.tokenizer_dir, args.expect_profile)
    except (ValueError, FileNotFoundError) as e:  # bad audio raises ManifestError, a ValueError
        raise CliError(str(e)) from e
    est = sep.separate(wav, rate, args.prompt, overlap=args.overlap, batch_size=args.batch_size,
                       template=not args.no_template, normalize=not args.no_normalize,
                       progress=not args.no_progress)
    try:
        write_outputs(est, rate, paths)
    except OSError as e:
        raise CliError(f"cannot write the outputs to {args.out}: {e}") from e
    channels, seconds = wav.shape[0], wav.shape[1] / rate
    for prompt, path in zip(args.prompt, paths):
        print(f"{prompt!r} -> {path}")
    print(f"({seconds:.2f} s, {channels} channel(s), {rate} Hz; model {sep.path})", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    from . import train

    p = sub.add_parser("train", help="train a separator (one regime, one N)",
                       description=train.__doc__.split("\n\n")[0] + " Interrupted runs resume from --out.")
    train.build_arg_parser(p)
    for action in p._actions:  # every option says what it does, defaults included
        if action.help is None and action.dest == "seed":
            action.help = "random seed of the initialisation and of the batches"
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .train import main as train_main

    argv = args.argv[args.argv.index("train") + 1:]  # the same options, parsed again by weaksep.train
    try:
        return train_main(argv)
    except (ValueError, FileNotFoundError) as e:  # e.g. --out holding another config's run
        raise CliError(str(e)) from e


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score one checkpoint on the study's saved test mixtures",
        description="Separate every source of the study's fixed N-source test (or validation) mixtures with "
                    "the checkpoint, each queried by its class name, and print the mean SDR (bss_eval, as "
                    "mir_eval), SDR improvement over the mixture and SI-SDR over all queries, for the model "
                    "and for the unprocessed mixture.")
    p.add_argument("--checkpoint", "-c", required=True, metavar="CKPT", help="separator checkpoint to evaluate")
    p.add_argument("--sources", "-n", type=int, required=True, metavar="N", help="sources per test mixture (1-4)")
    p.add_argument("--profile", default=None, choices=["smoke", "quick", "paper"],
                   help="profile of the test mixtures (default: the checkpoint's)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="which saved mixtures: test (default) or val")
    p.add_argument("-o", "--out", default=None, metavar="CSV", help="also write the per-query rows to this CSV")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where corpora and test sets are cached (default: $WEAKSEP_CACHE or ./.cache)")
    p.add_argument("--manifests", default=None, metavar="DIR",
                   help="folder with train.csv / test.csv (path,label) of a real dataset instead of the rendered corpora")
    p.add_argument("--clap-checkpoint", default=None, metavar="FILE",
                   help="the CLAP the separator was trained with (default: the one its run config names)")
    p.add_argument("--tokenizer-dir", default=None, metavar="DIR",
                   help="laion CLAP only: folder with roberta-base's vocab.json and merges.txt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .io import atomic_write_text
    from .profiles import get_profile
    from .separate import load_for_inference
    from .study import Study

    if not 1 <= args.sources <= 4:
        raise CliError(f"--sources must be 1..4, got {args.sources}")
    try:
        sep = load_for_inference(args.checkpoint, args.clap_checkpoint, args.tokenizer_dir)
        saved = sep.run_config["profile"]
        profile = get_profile(args.profile or saved.get("name"))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    differ = [k for k in ("sample_rate", "clip_samples", "n_fft", "hop") if saved.get(k) != getattr(profile, k)]
    if differ:
        raise CliError(f"checkpoint {args.checkpoint} was trained at another scale than profile {profile.name!r}: "
                       + ", ".join(f"{k} {saved.get(k)} vs {getattr(profile, k)}" for k in differ))
    try:
        study = Study(profile, data_root=args.data_root, manifests=args.manifests,
                      clap_backend=sep.run_config.get("clap", {}).get("backend"), clap_checkpoint=sep.clap_path,
                      tokenizer_dir=args.tokenizer_dir, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    rows = study.evaluate({"model": sep.path}, args.sources, args.split)
    means = rows.groupby("run")[["sdr", "sdri", "si_sdr"]].mean().reindex(["model", "mixture"])
    n_queries = int((rows["run"] == "model").sum())
    print(f"{sep.path} on {n_queries} queries of the {profile.name} {args.split} mixtures, N = {args.sources} "
          f"(mean over queries, dB):")
    print(means.rename(columns={"sdr": "SDR", "sdri": "SDRi", "si_sdr": "SI-SDR"}).round(2).to_string())
    if args.out:
        atomic_write_text(args.out, rows.to_csv(index=False))
        print(f"per-query rows: {args.out}")
    return 0


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Text-queried audio source separation (weakly-supervised, Mahmud et al. ICLR 2024): "
                               "separate your own audio, train a separator, evaluate one.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"weaksep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_separate(sub)
    _add_train(sub)
    _add_evaluate(sub)
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
            warnings.showwarning = lambda msg, *a, **k: print(f"{PROG}: warning: {_one_line(str(msg))}",
                                                              file=sys.stderr)
            return args.run(args)
    except CliError as e:
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
