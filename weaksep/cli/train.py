"""``weaksep train`` (one separator: one regime, one N; under torchrun too) and ``weaksep evaluate``
(one checkpoint on the study's saved test mixtures)."""

from __future__ import annotations

import argparse
from typing import Any

from ..profiles import PROFILES
from .common import CliError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    _add_evaluate(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from ..runs import MIXTURE_TEXTS, REGIMES, SUP_INPUTS, TEXT_NORMS

    p = sub.add_parser(
        "train",
        help="train a separator (one regime, one N)",
        description="Train one separator (one regime, one N) on the study's data, on one CPU, one "
        "GPU or many (under torchrun). Interrupted runs resume from --out.",
    )
    p.add_argument("--regime", choices=REGIMES, default=None, help="training regime (docs/METHOD.md#objective)")
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
        help="dry run: sustained GPU throughput in TFLOP/s to assume (default: weaksep.training.dry_run's)",
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
            from ..training.dry_run import dry_run, format_dry_run

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
    from ..reproduce.study import Study, resolve_data

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

    from ..profiles import Profile
    from ..runs import RunConfig

    saved = json.loads(open(args.run_config, encoding="utf-8").read())
    cfg = RunConfig(**saved)
    study = _training_study(args, Profile(**cfg.profile), gpus=1)  # already one of torchrun's processes
    path = study.train_run(cfg, args.out, snapshots=args.snapshots, validate=not args.no_validate)
    print(f"model: {path}")
    return 0


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
    from ..inference.waveform import load_for_inference
    from ..io import atomic_write_text
    from ..profiles import get_profile
    from ..reproduce.study import Study, resolve_data

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
