"""``make bench``: what the study costs on this machine, as medians of repeated runs.

Prints rendering and data-loading throughput, the default CLAP's audio tower
throughput and pretraining cost, training steps per second and peak memory
for every regime (and the cost of a weak step relative to an unsup step),
and the separation real-time factor, all at the quick profile. Each figure is
a median over repeats; training regimes run one after another in fresh
processes so that their peak memory is their own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_data(profile_name: str, repeats: int) -> dict[str, float]:
    from .data import ClipRenderer, MixtureSampler, find_soundfont, make_score
    from .profiles import get_profile
    from .study import Study

    p = get_profile(profile_name)
    renderer = ClipRenderer(find_soundfont(p.separation_soundfont, required=True), p.sample_rate)
    scores = [make_score("instruments", "violin", p.clip_seconds, seed) for seed in range(10)]
    t_render = _median_time(lambda: [renderer.render(s, p.clip_samples) for s in scores], repeats)
    clips = Study(p.name, progress=False).clips("train")
    sampler = MixtureSampler(clips, 2, p.batch_size, with_sources=False)
    g = torch.Generator().manual_seed(0)
    t_batch = _median_time(lambda: [sampler.sample(g) for _ in range(20)], repeats)
    return {"render_clips_per_s": 10 / t_render, "batches_per_s": 20 / t_batch}


def bench_clap_tower(profile_name: str, repeats: int) -> dict[str, float]:
    from .clap.proxy import ProxyClap
    from .profiles import get_profile

    p = get_profile(profile_name)
    clap = ProxyClap(p.sample_rate, p.n_mels, p.clap_channels)
    wav = torch.randn(p.clap_batch_size, p.clip_samples)
    with torch.no_grad():
        t_fwd = _median_time(lambda: clap.audio(wav), repeats)

    def step() -> None:
        clap.audio(wav).sum().backward()

    t_fb = _median_time(step, repeats)
    return {"clap_fwd_clips_per_s": len(wav) / t_fwd, "clap_fwd_bwd_clips_per_s": len(wav) / t_fb}


def checkout_of(commit: str) -> Path:
    """A worktree of ``commit`` under ``.cache/bench`` (made once), to time that code beside this one."""
    from .paths import REPO_ROOT, default_cache

    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = default_cache() / "bench" / f"before-{sha}"
    if not (path / "weaksep").exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(path), sha],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
    return path


def bench_step(
    regime: str, n_sources: int, profile_name: str, steps: int, code: Path | None = None
) -> dict[str, float]:
    """:mod:`weaksep.bench_step` in a fresh process, on this checkout or on the one at ``code``."""
    import os

    from .paths import REPO_ROOT, default_cache

    env = {**os.environ, "WEAKSEP_CACHE": str(default_cache()), "PYTHONPATH": str(code or REPO_ROOT)}
    out = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "weaksep" / "bench_step.py"),
            regime,
            str(n_sources),
            "--profile",
            profile_name,
            "--steps",
            str(steps),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(f"bench_step {regime} N={n_sources} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_separation(profile_name: str, repeats: int) -> dict[str, float]:
    from .clap.proxy import ProxyClap
    from .model import Separator
    from .profiles import get_profile
    from .runs import separator_config
    from .separate import separate_waveform

    p = get_profile(profile_name)
    clap = ProxyClap(p.sample_rate, p.n_mels, p.clap_channels).freeze()
    model = Separator(separator_config(p, clap)).eval()
    seconds = 60.0
    wav = torch.randn(1, int(seconds * 44100)) * 0.1
    t = _median_time(
        lambda: separate_waveform(model, clap, wav, 44100, ["violin"], p.sample_rate, progress=False), repeats
    )
    return {"separation_seconds_per_second": seconds / t}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m weaksep.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per regime")
    ap.add_argument(
        "--before",
        default=None,
        metavar="COMMIT",
        help="also time the training step of this earlier commit, side by side",
    )
    args = ap.parse_args(argv)

    print(
        f"weaksep bench, profile {args.profile}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"medians of {args.repeats} repeats"
    )
    for name, value in {
        **bench_data(args.profile, args.repeats),
        **bench_clap_tower(args.profile, args.repeats),
    }.items():
        print(f"  {name:32s} {value:10.1f}")
    card = Path("results/clap_card.json")
    if card.exists() and args.profile == "quick":
        c = json.loads(card.read_text())
        print(
            f"  {'clap_pretraining_wall_s (card)':32s} {c.get('wall_time_s', float('nan')):10.1f}   ({c.get('steps')} steps)"
        )
    before = checkout_of(args.before) if args.before else None
    if before:
        print(
            f"  training steps: this checkout beside {args.before} (a worktree in {before.name}), "
            "alternating fresh processes; FLOP share = achieved FLOP/s / a 1024^2 matmul's, same process"
        )
    rows = {}
    for regime, n in [
        ("unsup", 2),
        ("weak", 2),
        ("sup", 2),
        ("semi", 2),
        ("unsup", 3),
        ("weak", 3),
        ("sup", 3),
        ("unsup", 4),
        ("weak", 4),
        ("sup", 4),
    ]:
        r = rows[(regime, n)] = bench_step(regime, n, args.profile, args.steps)
        line = (
            f"  train {regime:5s} N={n}: {r['s_per_step']:.3f} s/step, {r['gflop_per_step']:5.1f} GFLOP, "
            f"FLOP share {100 * r['flops_share']:4.1f} %, peak RSS {r['peak_rss_gb']:.2f} GB"
        )
        if before:
            b = bench_step(regime, n, args.profile, args.steps, before)
            line += (
                f"   | before: {b['s_per_step']:.3f} s/step, {b['gflop_per_step']:5.1f} GFLOP, "
                f"share {100 * b['flops_share']:4.1f} %   speed-up {b['s_per_step'] / r['s_per_step']:.2f}x"
            )
        print(line, flush=True)
    for n in (2, 3, 4):
        ratio = rows[("weak", n)]["s_per_step"] / rows[("unsup", n)]["s_per_step"]
        print(f"  weak/unsup step cost, N={n}: {ratio:.2f}x")
    try:
        sep = bench_separation(args.profile, max(1, args.repeats // 2))
        print(f"  separation, 60 s input, one prompt: {sep['separation_seconds_per_second']:.1f} s of audio per s")
    except ImportError as e:
        print(f"  separation: not measured ({e})")
    from .paths import REPO_ROOT
    from .separate import benchmark_folder

    model = REPO_ROOT / "results" / "models" / "weak_n2.pt"
    if model.exists():
        r = benchmark_folder(model, n_files=20, seconds=60)
        print(
            f"  separation of a folder, 20 files x 60 s, one prompt, one call: "
            f"{r['audio_seconds_per_second']:.1f} s of audio per s ({r['model_load_share']:.1%} of it loading the model)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
