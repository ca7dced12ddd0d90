"""Waveform augmentations for pretraining the default CLAP.

They make the audio tower hear through what separates the pretraining clips
from what it will be asked about: another soundfont's timbre (EQ, pitch),
rooms (reverb), and the leakage and noise of a separator's estimates
(a faint interfering clip, noise). All act on a batch (B, T) at once.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import Tensor


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def random_eq(wav: Tensor, g: torch.Generator, max_db: float = 9.0) -> Tensor:
    """A random smooth gain curve over log-frequency (three cosines), up to +-max_db dB."""
    b, t = wav.shape
    spec = torch.fft.rfft(wav, dim=-1)
    logf = torch.linspace(0, 1, spec.shape[-1]).sqrt()  # denser control at low frequencies
    curve = torch.zeros(b, spec.shape[-1])
    for k in (1, 2, 3):
        amp = _uniform(b, -max_db / 3, max_db / 3, g)[:, None]
        phase = _uniform(b, 0, 2 * math.pi, g)[:, None]
        curve += amp * torch.cos(k * math.pi * logf[None] + phase)
    return torch.fft.irfft(spec * 10 ** (curve / 20), n=t, dim=-1)


def random_reverb(wav: Tensor, sample_rate: int, g: torch.Generator, prob: float = 0.4) -> Tensor:
    """Convolve a random share of the clips with exponentially decaying noise (RT60 0.1-0.8 s).

    The impulse response is cut at 0.4 s (-21 dB for the longest RT60): the
    convolution was the costliest augmentation.
    """
    b, t = wav.shape
    chosen = torch.rand(b, generator=g) < prob
    if not chosen.any():
        return wav
    # Only the chosen clips are convolved.
    out = wav.clone()
    out[chosen] = _reverberate(wav[chosen], sample_rate, g)
    return out


def _reverberate(wav: Tensor, sample_rate: int, g: torch.Generator) -> Tensor:
    b, t = wav.shape
    n_ir = int(0.4 * sample_rate)
    time = torch.arange(n_ir) / sample_rate
    rt60 = _uniform(b, 0.1, 0.8, g)[:, None]
    ir = torch.randn(b, n_ir, generator=g) * torch.exp(-6.9 * time[None] / rt60)
    ir[:, 0] = 1.0  # keep the direct sound
    ir = ir / ir.norm(dim=-1, keepdim=True)
    wet = torchaudio.functional.fftconvolve(wav, ir)[:, :t]
    return wet * (wav.norm(dim=-1, keepdim=True) / wet.norm(dim=-1, keepdim=True).clamp_min(1e-8))


def random_speed(wav: Tensor, sample_rate: int, g: torch.Generator, max_semitones: float = 1.0) -> Tensor:
    """One random speed change (pitch and tempo, up to +-max_semitones) for the whole batch."""
    factor = 2 ** (float(_uniform(1, -max_semitones, max_semitones, g)) / 12)
    new_rate = int(round(sample_rate / factor / 100)) * 100
    if new_rate == sample_rate:
        return wav
    out = torchaudio.functional.resample(wav, sample_rate, new_rate)
    t = wav.shape[-1]
    return out[..., :t] if out.shape[-1] >= t else torch.nn.functional.pad(out, (0, t - out.shape[-1]))


def add_interference(
    wav: Tensor, others: Tensor, g: torch.Generator, db: tuple[float, float] = (-25.0, -8.0)
) -> Tensor:
    """Add ``others`` (B, T) at a random level of ``db`` relative to each clip."""
    rms = lambda x: x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)  # noqa: E731
    level = 10 ** (_uniform(wav.shape[0], *db, g)[:, None] / 20)
    return wav + others * (rms(wav) / rms(others)) * level


def add_noise(wav: Tensor, g: torch.Generator, snr_db: tuple[float, float] = (15.0, 45.0)) -> Tensor:
    rms = wav.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)
    snr = 10 ** (_uniform(wav.shape[0], *snr_db, g)[:, None] / 20)
    return wav + torch.randn(wav.shape, generator=g) * rms / snr


def augment(wav: Tensor, others: Tensor, sample_rate: int, g: torch.Generator) -> Tensor:
    """All of the above, in a fixed order, with randomness from ``g``. wav, others: (B, T)."""
    wav = random_speed(wav, sample_rate, g)
    wav = random_eq(wav, g)
    wav = random_reverb(wav, sample_rate, g)
    wav = add_interference(wav, others, g)
    wav = add_noise(wav, g)
    return wav * _uniform(wav.shape[0], 0.3, 2.0, g)[:, None]
