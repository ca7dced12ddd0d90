"""Separate audio of any length, rate and channel count with a trained separator.

The separator was trained on clips of ``clip_samples`` samples at the study's
rate. A user's file is resampled to that rate, cut into windows of one clip
length that overlap by ``overlap`` (a fraction of the window), each window is
separated, and the estimates are weighted by a crossfade window and added
back together (overlap-add). The crossfade rises as sin² and falls as cos²
over the overlap, so the weights of overlapping windows sum to exactly one:
a signal the model passes through unchanged comes out unchanged, without
seams at the window boundaries. At ``overlap=0.5`` the window is a Hann
window at 50 % overlap. The result is resampled back to the input's rate
and cut to its length; each channel of a stereo file is separated on its own.

``separate_file`` is what ``weaksep separate`` runs; ``separate_waveform``
works on tensors; ``overlap_add`` is the stitching alone.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from .checkpoint import load_separator
from .clap import ClapBackend, load_clap
from .data.manifest import read_audio  # noqa: F401 - part of this module's interface (cli, notebooks)
from .data.render import TARGET_RMS
from .model import Separator

# Training mixtures sum two clips rendered at TARGET_RMS with random gains:
# inputs are scaled to this RMS before separation and back afterwards, so a
# quiet recording meets the model at the level it was trained on.
REFERENCE_RMS = TARGET_RMS * math.sqrt(2)
DEFAULT_WINDOW_SECONDS = 2.048  # the quick profile's clip (16384 samples at 8 kHz)
PROGRESS_MIN_WINDOWS = 5  # a progress bar for inputs of at least this many windows
FALLBACK_CLAP = Path("results") / "models" / "clap_proxy.pt"  # relative to the repository


# --------------------------------------------------------------------------- stitching
def crossfade_window(length: int, ramp: int) -> Tensor:
    """(length,) weights: sin² rise over ``ramp`` samples, flat 1, cos² fall over ``ramp``.

    Shifted by ``length - ramp`` samples, the fall of one window and the rise
    of the next add up to one at every sample.
    """
    if not 0 <= 2 * ramp <= length:
        raise ValueError(f"crossfade ramp {ramp} must be within 0..{length // 2} for a window of {length}")
    w = torch.ones(length, dtype=torch.float64)
    if ramp:
        phase = (torch.arange(ramp, dtype=torch.float64) + 0.5) * (math.pi / (2 * ramp))
        w[:ramp] = torch.sin(phase) ** 2
        w[length - ramp:] = torch.cos(phase) ** 2
    return w.float()


def window_count(length: int, window: int, overlap: float = 0.5) -> int:
    """How many windows ``overlap_add`` processes for a signal of ``length`` samples."""
    if length <= window:
        return 1
    ramp = round(overlap * window)
    hop = window - ramp
    return 1 + math.ceil(max(length + 2 * ramp - window, 0) / hop)


def overlap_add(signal: Tensor, process: Callable[[Tensor], Tensor], window: int, overlap: float = 0.5,
                batch_size: int = 8, progress: bool = False, desc: str = "separating") -> Tensor:
    """Run ``process`` on overlapping windows of ``signal`` and crossfade the results.

    Args:
        signal: (B, T) waveforms.
        process: maps windows (n, window) to outputs (n, P, window), P the same every call.
        window: window length in samples.
        overlap: share of the window that overlaps the next one, 0..0.5 (0.5: Hann at 50 %).
        batch_size: windows per ``process`` call.
        progress: show a tqdm bar over windows (only for inputs of several windows).

    Returns:
        (B, P, T). A signal no longer than ``window`` is processed once, zero-padded
        to ``window``. Otherwise ``overlap * window`` zeros pad its start, so that the
        first window's rise and the last window's fall lie outside the signal.
    """
    if signal.dim() != 2:
        raise ValueError(f"overlap_add expects (batch, samples), got shape {tuple(signal.shape)}")
    if not 0 <= overlap <= 0.5:
        raise ValueError(f"overlap must be within 0..0.5, got {overlap}")
    b, t = signal.shape
    if t == 0:
        raise ValueError("cannot separate an empty signal (0 samples)")
    ramp = round(overlap * window)
    hop = window - ramp
    if t <= window:
        ramp, total = 0, window
    else:
        total = window + hop * (window_count(t, window, overlap) - 1)
    padded = torch.nn.functional.pad(signal, (ramp, total - ramp - t))
    frames = padded.unfold(-1, window, hop).reshape(-1, window)  # (B * n_win, window), batch-major
    n_win = frames.shape[0] // b

    from tqdm import tqdm  # a text bar: the command line is its main user

    outs = []
    with tqdm(total=frames.shape[0], desc=desc, unit="window",
              disable=not progress or n_win < PROGRESS_MIN_WINDOWS) as bar:
        for i in range(0, frames.shape[0], batch_size):
            chunk = frames[i:i + batch_size]
            y = process(chunk)
            if y.dim() != 3 or y.shape[0] != chunk.shape[0] or y.shape[-1] != window:
                raise ValueError(f"process must map ({chunk.shape[0]}, {window}) to (n, P, {window}), "
                                 f"got {tuple(y.shape)}")
            outs.append(y.to(signal.device, torch.float32))
            bar.update(chunk.shape[0])
    est = torch.cat(outs).reshape(b, n_win, -1, window)  # (B, n_win, P, window)
    weights = crossfade_window(window, ramp).to(signal.device)  # all ones for a single window (ramp 0)
    out = torch.zeros(b, est.shape[2], total, device=signal.device)
    for k in range(n_win):
        out[..., k * hop:k * hop + window] += est[:, k] * weights
    return out[..., ramp:ramp + t]


# --------------------------------------------------------------------------- separation
def _text_queries(model: Separator, clap: ClapBackend, prompts: Sequence[str], template: bool
                  ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """CLAP embeddings (1, P, D) and, for cross-attention models, token states and mask."""
    device = next(model.parameters()).device
    text = clap.embed_text(list(prompts), template=template).unsqueeze(0).to(device)
    if text.shape[-1] != model.cfg.text_dim:
        raise ValueError(f"the separator expects CLAP text embeddings of dimension {model.cfg.text_dim}, "
                         f"the CLAP gives {text.shape[-1]}: it was trained with another CLAP")
    states = mask = None
    if model.cfg.conditioning == "cross_attention":
        s, m = clap.text_states(list(prompts), template=template)
        states, mask = s.unsqueeze(0).to(device), m.unsqueeze(0).to(device)
    return text, states, mask


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompt given: pass at least one text prompt, e.g. 'violin'")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i + 1} is empty ({p!r}); a prompt names the sound to extract, e.g. 'violin'")
    return [p.strip() for p in prompts]


@torch.no_grad()
def separate_waveform(model: Separator, clap: ClapBackend, wav: Tensor, sample_rate: int, prompts: Sequence[str],
                      model_rate: int, progress: bool = False, *, window: int | None = None, overlap: float = 0.5,
                      batch_size: int = 8, template: bool = True, normalize: bool = True) -> Tensor:
    """Estimates (P, C, T) of every prompt's sound in ``wav`` (C, T) or (T,) at ``sample_rate`` Hz.

    Args:
        model, clap: the separator and the CLAP it was trained with.
        prompts: P texts; with ``template`` each is put into the CLAP's prompt
            template ("The sound of {entity}"), as in training.
        model_rate: the separator's sample rate (the profile's ``sample_rate``).
        window: samples per window at ``model_rate``: pass the separator's
            training clip length (the profile's ``clip_samples``, as
            :class:`LoadedSeparator` does); default ``DEFAULT_WINDOW_SECONDS``.
        overlap, batch_size, progress: see :func:`overlap_add`.
        normalize: scale the input to the level of the training mixtures
            (``REFERENCE_RMS``) before separating, and the estimates back after.

    Returns:
        (P, C, T) float32 at ``sample_rate``, T and C those of ``wav`` ((P, 1, T) for a 1-D input).
    """
    prompts = _check_prompts(prompts)
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2 or wav.shape[-1] == 0:
        raise ValueError(f"expected a (channels, samples) waveform with samples, got shape {tuple(wav.shape)}")
    if window is None:
        window = round(DEFAULT_WINDOW_SECONDS * model_rate)
    model.eval()
    wav = wav.float()
    length = wav.shape[-1]
    x = AF.resample(wav, int(sample_rate), int(model_rate)) if sample_rate != model_rate else wav
    gain = 1.0
    if normalize:
        rms = float(x.pow(2).mean().sqrt())
        gain = REFERENCE_RMS / rms if rms > 1e-8 else 1.0
    text, states, mask = _text_queries(model, clap, prompts, template)
    device = text.device

    def process(chunk: Tensor) -> Tensor:
        n = chunk.shape[0]
        return model.separate(chunk.to(device), text.expand(n, -1, -1),
                              None if states is None else states.expand(n, -1, -1, -1),
                              None if mask is None else mask.expand(n, -1, -1))

    est = overlap_add(x * gain, process, window, overlap, batch_size, progress) / gain  # (C, P, T')
    est = est.transpose(0, 1).contiguous()  # (P, C, T')
    if sample_rate != model_rate:
        est = AF.resample(est, int(model_rate), int(sample_rate))
    if est.shape[-1] >= length:
        return est[..., :length].contiguous()
    return torch.nn.functional.pad(est, (0, length - est.shape[-1]))


# --------------------------------------------------------------------------- checkpoints and files
@dataclass
class LoadedSeparator:
    """A separator ready for inference: the model, its CLAP and the settings it was trained with."""

    model: Separator
    clap: ClapBackend
    sample_rate: int  # the separator's rate, Hz
    clip_samples: int  # its training clip length: the window of ``separate_waveform``
    run_config: dict[str, Any]
    path: Path
    clap_path: Path

    def separate(self, wav: Tensor, sample_rate: int, prompts: Sequence[str], **kwargs: Any) -> Tensor:
        """``separate_waveform`` with this model: (C, T) at ``sample_rate`` -> (P, C, T)."""
        return separate_waveform(self.model, self.clap, wav, sample_rate, prompts, model_rate=self.sample_rate,
                                 window=self.clip_samples, **kwargs)


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]  # as Study.clap_info records it


def load_for_inference(checkpoint: str | Path, clap_checkpoint: str | Path | None = None,
                       tokenizer_dir: str | Path | None = None, expected_profile: str | None = None,
                       repo_root: str | Path | None = None) -> LoadedSeparator:
    """Load a separator checkpoint and the CLAP it was trained with.

    The CLAP is ``clap_checkpoint`` if given, else the one the run config
    names, else (when that path does not exist here, e.g. on another machine)
    ``<repo_root>/results/models/clap_proxy.pt``. A CLAP whose file differs
    from the one used in training gives a warning; one whose text embedding
    has another dimension is an error. With ``expected_profile`` (a profile
    name), a checkpoint of another model size is an error naming the settings
    that differ. Errors name the file and what was wrong.
    """
    from .profiles import get_profile
    from .train import separator_config

    path = Path(checkpoint)
    model, run_config = load_separator(path)
    profile = run_config.get("profile") if isinstance(run_config, dict) else None
    if not isinstance(profile, dict) or not {"sample_rate", "clip_samples"} <= set(profile):
        raise ValueError(f"checkpoint {path} has no profile (sample_rate, clip_samples) in its run config")
    info = run_config.get("clap") or {}
    backend = info.get("backend", "proxy")
    if repo_root is None:
        from .study import REPO_ROOT as repo_root
    if clap_checkpoint:
        candidates = [Path(clap_checkpoint)]
    else:
        candidates = [Path(info["checkpoint"])] if info.get("checkpoint") else []
        if backend == "proxy":
            candidates.append(Path(repo_root) / FALLBACK_CLAP)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        tried = ", ".join(str(c) for c in candidates) or "no path recorded"
        raise FileNotFoundError(f"the {backend} CLAP of checkpoint {path} is not found ({tried}: no such file); "
                                f"pass the CLAP file it was trained with (--clap-checkpoint)")
    kwargs = {"tokenizer_dir": tokenizer_dir} if backend == "laion" and tokenizer_dir else {}
    clap = load_clap(backend, found, **kwargs)
    if clap.embed_dim != model.cfg.text_dim:
        raise ValueError(f"checkpoint {path} expects CLAP text embeddings of dimension {model.cfg.text_dim} but "
                         f"CLAP {found} gives {clap.embed_dim}: the checkpoint belongs to another model")
    if info.get("sha256") and _file_sha(found) != info["sha256"]:
        warnings.warn(f"CLAP {found} is not the file checkpoint {path} was trained with "
                      f"(sha256 {info['sha256']}); the estimates may be poor", stacklevel=2)
    if expected_profile is not None:
        expected = separator_config(get_profile(expected_profile), clap)
        if model.cfg != expected:
            diff = {k: (v, expected.to_dict()[k]) for k, v in model.cfg.to_dict().items() if v != expected.to_dict()[k]}
            raise ValueError(f"checkpoint {path} is not a {expected_profile}-profile model: (saved, expected) "
                             f"differ in {diff}")
    return LoadedSeparator(model, clap, int(profile["sample_rate"]), int(profile["clip_samples"]), run_config,
                           path, found)


def prompt_filename(prompt: str) -> str:
    """``"a bowed string instrument"`` -> ``"a_bowed_string_instrument.wav"``."""
    name = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:80].strip("_")
    if not name:
        name = "prompt_" + hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"{name}.wav"


def output_paths(prompts: Sequence[str], out_dir: str | Path) -> list[Path]:
    """One ``<out_dir>/<slug>.wav`` per prompt; two prompts with the same file name are an error."""
    prompts = _check_prompts(prompts)
    names = [prompt_filename(p) for p in prompts]
    seen: dict[str, str] = {}
    for p, n in zip(prompts, names):
        if n in seen:
            raise ValueError(f"prompts {seen[n]!r} and {p!r} would both be written to {n}; make them differ")
        seen[n] = p
    return [Path(out_dir) / n for n in names]


def write_outputs(estimates: Tensor, sample_rate: int, paths: Sequence[Path]) -> list[Path]:
    """Write (P, C, T) estimates as 32-bit float WAVs, all or none.

    Every file is first written beside its target under a temporary name; only
    when all are written are they renamed into place. A failure removes the
    temporary files (and the output folder, if this call created it).
    """
    paths = [Path(p) for p in paths]
    folders = sorted({p.parent for p in paths})
    created = [f for f in folders if not f.exists()]
    temps: list[Path] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for f in folders:
            f.mkdir(parents=True, exist_ok=True)
        for est, p in zip(estimates, paths):
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
            os.close(fd)
            temps.append(Path(tmp))
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs get the usual mode
            sf.write(tmp, est.T.numpy(), int(sample_rate), subtype="FLOAT", format="WAV")
        for tmp, p in zip(temps, paths):
            os.replace(tmp, p)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        for f in reversed(created):
            try:
                f.rmdir()
            except OSError:
                pass
        raise
    return paths


def separate_file(input_path: str | Path, prompts: Sequence[str], out_dir: str | Path,
                  checkpoint: str | Path | LoadedSeparator, *, clap_checkpoint: str | Path | None = None,
                  tokenizer_dir: str | Path | None = None, expected_profile: str | None = None,
                  progress: bool = True, **kwargs: Any) -> list[Path]:
    """Separate one sound file into ``<out_dir>/<prompt slug>.wav``, one file per prompt.

    The outputs have the input's sample rate, length and channel count (32-bit
    float WAV). Everything is checked and computed before anything is written,
    and the files appear all together or not at all. ``kwargs`` go to
    :func:`separate_waveform` (``overlap``, ``batch_size``, ``template``,
    ``normalize``). Returns the written paths.
    """
    paths = output_paths(prompts, out_dir)
    wav, rate = read_audio(input_path)
    sep = checkpoint if isinstance(checkpoint, LoadedSeparator) else load_for_inference(
        checkpoint, clap_checkpoint, tokenizer_dir, expected_profile)
    est = sep.separate(wav, rate, prompts, progress=progress, **kwargs)
    return write_outputs(est, rate, paths)


def separation_speed(sep: LoadedSeparator, seconds: float = 60.0, prompts: Sequence[str] = ("violin",),
                     sample_rate: int | None = None, repeats: int = 1) -> dict[str, float]:
    """Real-time factor of ``sep`` on this machine: seconds of audio separated per second of wall time.

    A mono noise input of ``seconds`` at ``sample_rate`` (default: the model's)
    is separated ``repeats`` times after one warm-up window; the best time counts.
    """
    import time

    rate = sample_rate or sep.sample_rate
    wav = torch.randn(1, int(seconds * rate), generator=torch.Generator().manual_seed(0)) * 0.1
    sep.separate(wav[:, : sep.clip_samples], rate, prompts)  # warm-up: CLAP text cache, allocator
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        sep.separate(wav, rate, prompts)
        best = min(best, time.perf_counter() - t0)
    return {"audio_seconds": float(seconds), "wall_seconds": best, "realtime_factor": seconds / best,
            "prompts": len(prompts), "threads": torch.get_num_threads()}
