"""``make bench``: what the study costs on this machine, as medians of repeated runs.

Prints rendering and data-loading throughput, the default CLAP's audio tower
throughput and pretraining cost, training steps per second and peak memory
for every regime (and the cost of a weak step relative to an unsup step),
and the separation real-time factor, all at the quick profile. Each figure is
a median over repeats; training regimes run one after another in fresh
processes so that their peak memory is their own. With the committed weak
model it also times separating a folder of files, model load included.

:func:`benchmark_folder` (what ``weaksep separate`` costs on a folder of
synthetic recordings) can also be called alone.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
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
    from ..data import ClipRenderer, MixtureSampler, find_soundfont, make_score
    from ..profiles import get_profile
    from ..reproduce.study import Study

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
    from ..clap.proxy import ProxyClap
    from ..profiles import get_profile

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
    from ..paths import REPO_ROOT, default_cache

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


# This checkout's bench_step.py, loaded from its file, so that the weaksep it measures is the one on
# PYTHONPATH (this checkout or an earlier commit's, whose command line may not know bench-step).
_RUN_BENCH_STEP = (
    "import importlib.util, json, sys; "
    "spec = importlib.util.spec_from_file_location('weaksep_bench_step', sys.argv[1]); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
    "[(name, args)] = json.loads(sys.argv[2]).items(); "
    "print(json.dumps(getattr(m, name)(*args)))"
)


def bench_step(
    regime: str, n_sources: int, profile_name: str, steps: int, code: Path | None = None, whole_run: bool = False
) -> dict[str, float]:
    """:mod:`weaksep.tools.bench_step` in a fresh process, on this checkout or on the one at ``code``.

    ``whole_run``: one whole training run (``{"seconds", "budget_steps"}``) instead of ``steps`` steps.
    """
    import os

    from ..paths import REPO_ROOT, default_cache

    env = {**os.environ, "WEAKSEP_CACHE": str(default_cache()), "PYTHONPATH": str(code or REPO_ROOT)}
    call = (
        {"whole_run": [profile_name, regime, n_sources]}
        if whole_run
        else {"measure": [profile_name, regime, n_sources, steps]}
    )
    out = subprocess.run(
        [sys.executable, "-c", _RUN_BENCH_STEP, str(Path(__file__).with_name("bench_step.py")), json.dumps(call)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(f"bench_step {regime} N={n_sources} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_separation(profile_name: str, repeats: int) -> dict[str, float]:
    from ..clap.proxy import ProxyClap
    from ..inference.waveform import separate_waveform
    from ..method.model import Separator
    from ..profiles import get_profile
    from ..runs import separator_config

    p = get_profile(profile_name)
    clap = ProxyClap(p.sample_rate, p.n_mels, p.clap_channels).freeze()
    model = Separator(separator_config(p, clap)).eval()
    seconds = 60.0
    wav = torch.randn(1, int(seconds * 44100)) * 0.1
    t = _median_time(
        lambda: separate_waveform(model, clap, wav, 44100, ["violin"], p.sample_rate, progress=False), repeats
    )
    return {"separation_seconds_per_second": seconds / t}


def _synthetic_recording(seconds: float, sample_rate: int, channels: int, seed: int) -> np.ndarray:
    """(frames, channels) float32: two tones with a slow tremolo over soft noise, like a busy recording."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f1, f2 = rng.uniform(110, 880, size=2)
    tone = 0.2 * np.sin(2 * np.pi * f1 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) + 0.1 * np.sin(2 * np.pi * f2 * t)
    return np.stack([tone + 0.02 * rng.standard_normal(t.size) for _ in range(channels)], 1).astype(np.float32)


def benchmark_folder(
    model_path: str | Path,
    n_files: int = 20,
    seconds: float = 60.0,
    prompts: Sequence[str] = ("violin",),
    sample_rate: int = 44100,
    channels: int = 1,
    residual: bool = False,
    **kwargs: Any,
) -> dict[str, float]:
    """What separating a folder costs: ``n_files`` synthetic files of ``seconds`` each, in one call.

    The files (16-bit WAV at ``sample_rate`` Hz, ``channels`` channels, as a
    recording would come) are written to a temporary folder and separated by
    one :func:`separate_files` call, which loads the model once, writes every
    output and scores it; everything is removed afterwards. ``kwargs`` go to
    :func:`separate_files`.

    Returns:
        ``audio_seconds_per_second`` (seconds of audio separated per second of
        wall time, model load included), ``model_load_share`` (the share of the
        wall time spent loading the model), and the figures they come from:
        ``files``, ``audio_seconds``, ``wall_seconds``, ``model_load_seconds``,
        ``prompts``, ``sample_rate``, ``channels``, ``threads``.
    """
    if n_files < 1 or seconds <= 0:
        raise ValueError(f"need at least one file of positive length, got {n_files} files of {seconds} s")
    from ..inference.separate import separate_files  # imported where used, like every weaksep import of this module

    with tempfile.TemporaryDirectory(prefix="weaksep-bench-") as tmp:
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        for i in range(n_files):
            sf.write(
                inputs / f"recording_{i:03d}.wav",
                _synthetic_recording(seconds, sample_rate, channels, i),
                sample_rate,
                subtype="PCM_16",
            )
        start = time.perf_counter()
        scores = separate_files(inputs, prompts, Path(tmp) / "out", model_path, residual=residual, log=None, **kwargs)
        wall = time.perf_counter() - start
    if scores.attrs["skipped"]:
        raise RuntimeError(f"the benchmark skipped inputs: {scores.attrs['skipped']}")
    load = scores.attrs["timing"]["model_load_seconds"]
    audio = scores.attrs["timing"]["audio_seconds"]
    return {
        "files": n_files,
        "audio_seconds": audio,
        "wall_seconds": wall,
        "audio_seconds_per_second": audio / wall,
        "model_load_seconds": load,
        "model_load_share": load / wall,
        "prompts": len(prompts),
        "sample_rate": sample_rate,
        "channels": channels,
        "threads": torch.get_num_threads(),
    }


def time_whole_runs(cells: Sequence[str], profile_name: str, before: Path | None) -> int:
    """Print the wall time of one whole training run per ``REGIME:N`` cell, beside ``before``'s code when given.

    Each run is a fresh process with the machine's cache (data and CLAP) and a
    fresh run folder; the two codes alternate which goes first, cell by cell,
    so that a drift in the machine's speed does not favour one of them.
    """
    print(f"whole training runs, profile {profile_name}: seconds from Study.train's call to its model")
    codes = {"now": None, **({"before": before} if before else {})}
    total = dict.fromkeys(codes, 0.0)
    for k, cell in enumerate(cells):
        regime, _, n = cell.partition(":")
        if not n.isdigit():
            raise SystemExit(f"--whole-runs: {cell!r} is not REGIME:N (for example weak:2)")
        order = list(codes) if k % 2 == 0 else list(codes)[::-1]
        got = {name: bench_step(regime, int(n), profile_name, 0, codes[name], whole_run=True) for name in order}
        line = f"  {regime:5s} N={n}: now {got['now']['seconds']:6.0f} s ({got['now']['budget_steps']} steps budget)"
        if before:
            b = got["before"]
            line += f" | before {b['seconds']:6.0f} s ({b['budget_steps']} steps)  now/before {got['now']['seconds'] / b['seconds']:.2f}"
        for name, r in got.items():
            total[name] += r["seconds"]
        print(line, flush=True)
    if before:
        print(
            f"  all: now {total['now']:.0f} s, before {total['before']:.0f} s, now/before {total['now'] / total['before']:.2f}"
        )
    return 0


def run_benchmarks(profile: str, repeats: int, steps: int, before: Path | None = None, before_name: str = "") -> int:
    """Print every figure of ``weaksep bench``; with ``before`` (a checkout of commit ``before_name``), its
    training steps beside this checkout's."""
    print(
        f"weaksep bench, profile {profile}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"medians of {repeats} repeats"
    )
    for name, value in {
        **bench_data(profile, repeats),
        **bench_clap_tower(profile, repeats),
    }.items():
        print(f"  {name:32s} {value:10.1f}")
    card = Path("results/clap_card.json")
    if card.exists() and profile == "quick":
        c = json.loads(card.read_text())
        print(
            f"  {'clap_pretraining_wall_s (card)':32s} {c.get('wall_time_s', float('nan')):10.1f}   ({c.get('steps')} steps)"
        )
    if before:
        print(
            f"  training steps: this checkout beside {before_name} (a worktree in {before.name}), "
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
        r = rows[(regime, n)] = bench_step(regime, n, profile, steps)
        line = (
            f"  train {regime:5s} N={n}: {r['s_per_step']:.3f} s/step, {r['gflop_per_step']:5.1f} GFLOP, "
            f"FLOP share {100 * r['flops_share']:4.1f} %, peak RSS {r['peak_rss_gb']:.2f} GB"
        )
        if before:
            b = bench_step(regime, n, profile, steps, before)
            line += (
                f"   | before: {b['s_per_step']:.3f} s/step, {b['gflop_per_step']:5.1f} GFLOP, "
                f"share {100 * b['flops_share']:4.1f} %   speed-up {b['s_per_step'] / r['s_per_step']:.2f}x"
            )
        print(line, flush=True)
    for n in (2, 3, 4):
        ratio = rows[("weak", n)]["s_per_step"] / rows[("unsup", n)]["s_per_step"]
        print(f"  weak/unsup step cost, N={n}: {ratio:.2f}x")
    try:
        sep = bench_separation(profile, max(1, repeats // 2))
        print(f"  separation, 60 s input, one prompt: {sep['separation_seconds_per_second']:.1f} s of audio per s")
    except ImportError as e:
        print(f"  separation: not measured ({e})")
    from ..paths import REPO_ROOT

    model = REPO_ROOT / "results" / "models" / "weak_n2.pt"
    if model.exists():
        r = benchmark_folder(model, n_files=20, seconds=60)
        print(
            f"  separation of a folder, 20 files x 60 s, one prompt, one call: "
            f"{r['audio_seconds_per_second']:.1f} s of audio per s ({r['model_load_share']:.1%} of it loading the model)"
        )
    return 0
