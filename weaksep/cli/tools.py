"""The verbs that measure what the study costs: ``bench``, ``bench-step``, ``bench-data``, ``gpu-check``,
and ``budget`` (a cheaper training budget held to the profile's seed spread)."""

from __future__ import annotations

import argparse

from ..profiles import PROFILES


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_bench(sub)
    _add_bench_step(sub)
    _add_bench_data(sub)
    _add_gpu_check(sub)
    _add_budget(sub)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="what the study costs on this machine, as medians of repeated runs",
        description="What the study costs on this machine, as medians of repeated runs: rendering and "
        "data-loading throughput, the default CLAP's audio tower, training steps per second and peak memory "
        "of every regime (each in a fresh process), and the separation real-time factor (weaksep/tools/bench.py).",
    )
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="profile (default: quick)")
    p.add_argument("--repeats", type=int, default=5, help="repeats each figure is the median of (default 5)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per regime")
    p.add_argument(
        "--before",
        default=None,
        metavar="COMMIT",
        help="also time the training step of this earlier commit, side by side",
    )
    p.add_argument(
        "--whole-runs",
        nargs="+",
        metavar="REGIME:N",
        help="only time whole training runs (e.g. weak:2), each beside --before's, alternating which goes first",
    )
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from ..tools.bench import checkout_of, run_benchmarks, time_whole_runs

    before = checkout_of(args.before) if args.before else None
    if args.whole_runs:
        return time_whole_runs(args.whole_runs, args.profile, before)
    return run_benchmarks(args.profile, args.repeats, args.steps, before, args.before)


def _add_bench_step(sub: argparse._SubParsersAction) -> None:
    from ..runs import REGIMES

    p = sub.add_parser(
        "bench-step",
        help="the cost of one training step (or one whole run), as one JSON line",
        description="The cost of one training step, measured in this process: median s/step over --steps steps "
        "after 2 warm-up steps, the step's FLOPs, the GFLOP/s of a 1024 x 1024 fp32 matrix product measured "
        "just before, and the step's achieved FLOP/s as a share of it (weaksep/tools/bench_step.py). `weaksep bench` "
        "runs the same code in fresh processes, beside an earlier commit's.",
    )
    p.add_argument("regime", choices=REGIMES, help="training regime")
    p.add_argument("n_sources", type=int, metavar="N", help="sources per training mixture")
    p.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="profile (default: quick)")
    p.add_argument("--steps", type=int, default=8, help="timed steps after 2 warm-up steps (default 8)")
    p.add_argument("--profiler", action="store_true", help="print a torch.profiler table of 3 steps instead")
    p.add_argument("--whole-run", action="store_true", help="time one whole training run instead (JSON: seconds)")
    p.add_argument("--flush-denormal", action="store_true", help="flush denormal floats to zero (a lever measured)")
    p.set_defaults(run=_run_bench_step)


def _run_bench_step(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..tools.bench_step import measure, profiler_table, whole_run

    if args.flush_denormal:
        torch.set_flush_denormal(True)
    if args.whole_run:
        print(json.dumps(whole_run(args.profile, args.regime, args.n_sources)))
    elif args.profiler:
        print(profiler_table(args.profile, args.regime, args.n_sources))
    else:
        print(json.dumps(measure(args.profile, args.regime, args.n_sources, args.steps)))
    return 0


def _add_gpu_check(sub: argparse._SubParsersAction) -> None:
    from ..runs import REGIMES

    p = sub.add_parser(
        "gpu-check",
        help="time a few training steps and one validation of a profile on this machine's device",
        description="Train a profile's separator for a few steps on noise clips with an untrained CLAP of the "
        "profile's architecture (nothing to download), time the steps, one validation and the peak memory, "
        "and write them as JSON (weaksep/tools/gpu_check.py).",
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

    from ..io import atomic_write_text
    from ..tools.gpu_check import gpu_check

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


def _add_bench_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-data",
        help="measure the data path on generated datasets of a real dataset's size",
        description="Write a MUSIC-layout and a VGGSound-layout dataset (at 1x and --scale x their clip count), "
        "prepare each, read training batches through the loader and write the figures as JSON "
        "(weaksep/tools/bench_data.py).",
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

    from ..io import atomic_write_text
    from ..tools.bench_data import bench_data

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


def _add_budget(sub: argparse._SubParsersAction) -> None:
    from ..runs import REGIMES

    p = sub.add_parser(
        "budget",
        help="a cheaper training budget, held to the seed spread of the profile's",
        description="A cheaper training budget, held to the seed spread of the profile's: runs of the "
        "profile's budget and of the cheaper one (--steps, --lr, --batch-size) are trained with the same seeds "
        "and compared by their best validation SDR; writes results/budget_lever.csv and "
        "results/configs/budget_lever.json (weaksep/tools/budget.py).",
    )
    p.add_argument(
        "--profile", default=None, choices=sorted(PROFILES), help="study profile (default: $WEAKSEP_PROFILE or quick)"
    )
    p.add_argument("--steps", type=int, help="the cheaper budget's steps (default: the profile's)")
    p.add_argument("--lr", type=float, help="the cheaper budget's learning rate (default: the profile's)")
    p.add_argument("--batch-size", type=int, help="the cheaper budget's batch (default: the profile's)")
    p.add_argument(
        "--regimes", nargs="+", default=["unsup", "weak", "sup"], choices=REGIMES, help="default: unsup weak sup"
    )
    p.add_argument("--sources", nargs="+", type=int, default=[2, 3], metavar="N", help="default: 2 3")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds of both budgets (default: 0 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_budget)


def _run_budget(args: argparse.Namespace) -> int:
    from ..tools.budget import budget_lever

    cheaper = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("batch_size", args.batch_size)) if v}
    table = budget_lever(args.profile, cheaper, args.regimes, args.sources, args.seeds, not args.no_progress)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
