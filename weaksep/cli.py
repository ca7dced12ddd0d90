"""The ``weaksep`` command: separate your own audio, train, evaluate.

One purpose: the arguments, checks and one-line errors of each subcommand; the
work itself is in ``separate.py``, ``train.py``, ``evaluate.py``, ``gpu_check.py`` and ``bench_data.py``.

    weaksep separate MIX.wav FOLDER/ --prompt violin --prompt "something brass" -o out/ --residual
    weaksep train --regime weak --sources 2 --out runs/weak_n2
    weaksep evaluate --checkpoint results/models/weak_n2.pt --sources 2

``python -m weaksep`` is the same command. Bad input ends with one line
``weaksep: error: ...`` on stderr and exit status 2, having written nothing;
``separate`` skips an unreadable file among several with one line
``weaksep: skipped: ...``, writes the others and exits with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from typing import Any

from .profiles import PROFILES

PROG = "weaksep"


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
    from .inference import DEFAULT_CHOICE, INSTRUMENT_CHECKPOINT, REFERENCE_RMS

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
        help="absent-sound threshold measured by `python -m weaksep.confidence` for this CLAP: a prompt "
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
    from .inference import default_checkpoint
    from .separate import separate_files

    if not 0 <= args.overlap <= 0.5:
        raise CliError(f"--overlap must be within 0..0.5, got {args.overlap}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")

    def log(message: str) -> None:
        print(f"{PROG}: {_one_line(message)}", file=sys.stderr)

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


# --------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    from .runs import MIXTURE_TEXTS, REGIMES, SUP_INPUTS, TEXT_NORMS

    p = sub.add_parser(
        "train",
        help="train a separator (one regime, one N)",
        description="Train one separator (one regime, one N) on the study's data, on one CPU, one "
        "GPU or many (under torchrun). Interrupted runs resume from --out.",
    )
    p.add_argument("--regime", choices=REGIMES, default=None, help="training regime (weaksep/METHOD.md#objective)")
    p.add_argument(
        "--run-config",
        default=None,
        metavar="JSON",
        help="train exactly the run a config.json describes (its profile, regime, N, seed and settings) "
        "instead of --regime/--sources/--profile and their options; what a study's GPUS=k launch uses",
    )
    p.add_argument("--sources", type=int, default=2, help="sources per training mixture, N (1-4; default 2)")
    p.add_argument(
        "--profile", default=None, choices=sorted(PROFILES), help="study profile (default: $WEAKSEP_PROFILE or quick)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="run folder: config, logs, checkpoints; resumed when present (default: the study's cache, by config hash)",
    )
    p.add_argument(
        "--data-root", default=None, help="where corpora are rendered/cached (default: $WEAKSEP_CACHE or ./.cache)"
    )
    p.add_argument(
        "--manifests", default=None, help="a folder of manifests or a dataset root (MUSIC, VGGSound, AudioCaps)"
    )
    p.add_argument("--clap", default=None, choices=["proxy", "laion"], help="CLAP backend (default: the profile's)")
    p.add_argument(
        "--clap-checkpoint", default=None, help="CLAP checkpoint; the default CLAP is pretrained when absent"
    )
    p.add_argument(
        "--tokenizer-dir", default=None, help="laion only: folder with roberta-base vocab.json and merges.txt"
    )
    p.add_argument("--steps", type=int, default=None, help="step budget (default: the profile's)")
    p.add_argument(
        "--accumulate",
        type=int,
        default=1,
        metavar="K",
        help="split every step's batch into K micro-batches and add their gradients: the paper's batch "
        "on fewer or smaller GPUs (default 1)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that draw and crop the batches ahead of each step (default 0: the main thread)",
    )
    p.add_argument(
        "--plateau-db",
        type=float,
        default=None,
        help="stop early once the last fifth of the steps raised the best validation SDR by less than "
        "this (dB; default: the profile's, 0.1)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation, batches and labelled subset (default 0)"
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the profile's)")
    p.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        help="labelled share of training clips (sup default 1, semi default the profile's)",
    )
    p.add_argument("--contrastive-weight", type=float, default=None, help="weight of the contrastive term (paper 0.5)")
    p.add_argument(
        "--contrastive-group",
        type=int,
        default=None,
        help="weak/semi: examples whose entities are the candidates of one contrastive group "
        "(default: the profile's, the authors' 2; 1: only the estimate's own sub-mixture)",
    )
    p.add_argument("--no-consistency", action="store_true", help="weak/semi: leave out the consistency term (ablation)")
    p.add_argument("--no-contrastive", action="store_true", help="weak/semi: leave out the contrastive term (ablation)")
    p.add_argument(
        "--mixture-text",
        choices=MIXTURE_TEXTS,
        default=None,
        help="query of a sub-mixture: its caption as a 'sentence' (paper, default) or 'entity_mean'",
    )
    p.add_argument(
        "--sup-input",
        choices=SUP_INPUTS,
        default=None,
        help="sup/semi: a labelled example is one N-source 'mixture' (default) or a 'mixture_of_mixtures'",
    )
    p.add_argument(
        "--text-norm",
        choices=TEXT_NORMS,
        default=None,
        help="text normalisation: fixed 'vocabulary' statistics (default) or 'batch' (BatchNorm, ablation)",
    )
    p.add_argument(
        "--no-validate",
        action="store_true",
        help="no validation at checkpoints (no early stop; the last weights are the model)",
    )
    p.add_argument("--snapshots", action="store_true", help="keep the model of every checkpoint (training curves)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="build the model and print its size, FLOPs per step, activation memory and the expected "
        "hours of the profile's training on a GPU; train nothing",
    )
    p.add_argument(
        "--gpu-tflops",
        type=float,
        default=None,
        help="dry run: sustained GPU throughput in TFLOP/s to assume (default: weaksep.dry_run's)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:

    overrides = {
        k: v
        for k, v in {
            "steps": args.steps,
            "label_fraction": args.label_fraction,
            "contrastive_weight": args.contrastive_weight,
            "contrastive_group": args.contrastive_group,
            "lr": args.lr,
            "mixture_text": args.mixture_text,
            "sup_input": args.sup_input,
            "text_norm": args.text_norm,
        }.items()
        if v is not None
    }
    if args.no_consistency:
        overrides["consistency"] = False
    if args.no_contrastive:
        overrides["contrastive"] = False
    try:
        if args.dry_run:
            from .dry_run import dry_run, format_dry_run

            kw = {} if args.gpu_tflops is None else {"gpu_tflops": args.gpu_tflops}
            print(format_dry_run(dry_run(args.profile or "paper", args.regime, args.sources, **kw)))
            return 0
        if args.run_config:
            return _train_run_config(args)
        if args.regime is None:
            raise CliError("give --regime (or --run-config)")
        study = _training_study(
            args, args.profile, **({} if args.plateau_db is None else {"plateau_db": args.plateau_db})
        )
        path = study.train(
            args.regime,
            args.sources,
            seed=args.seed,
            out_dir=args.out,
            snapshots=args.snapshots,
            validate=not args.no_validate,
            **overrides,
        )
    except (ValueError, FileNotFoundError) as e:  # e.g. --out holding another config's run
        raise CliError(str(e)) from e
    print(f"model: {path}")
    return 0


def _training_study(args: argparse.Namespace, profile: Any, **extra: Any) -> Any:
    """The study ``weaksep train`` trains in: its data, CLAP and how it runs, from the arguments."""
    from .study import Study, resolve_data

    return Study(
        profile,
        data_root=args.data_root,
        clap_backend=args.clap,
        manifests=resolve_data(args.manifests, args.data_root),
        clap_checkpoint=args.clap_checkpoint,
        tokenizer_dir=args.tokenizer_dir,
        progress=not args.no_progress,
        accumulate=args.accumulate,
        workers=args.workers,
        **extra,
    )


def _train_run_config(args: argparse.Namespace) -> int:
    import json

    from .profiles import Profile
    from .runs import RunConfig

    saved = json.loads(open(args.run_config, encoding="utf-8").read())
    cfg = RunConfig(**saved)
    study = _training_study(args, Profile(**cfg.profile), gpus=1)  # already one of torchrun's processes
    path = study.train_run(cfg, args.out, snapshots=args.snapshots, validate=not args.no_validate)
    print(f"model: {path}")
    return 0


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score one checkpoint on the study's saved test mixtures",
        description="Separate every source of the study's fixed N-source test (or validation) mixtures with "
        "the checkpoint, each queried by its class name, and print the mean SDR (bss_eval, as "
        "mir_eval), SDR improvement over the mixture and SI-SDR over all queries, for the model "
        "and for the unprocessed mixture.",
    )
    p.add_argument("--checkpoint", "-c", required=True, metavar="CKPT", help="separator checkpoint to evaluate")
    p.add_argument("--sources", "-n", type=int, required=True, metavar="N", help="sources per test mixture (1-4)")
    p.add_argument(
        "--profile",
        default=None,
        choices=sorted(PROFILES),
        help="profile of the test mixtures (default: the checkpoint's)",
    )
    p.add_argument(
        "--split", default="test", choices=["test", "val"], help="which saved mixtures: test (default) or val"
    )
    p.add_argument("-o", "--out", default=None, metavar="CSV", help="also write the per-query rows to this CSV")
    p.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="where corpora and test sets are cached (default: $WEAKSEP_CACHE or ./.cache)",
    )
    p.add_argument(
        "--manifests",
        default=None,
        metavar="DIR",
        help="folder with train.csv / test.csv (path,label) of a real dataset instead of the rendered corpora",
    )
    p.add_argument(
        "--clap-checkpoint",
        default=None,
        metavar="FILE",
        help="the CLAP the separator was trained with (default: the one its run config names)",
    )
    p.add_argument(
        "--tokenizer-dir",
        default=None,
        metavar="DIR",
        help="laion CLAP only: folder with roberta-base's vocab.json and merges.txt",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .inference import load_for_inference
    from .io import atomic_write_text
    from .profiles import get_profile
    from .study import Study, resolve_data

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
        raise CliError(
            f"checkpoint {args.checkpoint} was trained at another scale than profile {profile.name!r}: "
            + ", ".join(f"{k} {saved.get(k)} vs {getattr(profile, k)}" for k in differ)
        )
    try:
        study = Study(
            profile,
            data_root=args.data_root,
            manifests=resolve_data(args.manifests, args.data_root),
            clap_backend=sep.run_config.get("clap", {}).get("backend"),
            clap_checkpoint=sep.clap_path,
            tokenizer_dir=args.tokenizer_dir,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    rows = study.evaluate({"model": sep.path}, args.sources, args.split)
    means = rows.groupby("run")[["sdr", "sdri", "si_sdr"]].mean().reindex(["model", "mixture"])
    n_queries = int((rows["run"] == "model").sum())
    print(
        f"{sep.path} on {n_queries} queries of the {profile.name} {args.split} mixtures, N = {args.sources} "
        f"(mean over queries, dB):"
    )
    print(means.rename(columns={"sdr": "SDR", "sdri": "SDRi", "si_sdr": "SI-SDR"}).round(2).to_string())
    if args.out:
        atomic_write_text(args.out, rows.to_csv(index=False))
        print(f"per-query rows: {args.out}")
    return 0


# --------------------------------------------------------------------------- gpu-check
def _add_gpu_check(sub: argparse._SubParsersAction) -> None:
    from .runs import REGIMES

    p = sub.add_parser(
        "gpu-check",
        help="time a few training steps and one validation of a profile on this machine's device",
        description="Train a profile's separator for a few steps on noise clips with an untrained CLAP of the "
        "profile's architecture (nothing to download), time the steps, one validation and the peak memory, "
        "and write them as JSON (weaksep/gpu_check.py).",
    )
    p.add_argument("--profile", default="paper", choices=sorted(PROFILES), help="profile (default: paper)")
    p.add_argument("--regime", choices=REGIMES, default="weak", help="training regime (default: weak)")
    p.add_argument("--sources", type=int, default=2, help="N (default 2)")
    p.add_argument("--steps", type=int, default=20, help="timed steps after the warm-up (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps (default 3)")
    p.add_argument("--batch-size", type=int, default=None, help="batch of one step here (default: the profile's)")
    p.add_argument("--accumulate", type=int, default=1, metavar="K", help="micro-batches per step (default 1)")
    p.add_argument("--val-mixtures", type=int, default=None, help="validation mixtures (default: the profile's)")
    p.add_argument(
        "-o", "--out", default="results/gpu_check.json", help="JSON to write (default: results/gpu_check.json)"
    )
    p.set_defaults(run=_run_gpu_check)


def _run_gpu_check(args: argparse.Namespace) -> int:
    import json

    from .gpu_check import gpu_check
    from .io import atomic_write_text

    figures = gpu_check(
        args.profile,
        args.regime,
        args.sources,
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
        accumulate=args.accumulate,
        val_mixtures=args.val_mixtures,
    )
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:36s} {value:.4g}" if isinstance(value, float) else f"{key:36s} {value}")
    print(f"written: {args.out}")
    return 0


# --------------------------------------------------------------------------- bench-data
def _add_bench_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-data",
        help="measure the data path on generated datasets of a real dataset's size",
        description="Write a MUSIC-layout and a VGGSound-layout dataset (at 1x and --scale x their clip count), "
        "prepare each, read training batches through the loader and write the figures as JSON "
        "(weaksep/bench_data.py).",
    )
    p.add_argument("--work", default=".cache/bench-data", help="folder for the generated data (removed after)")
    p.add_argument("--music-files", type=int, default=40, help="MUSIC recordings at 1x (default 40)")
    p.add_argument("--music-seconds", type=float, default=180.0, help="length of each recording (default 180)")
    p.add_argument("--vggsound-clips", type=int, default=2000, help="VGGSound clips of 10 s at 1x (default 2000)")
    p.add_argument("--scale", type=int, default=10, help="the larger size, as a multiple of 1x (default 10)")
    p.add_argument("--profile", default="paper", choices=sorted(PROFILES), help="profile of the batches")
    p.add_argument("--batches", type=int, default=200, help="training batches read per setting (default 200)")
    p.add_argument("-o", "--out", default="results/bench_data.json", help="JSON to write")
    p.set_defaults(run=_run_bench_data)


def _run_bench_data(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .bench_data import bench_data
    from .io import atomic_write_text

    command = (
        f"weaksep bench-data --music-files {args.music_files} --music-seconds {args.music_seconds:g} "
        f"--vggsound-clips {args.vggsound_clips} --scale {args.scale} --profile {args.profile} --batches {args.batches}"
    )

    def write(rows: list, finished: bool = False) -> None:  # after every row: a stopped run keeps its rows
        atomic_write_text(
            args.out, json.dumps({"command": command, "finished": finished, "rows": rows}, indent=2) + "\n"
        )

    rows = bench_data(
        Path(args.work),
        music_files=args.music_files,
        music_seconds=args.music_seconds,
        vggsound_clips=args.vggsound_clips,
        scale=args.scale,
        profile_name=args.profile,
        n_batches=args.batches,
        on_row=write,
    )
    write(rows, finished=True)
    print(f"written: {args.out}")
    return 0


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Text-queried audio source separation (weakly-supervised, Mahmud et al. ICLR 2024): "
        "separate your own audio, train a separator, evaluate one.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"weaksep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_separate(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_gpu_check(sub)
    _add_bench_data(sub)
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
            warnings.showwarning = lambda msg, *a, **k: print(
                f"{PROG}: warning: {_one_line(str(msg))}", file=sys.stderr
            )
            return args.run(args)
    except CliError as e:
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
