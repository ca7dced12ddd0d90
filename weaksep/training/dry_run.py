"""What a training run of a profile costs, known before it starts (``weaksep train --dry-run``).

Builds the profile's separator (and, for the ``laion`` backend, an untrained
HTSAT-base audio tower of the same size as LAION-CLAP's) without training it,
and measures on the CPU, for one example:

* the parameter count;
* the FLOPs of a training step (forward and backward, ``torch.utils.flop_counter``),
  counting the separator on every query of the regime and the CLAP audio tower
  on the 2N single-entity estimates of the weak objective;
* the activation memory of a training step: the bytes of every tensor saved
  for the backward pass.

It then scales them to the profile's global batch and step count and turns
FLOPs into hours at a stated sustained GPU throughput. Measured FLOPs do not
depend on the machine; the hours are only as good as the throughput assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..method.model import Separator, SeparatorConfig
from ..profiles import get_profile

# Sustained throughput assumed per GPU: about a sixth of an A100's dense bf16 peak
# (312 TFLOP/s), what convolution-heavy audio models typically sustain.
DEFAULT_GPU_TFLOPS = 50.0
DEFAULT_GPUS = 8  # the paper's setting
CLAP_RATE, CLAP_SECONDS = 48_000, 10.0  # LAION-CLAP's input: 10 s at 48 kHz (estimates are resampled and padded)
HTSAT_EMBED_DIM = 512


@dataclass
class DryRun:
    profile: str
    regime: str
    n_sources: int
    parameters: int
    queries_per_example: int
    separator_gflop_per_example: float
    clap_gflop_per_example: float
    gflop_per_step: float
    activation_gb_per_example: float
    batch_size: int
    steps: int
    gpus: int
    gpu_tflops: float
    hours: float


def _queries(regime: str, n: int) -> int:
    return {"unsup": 2, "weak": 2 + 2 * n, "sup": n, "semi": 2 + 2 * n}[regime]


def _flops_and_saved_bytes(fn) -> tuple[float, float]:
    """FLOPs of ``fn()`` (forward and backward) and the bytes of tensors saved for backward."""
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = fn()
        loss.backward()
    return float(counter.get_total_flops()), float(saved)


def _htsat_audio_tower() -> torch.nn.Module | None:
    """An untrained HTSAT-base LAION-CLAP (its audio branch is what counts here), or None without laion_clap."""
    try:
        from ..clap.untrained import untrained_clap_model

        return untrained_clap_model("HTSAT-base", vocab_size=100)
    except ImportError:
        return None


def dry_run(
    profile_name: str = "paper",
    regime: str = "weak",
    n_sources: int = 2,
    gpu_tflops: float = DEFAULT_GPU_TFLOPS,
    gpus: int = DEFAULT_GPUS,
) -> DryRun:
    """Measure one example of a ``regime`` step at ``profile_name``'s size (see the module docstring)."""
    p = get_profile(profile_name)
    text_dim = 512 if p.clap_backend == "laion" else 384
    state_dim = 768 if p.clap_backend == "laion" else 384
    cfg = SeparatorConfig(
        n_fft=p.n_fft,
        hop=p.hop,
        channels=tuple(p.unet_channels),
        text_dim=text_dim,
        text_state_dim=state_dim,
        conditioning=p.conditioning,
        cond_levels=p.cond_levels,
        head_channels=p.head_channels,
        text_norm="vocabulary",
    )
    model = Separator(cfg)
    q = _queries(regime, n_sources)
    wav = torch.randn(1, p.clip_samples)
    text = torch.randn(1, q, text_dim)
    tokens = 12  # a prompt such as "The sound of acoustic guitar" is about a dozen tokens
    states = torch.randn(1, q, tokens, state_dim) if p.conditioning == "cross_attention" else None
    mask = torch.ones(1, q, tokens, dtype=torch.bool) if states is not None else None

    def separator_step() -> torch.Tensor:
        masks, spec = model(wav, text, states, mask)
        return (masks * spec.abs().unsqueeze(1)).mean()

    sep_flops, sep_bytes = _flops_and_saved_bytes(separator_step)
    clap_flops = clap_bytes = 0.0
    if regime in ("weak", "semi") and n_sources > 1:
        n_clips = 2 * n_sources
        if p.clap_backend == "laion":
            tower = _htsat_audio_tower()
            if tower is not None:
                branch = tower.audio_branch
                audio = torch.randn(1, int(CLAP_RATE * CLAP_SECONDS), requires_grad=True)

                def clap_step() -> torch.Tensor:
                    out = branch({"waveform": audio}, mixup_lambda=None, device=torch.device("cpu"))
                    return out["embedding"].sum()

                one_flops, one_bytes = _flops_and_saved_bytes(clap_step)
                clap_flops, clap_bytes = one_flops * n_clips, one_bytes * n_clips
        else:
            from ..clap.proxy import ProxyClap

            clap = ProxyClap(p.sample_rate, p.n_mels, p.clap_channels).freeze()
            audio = torch.randn(n_clips, p.clip_samples, requires_grad=True)
            clap_flops, clap_bytes = _flops_and_saved_bytes(lambda: clap.embed_audio(audio, p.sample_rate).sum())
    per_example = sep_flops + clap_flops
    step_flops = per_example * p.batch_size
    hours = step_flops * p.steps / (gpu_tflops * 1e12 * gpus) / 3600
    return DryRun(
        profile=p.name,
        regime=regime,
        n_sources=n_sources,
        parameters=sum(x.numel() for x in model.parameters()),
        queries_per_example=q,
        separator_gflop_per_example=sep_flops / 1e9,
        clap_gflop_per_example=clap_flops / 1e9,
        gflop_per_step=step_flops / 1e9,
        activation_gb_per_example=(sep_bytes + clap_bytes) / 2**30,
        batch_size=p.batch_size,
        steps=p.steps,
        gpus=gpus,
        gpu_tflops=gpu_tflops,
        hours=hours,
    )


def format_dry_run(d: DryRun) -> str:
    """The dry run as the lines ``weaksep train --dry-run`` prints."""
    return "\n".join(
        [
            f"dry run: profile {d.profile}, regime {d.regime}, N = {d.n_sources} (nothing trained)",
            f"  separator parameters          {d.parameters / 1e6:10.2f} M",
            f"  queries per example           {d.queries_per_example:10d}",
            f"  FLOPs per example, fwd + bwd  {d.separator_gflop_per_example:10.1f} G separator "
            f"+ {d.clap_gflop_per_example:.1f} G CLAP audio tower",
            f"  FLOPs per step (batch {d.batch_size:3d})    {d.gflop_per_step / 1e3:10.2f} T",
            f"  activation memory per example {d.activation_gb_per_example:10.2f} GB (tensors saved for backward, fp32)",
            f"  {d.steps} steps at {d.gpu_tflops:g} TFLOP/s sustained on each of {d.gpus} GPUs: {d.hours:.1f} h",
        ]
    )
