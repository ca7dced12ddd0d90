"""``weaksep separate`` (extract prompted sounds from audio files) and ``weaksep confidence`` (measure
the CLAP score below which ``separate`` warns that a prompted sound may be absent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..profiles import PROFILES
from .common import CliError, log


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_separate(sub)
    _add_confidence(sub)


def _add_separate(sub: argparse._SubParsersAction) -> None:
    from ..inference.waveform import DEFAULT_CHOICE, INSTRUMENT_CHECKPOINT, REFERENCE_RMS

    p = sub.add_parser(
        "separate",
        help="extract the sound each text prompt describes from audio files",
        description="Extract from each AUDIO input the sound each --prompt describes: one 32-bit float WAV per "
        "input and prompt, OUTDIR/<input stem>/<prompt with spaces as _>.wav, at the input's sample "
        "rate, length and channel count, and a CLAP confidence score per output, printed and written "
        "to OUTDIR/scores.csv. Any format soundfile reads (WAV, FLAC, OGG, MP3, ...) and any length: "
        "long inputs are separated in overlapping windows of the model's training clip length and "
        "crossfaded. The model is loaded once for all inputs; an input that cannot be read is "
        "skipped with one line on stderr, the others are written, and the exit status is 2.",
    )
    p.add_argument(
        "audio",
        metavar="AUDIO",
        nargs="+",
        help="sound files, folders (searched recursively for every format soundfile reads) and glob "
        "patterns ('in/**/*.flac'); mono or multi-channel (each channel is separated)",
    )
    p.add_argument(
        "-p",
        "--prompt",
        action="append",
        required=True,
        metavar="TEXT",
        help="what to extract, e.g. 'violin' or 'a bowed string instrument'; repeat for several sounds",
    )
    p.add_argument(
        "-o",
        "--out",
        "--output-dir",
        dest="out",
        required=True,
        metavar="OUTDIR",
        help="folder for the outputs: OUTDIR/<input stem>/ per input (equal stems from different "
        "folders get their parent folder's name in front, 'a__mix'), and OUTDIR/scores.csv "
        "(created; existing files of the same names are replaced)",
    )
    p.add_argument(
        "--residual",
        action="store_true",
        help="also write residual.wav per input: the input minus the sum of the prompted estimates, so "
        "the outputs add back up to the input",
    )
    p.add_argument(
        "-c",
        "--checkpoint",
        default=None,
        metavar="CKPT",
        help=f"separator checkpoint (model.pt of a training run); default: the model <repo>/{DEFAULT_CHOICE} "
        "names (the recorded-events model of notebook 09 with the best validation SDR: real sounds)",
    )
    p.add_argument(
        "--instruments",
        action="store_true",
        help=f"without --checkpoint: the quick study's instrument model <repo>/{INSTRUMENT_CHECKPOINT} "
        "(rendered MUSIC classes) instead of the recorded-events one",
    )
    p.add_argument(
        "--clap-checkpoint",
        default=None,
        metavar="FILE",
        help="the CLAP the separator was trained with; default: the one its run config names, else "
        "<repo>/results/models/clap_proxy.pt",
    )
    p.add_argument(
        "--confidence",
        default=None,
        metavar="JSON",
        help="absent-sound threshold measured by `weaksep confidence` for this CLAP: a prompt "
        "whose mixture score is below it gets a warning; default: confidence.json in the results "
        "folder of the checkpoint's profile (results/ for quick), if there and for the same CLAP",
    )
    p.add_argument(
        "--tokenizer-dir",
        default=None,
        metavar="DIR",
        help="laion CLAP only: folder with roberta-base's vocab.json and merges.txt",
    )
    p.add_argument(
        "--expect-profile",
        default=None,
        choices=sorted(PROFILES),
        help="refuse a checkpoint whose model size is not that of this profile",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=0.5,
        help="share of each window that overlaps the next, 0..0.5 (default 0.5: a Hann crossfade at 50 %%)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="windows separated at once: more is faster and needs more memory (default 8)",
    )
    p.add_argument(
        "--no-template",
        action="store_true",
        help="use each prompt as it is instead of 'The sound of <prompt>' (the training template); "
        "there are then no absent-sound warnings",
    )
    p.add_argument(
        "--no-normalize",
        action="store_true",
        help=f"do not scale the input to the training mixtures' level (RMS {REFERENCE_RMS:.3f}) "
        "before separating (the estimates are always scaled back)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_separate)


def _run_separate(args: argparse.Namespace) -> int:
    from ..inference.separate import separate_files
    from ..inference.waveform import default_checkpoint

    if not 0 <= args.overlap <= 0.5:
        raise CliError(f"--overlap must be within 0..0.5, got {args.overlap}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")

    try:  # prompts and inputs are checked first, then the checkpoint (default: the quick study's) loaded once
        scores = separate_files(
            args.audio,
            args.prompt,
            args.out,
            args.checkpoint or (default_checkpoint(instruments=True) if args.instruments else None),
            residual=args.residual,
            confidence=args.confidence,
            clap_checkpoint=args.clap_checkpoint,
            tokenizer_dir=args.tokenizer_dir,
            expected_profile=args.expect_profile,
            template=not args.no_template,
            progress=not args.no_progress,
            log=log,
            echo=print,
            overlap=args.overlap,
            batch_size=args.batch_size,
            normalize=not args.no_normalize,
        )
    except (ValueError, FileNotFoundError) as e:  # bad audio raises ManifestError, a ValueError
        raise CliError(str(e)) from e
    except OSError as e:
        raise CliError(f"cannot write the outputs to {args.out}: {e}") from e
    return 2 if scores.attrs["skipped"] else 0


def _add_confidence(sub: argparse._SubParsersAction) -> None:
    from ..inference.confidence import DEFAULT_QUANTILE, DEFAULT_SOURCES

    p = sub.add_parser(
        "confidence",
        help="measure the CLAP score below which `weaksep separate` warns that a sound may be absent",
        description="How far to trust a separation: reference-free CLAP scores, and when to warn that a sound "
        "is absent. Scores every saved test mixture of the study against the prompt of each class, sets the "
        "threshold at the 5 %% quantile of the present prompts' scores, and writes it with its warning rates "
        "on the test and held-out validation mixtures (weaksep/inference/confidence.py); `weaksep separate` reads it.",
    )
    p.add_argument(
        "--profile",
        default=None,
        choices=sorted(PROFILES),
        help="profile of the study (default: $WEAKSEP_PROFILE, else quick)",
    )
    p.add_argument(
        "--sources",
        type=int,
        nargs="+",
        default=list(DEFAULT_SOURCES),
        metavar="N",
        help="test mixtures of these numbers of sources, pooled (default: 2 3 4)",
    )
    p.add_argument(
        "--quantile",
        type=float,
        default=DEFAULT_QUANTILE,
        help="share of present prompts allowed below the threshold (default 0.05)",
    )
    p.add_argument(
        "-o",
        "--out",
        default=None,
        metavar="JSON",
        help="where to write (default: results/confidence.json, results/<profile>/ for other profiles)",
    )
    p.add_argument("--data-root", default=None, metavar="DIR", help="cache of corpora and test sets")
    p.add_argument("--clap-backend", default=None, choices=["proxy", "laion"], help="default: the profile's")
    p.add_argument(
        "--clap-checkpoint",
        default=None,
        metavar="FILE",
        help="the CLAP to measure (default: the study's default CLAP, pretrained when absent)",
    )
    p.add_argument("--tokenizer-dir", default=None, metavar="DIR", help="laion CLAP only: roberta-base tokenizer")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_confidence)


def _run_confidence(args: argparse.Namespace) -> int:
    from ..inference.confidence import FILE_NAME, measure_threshold, write_confidence
    from ..reproduce.study import Study

    if any(not 1 <= n <= 4 for n in args.sources):
        raise CliError(f"--sources must be within 1..4, got {args.sources}")
    study = Study(
        args.profile,
        data_root=args.data_root,
        clap_backend=args.clap_backend,
        clap_checkpoint=args.clap_checkpoint,
        tokenizer_dir=args.tokenizer_dir,
        progress=not args.no_progress,
    )
    record = measure_threshold(study, args.sources, args.quantile)
    out = Path(args.out) if args.out else study.results / FILE_NAME
    write_confidence(record, out)
    test, held = record["rates"], record.get("heldout")
    print(
        f"CLAP {study.clap_checkpoint} (sha256 {record['clap']['sha256']}), {study.profile.name} test mixtures "
        f"of {args.sources} sources: threshold {record['threshold']:.4f} ({record['rule']})"
    )
    print(
        f"  {record['split']}: warns on {test['warn_rate_present']:.1%} of {test['n_present']} present prompts and "
        f"{test['warn_rate_absent']:.1%} of {test['n_absent']} absent ones (AUC {test['auc']:.3f})"
    )
    if held:
        print(
            f"  {held['split']} (held out): warns on {held['warn_rate_present']:.1%} of present prompts and "
            f"{held['warn_rate_absent']:.1%} of absent ones (AUC {held['auc']:.3f})"
        )
    print(f"written to {out}")
    return 0
