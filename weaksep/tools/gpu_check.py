"""A few timed training steps and one validation of a profile on whatever device is present.

``weaksep gpu-check`` (``make gpu-check``) answers, on the first machine with a GPU, what
the dry run can only estimate: the step time, throughput and peak memory of a profile's
training step, the share of it spent waiting for data, the time of one validation, and
what the profile's whole step budget would cost at that speed. It needs no download:
the ``paper`` profile runs LAION-CLAP's architecture with random weights and a small
local tokenizer (:mod:`weaksep.clap.untrained`), the smaller profiles an untrained
default CLAP, and the clips are noise (speed does not depend on what is heard). CI runs
it at the smoke size on the CPU, so that it cannot rot.
"""

from __future__ import annotations

import platform
import resource
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..clap import ClapBackend, load_clap
from ..data import ClipSet, build_mixtures
from ..method.objective import BatchSource
from ..profiles import Profile, get_profile
from ..runs import RunConfig
from ..training.distrib import setup_runtime
from ..training.train import accumulated_backward, build_separator, make_optimizer
from ..training.validation import validate

N_CLASSES, CLIPS_PER_CLASS = 11, 4  # noise clips: 2N distinct classes for any N up to 4


def _noise_clips(p: Profile, seed: int = 0) -> ClipSet:
    g = torch.Generator().manual_seed(seed)
    labels = [f"class {c}" for c in range(N_CLASSES) for _ in range(CLIPS_PER_CLASS)]
    audio = 0.1 * torch.randn(len(labels), p.clip_samples, generator=g)
    return ClipSet.from_labels(audio, labels, p.sample_rate)


def _untrained_clap(p: Profile, workdir: Path) -> ClapBackend:
    if p.clap_backend == "laion":
        from ..clap.untrained import make_checkpoint, make_tokenizer_dir

        tokenizer_dir, vocab = make_tokenizer_dir(workdir / "tokenizer")
        make_checkpoint(workdir / "clap.pt", "HTSAT-base", vocab)
        return load_clap("laion", workdir / "clap.pt", tokenizer_dir=tokenizer_dir)
    from ..clap.proxy import ProxyClap

    return ProxyClap(p.sample_rate, p.n_mels, p.clap_channels).freeze()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB; the process's peak RSS


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def gpu_check(
    profile: str = "paper",
    regime: str = "weak",
    n_sources: int = 2,
    steps: int = 20,
    warmup: int = 3,
    batch_size: int | None = None,
    accumulate: int = 1,
    val_mixtures: int | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) and one validation; return the figures.

    ``batch_size`` (default: the profile's) is the batch of one step on this device;
    ``val_mixtures`` (default: the profile's ``n_val_mixtures``) the size of the validation.
    Times are in seconds (step time: the median over the timed steps), memory in GiB.
    """
    p = get_profile(profile, **({"batch_size": batch_size} if batch_size else {}))
    rt = setup_runtime()
    device = rt.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clips = _noise_clips(p)
    with tempfile.TemporaryDirectory() as tmp:
        clap = _untrained_clap(p, Path(tmp)).to(device).freeze()
    cfg = RunConfig(
        regime=regime,
        n_sources=n_sources,
        profile=p.to_dict(),
        steps=steps,
        contrastive_group=p.contrastive_group,
        label_fraction=0.5 if regime == "semi" else 1.0,
    )
    model = build_separator(cfg, p, clap, clips).to(device)
    opt = make_optimizer(model, cfg, p, device)
    source = BatchSource(clips, cfg, p, p.batch_size, rt.rank)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    model.train()
    step_s, data_s = [], []
    for step in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        batches = source.batch(step)  # drawn on the main thread, as the training loop does
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        accumulated_backward(model, clap, batches, cfg, p.sample_rate, accumulate, autocast)
        opt.step()
        _sync(device)
        t2 = time.perf_counter()
        if step >= warmup:
            step_s.append(t2 - t1 + (t1 - t0))
            data_s.append(t1 - t0)
    n_val = val_mixtures or p.n_val_mixtures
    val = build_mixtures(clips, n_sources, n_val, p.mixture_gain_db, seed=1)
    t0 = time.perf_counter()
    validate(model, clap, val, p.eval_batch_size)
    validation_s = time.perf_counter() - t0
    step_time = statistics.median(step_s)
    return {
        "device": _device_name(device),
        "precision": "bf16 autocast for the separator, float32 CLAP" if device.type == "cuda" else "float32",
        "profile": p.name,
        "clap": f"{p.clap_backend}, untrained (random weights, the real architecture)",
        "regime": regime,
        "n_sources": n_sources,
        "batch_size": p.batch_size,
        "accumulate": accumulate,
        "steps_timed": steps,
        "warmup_steps": warmup,
        "step_time_s": step_time,
        "step_time_min_s": min(step_s),
        "step_time_max_s": max(step_s),
        "samples_per_s": p.batch_size / step_time,
        "data_wait_share": statistics.median(data_s) / step_time,
        "peak_memory_gb": _peak_memory_gb(device),
        "peak_memory_kind": "device (max allocated)" if device.type == "cuda" else "host (peak RSS of the process)",
        "validation_s": validation_s,
        "validation_mixtures": n_val,
        "profile_steps": p.steps,
        "estimated_hours_for_profile_steps": p.steps * step_time / 3600,
        "torch": torch.__version__,
    }
