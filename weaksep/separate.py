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

``separate_files`` is what ``weaksep separate`` runs: files, folders (searched
recursively for every format soundfile reads) and glob patterns in one call,
one model load, the outputs of each input in ``OUTDIR/<input stem>/``, an
optional residual (the mixture minus the estimates, so that the outputs add
back up to the input), a CLAP confidence score per output in
``OUTDIR/scores.csv`` (see :mod:`weaksep.confidence`), and bad inputs skipped
with one line each. ``separate_file`` separates one file into one folder;
``separate_waveform`` works on tensors; ``overlap_add`` is the stitching alone;
``benchmark_folder`` measures the whole path on synthetic files.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from .checkpoint import load_separator
from .clap import ClapBackend, load_clap
from .data.manifest import read_audio  # noqa: F401 - part of this module's interface (cli, notebooks)
from .data.render import TARGET_RMS
from .io import atomic_write_text
from .model import Separator
from .paths import file_sha256

if TYPE_CHECKING:
    from .confidence import ConfidenceThreshold

# Training mixtures sum two clips rendered at TARGET_RMS with random gains:
# inputs are scaled to this RMS before separation and back afterwards, so a
# quiet recording meets the model at the level it was trained on.
REFERENCE_RMS = TARGET_RMS * math.sqrt(2)
DEFAULT_WINDOW_SECONDS = 2.048  # the quick profile's clip (16384 samples at 8 kHz)
PROGRESS_MIN_WINDOWS = 5  # a progress bar for inputs of at least this many windows
FALLBACK_CLAP = Path("results") / "models" / "clap_proxy.pt"  # relative to the repository
DEFAULT_CHECKPOINT = Path("results") / "models" / "weak_n2.pt"  # relative to the repository: the quick study's
RESIDUAL_FILE = "residual.wav"
SCORES_FILE = "scores.csv"
SCORE_COLUMNS = ("input", "prompt", "output", "estimate_score", "mixture_score", "absent_warning")
# Headerless RAW needs its rate and sample format spelled out: a folder scan cannot read it.
UNSCANNED_FORMATS = frozenset({"RAW"})
EXTENSION_ALIASES = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG", "snd": "AU"}


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
        w[length - ramp :] = torch.cos(phase) ** 2
    return w.float()


def window_count(length: int, window: int, overlap: float = 0.5) -> int:
    """How many windows ``overlap_add`` processes for a signal of ``length`` samples."""
    if length <= window:
        return 1
    ramp = round(overlap * window)
    hop = window - ramp
    return 1 + math.ceil(max(length + 2 * ramp - window, 0) / hop)


def overlap_add(
    signal: Tensor,
    process: Callable[[Tensor], Tensor],
    window: int,
    overlap: float = 0.5,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "separating",
) -> Tensor:
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
    with tqdm(
        total=frames.shape[0], desc=desc, unit="window", disable=not progress or n_win < PROGRESS_MIN_WINDOWS
    ) as bar:
        for i in range(0, frames.shape[0], batch_size):
            chunk = frames[i : i + batch_size]
            y = process(chunk)
            if y.dim() != 3 or y.shape[0] != chunk.shape[0] or y.shape[-1] != window:
                raise ValueError(
                    f"process must map ({chunk.shape[0]}, {window}) to (n, P, {window}), got {tuple(y.shape)}"
                )
            outs.append(y.to(signal.device, torch.float32))
            bar.update(chunk.shape[0])
    est = torch.cat(outs).reshape(b, n_win, -1, window)  # (B, n_win, P, window)
    weights = crossfade_window(window, ramp).to(signal.device)  # all ones for a single window (ramp 0)
    out = torch.zeros(b, est.shape[2], total, device=signal.device)
    for k in range(n_win):
        out[..., k * hop : k * hop + window] += est[:, k] * weights
    return out[..., ramp : ramp + t]


# --------------------------------------------------------------------------- separation
def _text_queries(
    model: Separator, clap: ClapBackend, prompts: Sequence[str], template: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """CLAP embeddings (1, P, D) and, for cross-attention models, token states and mask."""
    device = next(model.parameters()).device
    text = clap.embed_text(list(prompts), template=template).unsqueeze(0).to(device)
    if text.shape[-1] != model.cfg.text_dim:
        raise ValueError(
            f"the separator expects CLAP text embeddings of dimension {model.cfg.text_dim}, "
            f"the CLAP gives {text.shape[-1]}: it was trained with another CLAP"
        )
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
def separate_waveform(
    model: Separator,
    clap: ClapBackend,
    wav: Tensor,
    sample_rate: int,
    prompts: Sequence[str],
    model_rate: int,
    progress: bool = False,
    *,
    window: int | None = None,
    overlap: float = 0.5,
    batch_size: int = 8,
    template: bool = True,
    normalize: bool = True,
) -> Tensor:
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
        return model.separate(
            chunk.to(device),
            text.expand(n, -1, -1),
            None if states is None else states.expand(n, -1, -1, -1),
            None if mask is None else mask.expand(n, -1, -1),
        )

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
        return separate_waveform(
            self.model,
            self.clap,
            wav,
            sample_rate,
            prompts,
            model_rate=self.sample_rate,
            window=self.clip_samples,
            **kwargs,
        )


def recorded_clap_paths(recorded: str, checkpoint: Path, profile_name: str | None, repo_root: Path) -> list[Path]:
    """Where the CLAP a run config records may be, most likely first.

    Run configs record the CLAP as :func:`weaksep.paths.portable_path` wrote
    it: ``<repo>/...`` (under ``repo_root``), ``<cache>/...`` (under a folder
    above the checkpoint, the cache its run was trained in, or else the default
    cache), an absolute path (older runs), or a bare file
    name (a CLAP outside the checkout and the default cache, looked for beside
    the checkpoint and in ``<folder above it>/<profile>/clap/``, where a study
    keeps its CLAP).
    """
    from .paths import default_cache

    label, _, rest = recorded.partition("/")
    above = list(checkpoint.resolve().parents)
    if label == "<repo>":
        return [repo_root / rest]
    if label == "<cache>":  # the cache the run was trained in holds the run: look above it first
        return [*(a / rest for a in above), default_cache() / rest]
    p = Path(recorded)
    if p.is_absolute() or len(p.parts) > 1:
        return [p]
    return [checkpoint.parent / p, *((a / profile_name / "clap" / p) for a in above if profile_name)]


def load_for_inference(
    checkpoint: str | Path,
    clap_checkpoint: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    expected_profile: str | None = None,
    repo_root: str | Path | None = None,
) -> LoadedSeparator:
    """Load a separator checkpoint and the CLAP it was trained with.

    The CLAP is ``clap_checkpoint`` if given, else the one the run config
    names (see :func:`recorded_clap_paths`), else (when that path does not
    exist here, e.g. on another machine)
    ``<repo_root>/results/models/clap_proxy.pt``. A CLAP whose file differs
    from the one used in training gives a warning; one whose text embedding
    has another dimension is an error. With ``expected_profile`` (a profile
    name), a checkpoint of another model size is an error naming the settings
    that differ. Errors name the file and what was wrong.
    """
    from .profiles import get_profile
    from .runs import separator_config

    path = Path(checkpoint)
    model, run_config = load_separator(path)
    profile = run_config.get("profile") if isinstance(run_config, dict) else None
    if not isinstance(profile, dict) or not {"sample_rate", "clip_samples"} <= set(profile):
        raise ValueError(f"checkpoint {path} has no profile (sample_rate, clip_samples) in its run config")
    info = run_config.get("clap") or {}
    backend = info.get("backend", "proxy")
    if repo_root is None:
        from .paths import REPO_ROOT as repo_root  # read at call time: tests point it elsewhere
    if clap_checkpoint:
        candidates = [Path(clap_checkpoint)]
    else:
        candidates = (
            recorded_clap_paths(info["checkpoint"], path, profile.get("name"), Path(repo_root))
            if info.get("checkpoint")
            else []
        )
        if backend == "proxy":
            candidates.append(Path(repo_root) / FALLBACK_CLAP)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        tried = ", ".join(dict.fromkeys(str(c) for c in candidates[:4] + candidates[-1:])) or "no path recorded"
        raise FileNotFoundError(
            f"the {backend} CLAP of checkpoint {path} is not found ({tried}: no such file); "
            f"pass the CLAP file it was trained with (--clap-checkpoint)"
        )
    kwargs = {"tokenizer_dir": tokenizer_dir} if backend == "laion" and tokenizer_dir else {}
    clap = load_clap(backend, found, **kwargs)
    if clap.embed_dim != model.cfg.text_dim:
        raise ValueError(
            f"checkpoint {path} expects CLAP text embeddings of dimension {model.cfg.text_dim} but "
            f"CLAP {found} gives {clap.embed_dim}: the checkpoint belongs to another model"
        )
    if info.get("sha256") and file_sha256(found) != info["sha256"]:
        warnings.warn(
            f"CLAP {found} is not the file checkpoint {path} was trained with "
            f"(sha256 {info['sha256']}); the estimates may be poor",
            stacklevel=2,
        )
    if expected_profile is not None:
        expected = separator_config(get_profile(expected_profile), clap, model.cfg.text_norm)
        if model.cfg != expected:
            diff = {k: (v, expected.to_dict()[k]) for k, v in model.cfg.to_dict().items() if v != expected.to_dict()[k]}
            raise ValueError(
                f"checkpoint {path} is not a {expected_profile}-profile model: (saved, expected) differ in {diff}"
            )
    return LoadedSeparator(
        model, clap, int(profile["sample_rate"]), int(profile["clip_samples"]), run_config, path, found
    )


def prompt_filename(prompt: str) -> str:
    """``"a bowed string instrument"`` -> ``"a_bowed_string_instrument.wav"``."""
    name = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:80].strip("_")
    if not name:
        name = "prompt_" + hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"{name}.wav"


def output_paths(prompts: Sequence[str], out_dir: str | Path, residual: bool = False) -> list[Path]:
    """One ``<out_dir>/<slug>.wav`` per prompt, then ``<out_dir>/residual.wav`` with ``residual``.

    Two outputs with the same file name (two prompts, or a prompt "residual"
    beside the residual) are an error.
    """
    prompts = _check_prompts(prompts)
    names = [prompt_filename(p) for p in prompts]
    seen: dict[str, str] = {}
    for p, n in zip(prompts, names):
        if n in seen:
            raise ValueError(f"prompts {seen[n]!r} and {p!r} would both be written to {n}; make them differ")
        seen[n] = p
    if residual:
        if RESIDUAL_FILE in seen:
            raise ValueError(
                f"prompt {seen[RESIDUAL_FILE]!r} would be written to {RESIDUAL_FILE}, the residual's "
                f"file; rephrase it or leave out the residual"
            )
        names.append(RESIDUAL_FILE)
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


def separate_file(
    input_path: str | Path,
    prompts: Sequence[str],
    out_dir: str | Path,
    checkpoint: str | Path | LoadedSeparator,
    *,
    residual: bool = False,
    clap_checkpoint: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    expected_profile: str | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> list[Path]:
    """Separate one sound file into ``<out_dir>/<prompt slug>.wav``, one file per prompt.

    The outputs have the input's sample rate, length and channel count (32-bit
    float WAV); with ``residual``, ``<out_dir>/residual.wav`` holds the input
    minus the sum of the estimates. Everything is checked and computed before
    anything is written, and the files appear all together or not at all.
    ``kwargs`` go to :func:`separate_waveform` (``overlap``, ``batch_size``,
    ``template``, ``normalize``). Returns the written paths. For several
    inputs, folders, scores and ``OUTDIR/<input stem>/`` use :func:`separate_files`.
    """
    paths = output_paths(prompts, out_dir, residual)
    wav, rate = read_audio(input_path)
    sep = (
        checkpoint
        if isinstance(checkpoint, LoadedSeparator)
        else load_for_inference(checkpoint, clap_checkpoint, tokenizer_dir, expected_profile)
    )
    est = sep.separate(wav, rate, prompts, progress=progress, **kwargs)
    return write_outputs(with_residual(wav, est) if residual else est, rate, paths)


def with_residual(mixture: Tensor, estimates: Tensor) -> Tensor:
    """(P, C, T) estimates -> (P + 1, C, T): the last is ``mixture`` (C, T) minus their sum.

    Written as 32-bit float, the outputs then add back up to the input up to
    float32 rounding (a relative error of about 1e-7).
    """
    return torch.cat([estimates, (mixture.float() - estimates.sum(dim=0)).unsqueeze(0)])


# --------------------------------------------------------------------------- many inputs
def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (without the dot) of every format this soundfile reads, for folder scans.

    Each format's own name (``wav``, ``flac``, ``ogg``, ``mp3``, ``aiff``, ...)
    and the usual aliases (``aif``, ``oga``, ``opus``, ``snd``); headerless RAW
    is left out.
    """
    formats = set(sf.available_formats()) - UNSCANNED_FORMATS
    return frozenset({f.lower() for f in formats} | {a for a, f in EXTENSION_ALIASES.items() if f in formats})


def _scan_folder(folder: Path, exclude: Path | None) -> list[Path]:
    """Audio files under ``folder``, sorted; hidden files and folders and ``exclude`` left out.

    Hidden entries are skipped because they are not the user's recordings
    (``.git``, macOS ``._x.wav`` resource forks, our own ``.x.wav.tmp`` files).
    """
    extensions = audio_extensions()
    found = []
    for root, dirs, files in os.walk(folder):  # does not follow symbolic links to folders: no cycles
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        found += [here / f for f in files if not f.startswith(".") and Path(f).suffix[1:].lower() in extensions]
    return sorted(found)


def expand_inputs(
    inputs: str | Path | Sequence[str | Path], exclude: str | Path | None = None
) -> tuple[list[Path], list[str]]:
    """The sound files that ``inputs`` name, and one message per input that names none.

    Each input is a file (taken whatever its extension), a folder (searched
    recursively for :func:`audio_extensions`, hidden entries and the folder
    ``exclude`` — the output folder — left out) or a glob pattern (``*``, ``?``,
    ``[...]``; ``**`` spans folders). A file named twice is kept once, at its
    first place.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    skip = Path(exclude).resolve() if exclude is not None else None
    files: list[Path] = []
    problems: list[str] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            found = _scan_folder(path, skip)
            if not found:
                problems.append(
                    f"folder {path} holds no sound file (looked for {', '.join(sorted(audio_extensions()))})"
                )
        elif path.exists():
            found = [path]
        elif re.search(r"[*?\[]", str(spec)):
            import glob

            found = []
            for match in sorted(glob.glob(str(spec), recursive=True)):
                m = Path(match)
                found += _scan_folder(m, skip) if m.is_dir() else [m]
            if not found:
                problems.append(f"pattern {spec} matches no file")
        else:
            problems.append(f"audio file {path} does not exist")
            found = []
        files += found
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def probe_audio(path: str | Path) -> str | None:
    """Why soundfile cannot read ``path`` (from its header only), or ``None`` when it looks readable."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        return f"audio file {path} is not readable by soundfile ({type(e).__name__}: {e})"
    if info.frames == 0:
        return f"audio file {path} has zero length (no samples)"
    return None


def input_folder_names(paths: Sequence[str | Path], reserved: Collection[str] = (SCORES_FILE,)) -> list[str]:
    """The output folder of each input: its stem, made unique deterministically.

    Inputs of equal stems (compared without case, for case-insensitive file
    systems) are named by their stem preceded by as many of their parent
    folders as tell them apart, joined by ``__`` (``a/mix.wav``, ``b/mix.wav``
    -> ``a__mix``, ``b__mix``); files of one folder that differ only in
    extension keep it (``mix.wav``, ``mix.flac``). Names depend only on the set
    of files, not on their order. ``reserved`` names (the scores file) are
    avoided the same way.
    """
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError("the same file is listed twice; expand_inputs keeps one")
    taken = {r.casefold() for r in reserved}

    def label(p: Path, depth: int, keep_extension: bool) -> str:
        parents = list(p.parent.parts[1:])  # without the root
        return "__".join([*(parents[len(parents) - depth :] if depth else []), p.name if keep_extension else p.stem])

    names = [p.stem for p in resolved]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name.casefold(), []).append(i)
    for key, idx in groups.items():
        if len(idx) == 1 and key not in taken:
            continue
        deepest = max(len(resolved[i].parent.parts) - 1 for i in idx)
        tries = [(d, False) for d in range(1, deepest + 1)] + [(d, True) for d in range(deepest + 1)]
        for depth, keep_extension in tries:
            candidates = [label(resolved[i], depth, keep_extension) for i in idx]
            folded = {c.casefold() for c in candidates}
            if len(folded) == len(candidates) and not folded & taken:
                break
        for i, c in zip(idx, candidates):
            names[i] = c
    # A name made above may equal another input's stem: number the later one (by path).
    final = list(names)
    for i in sorted(range(len(names)), key=lambda i: str(resolved[i])):
        name, k = names[i], 2
        while name.casefold() in taken:
            name, k = f"{names[i]}_{k}", k + 1
        taken.add(name.casefold())
        final[i] = name
    return final


def default_checkpoint() -> Path:
    """``<repo>/results/models/weak_n2.pt``, the quick study's weak model; an error saying how to make it."""
    from .paths import REPO_ROOT  # read at call time: tests point it elsewhere

    path = REPO_ROOT / DEFAULT_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint given and no default model {path}; make one with `make reproduce` (the quick study) "
            f"or `weaksep train --regime weak --sources 2 --out runs/weak_n2`, then pass runs/weak_n2/model.pt as the "
            f"checkpoint (--checkpoint)"
        )
    return path


def _absent_threshold(
    sep: LoadedSeparator, confidence: str | Path | None, template: bool
) -> tuple[ConfidenceThreshold | None, str]:
    """The absent-sound threshold to use with ``sep`` (or ``None``) and a one-line note on it."""
    from .confidence import default_confidence_path, load_threshold

    if confidence is None:
        name = (sep.run_config.get("profile") or {}).get("name") if isinstance(sep.run_config, dict) else None
        if not name:
            return (
                None,
                f"no absent-sound warnings: checkpoint {sep.path} names no profile, so no default "
                f"confidence file; pass one",
            )
        path, required = default_confidence_path(name), False
    else:
        path, required = Path(confidence), True
    if not Path(sep.clap_path).is_file():
        return None, f"no absent-sound warnings: the CLAP file {sep.clap_path} cannot be hashed"
    threshold, note = load_threshold(path, sep.clap_path, required=required)
    if threshold is not None and not template:
        return None, (
            "no absent-sound warnings without the prompt template: the threshold was measured on templated prompts"
        )
    return threshold, note


def _stderr(message: str) -> None:
    print(f"weaksep: {message}", file=sys.stderr)


def separate_files(
    inputs: str | Path | Sequence[str | Path],
    prompts: Sequence[str],
    out_dir: str | Path,
    checkpoint: str | Path | LoadedSeparator | None = None,
    *,
    residual: bool = False,
    confidence: str | Path | None = None,
    clap_checkpoint: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    expected_profile: str | None = None,
    template: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = _stderr,
    echo: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Separate many sound files with one model load; write the outputs and their confidence scores.

    Args:
        inputs: files, folders (searched recursively) and glob patterns, see
            :func:`expand_inputs`; the output folder itself is never an input.
        prompts: P texts, one output per prompt and input.
        out_dir: the outputs of each input go to ``<out_dir>/<name>/<prompt
            slug>.wav`` (and ``residual.wav``), ``<name>`` its stem made unique
            by :func:`input_folder_names`; existing files of those names are
            replaced. ``<out_dir>/scores.csv`` gets this call's scores.
        checkpoint: a separator checkpoint, a :class:`LoadedSeparator`, or
            ``None`` for :func:`default_checkpoint`; loaded once.
        residual: also write ``residual.wav``, the input minus the sum of the
            estimates (float WAV, so the outputs add back up to the input).
        confidence: the absent-sound threshold file (an error if unreadable);
            ``None``: ``confidence.json`` in the results folder of the
            checkpoint's profile, or no warnings (with a note) when there is
            none or it belongs to another CLAP.
        template: put the prompts into the CLAP's template, for the separation
            and the scores alike.
        progress: a bar over windows for long inputs.
        log: receives one-line messages ``skipped: ...``, ``warning: ...`` and
            ``note: ...`` (default: printed to stderr as ``weaksep: ...``).
        echo: receives one line per written output (default: none).
        kwargs: go to :func:`separate_waveform` (``overlap``, ``batch_size``, ``normalize``).

    Returns:
        One row per (separated input, prompt), columns ``input``, ``prompt``,
        ``output`` (the file), ``estimate_score`` (CLAP cosine similarity of
        the estimate and the prompt), ``mixture_score`` (of the input and the
        prompt; see :mod:`weaksep.confidence`) and ``absent_warning`` (the
        mixture score is below the threshold; ``<NA>`` without a threshold),
        as written to ``scores.csv``. ``attrs["skipped"]`` lists one message
        per skipped input, ``attrs["timing"]`` the seconds spent loading the
        model and in all (``model_load_seconds``, ``total_seconds``) and the
        seconds of audio separated (``audio_seconds``).

    Raises:
        ValueError, FileNotFoundError: bad prompts, no input that can be read
            (with one input, its own message), a checkpoint or a named
            ``confidence`` file that cannot be loaded; nothing is written then.
            A bad input among good ones is skipped instead, the others are
            written.
    """
    start = time.perf_counter()
    log = log or (lambda message: None)
    out_dir = Path(out_dir)
    names = [p.name for p in output_paths(prompts, ".", residual)]  # checks the prompts before any slow work
    prompts = _check_prompts(prompts)
    files, problems = expand_inputs(inputs, exclude=out_dir)
    readable = []
    for f in files:
        problem = probe_audio(f)
        if problem:
            problems.append(problem)
        else:
            readable.append(f)
    if not readable:
        if len(problems) == 1:
            raise ValueError(problems[0])
        for problem in problems:
            log(f"skipped: {problem}")
        raise ValueError(f"nothing to separate: all {len(problems)} inputs were skipped")
    for problem in problems:
        log(f"skipped: {problem}")

    loading = time.perf_counter()
    sep = (
        checkpoint
        if isinstance(checkpoint, LoadedSeparator)
        else load_for_inference(
            checkpoint if checkpoint is not None else default_checkpoint(),
            clap_checkpoint,
            tokenizer_dir,
            expected_profile,
        )
    )
    load_seconds = time.perf_counter() - loading
    threshold, note = _absent_threshold(sep, confidence, template)  # before separating: a bad file fails early

    from .confidence import confidence_scores

    rows: list[dict[str, Any]] = []
    skipped = list(problems)
    audio_seconds = 0.0
    n_inputs = len(readable) + len(problems)
    for path, folder in zip(readable, input_folder_names(readable)):
        try:
            wav, rate = read_audio(path)
            est = sep.separate(wav, rate, prompts, progress=progress, template=template, **kwargs)  # (P, C, T)
        except (FileNotFoundError, ValueError) as e:  # e.g. NaN samples, found only when reading it all
            message = str(e) if str(path) in str(e) else f"audio file {path} cannot be separated: {e}"
            if n_inputs == 1:  # one input: its error is the call's
                raise ValueError(message) from e
            skipped.append(message)
            log(f"skipped: {message}")
            continue
        written = write_outputs(
            with_residual(wav, est) if residual else est, rate, [out_dir / folder / n for n in names]
        )
        window = max(1, round(sep.clip_samples * rate / sep.sample_rate))  # the training clip, at this rate
        est_scores, mix_scores = confidence_scores(sep.clap, wav, est, rate, prompts, window, template=template)
        audio_seconds += wav.shape[-1] / rate
        for prompt, out, e_score, m_score in zip(prompts, written, est_scores, mix_scores):
            warn = None if threshold is None else bool(threshold.warns(float(m_score)))
            rows.append(
                {
                    "input": str(path),
                    "prompt": prompt,
                    "output": str(out),
                    "estimate_score": float(e_score),
                    "mixture_score": float(m_score),
                    "absent_warning": warn,
                }
            )
            if echo:
                echo(f"{path}: {prompt!r} -> {out}  (CLAP score {e_score:.3f}; mixture {m_score:.3f})")
            if warn:
                log(
                    f"warning: {path}: {prompt!r} may be absent: the mixture's CLAP score {m_score:.3f} is "
                    f"{threshold.explain()}"
                )
        if residual and echo:
            echo(f"{path}: residual -> {written[-1]}")

    if not rows:
        raise ValueError(f"nothing separated: all {n_inputs} inputs were skipped")
    scores = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    scores["absent_warning"] = scores["absent_warning"].astype("boolean")
    atomic_write_text(out_dir / SCORES_FILE, scores.to_csv(index=False))
    scores.attrs["skipped"] = skipped
    scores.attrs["timing"] = {
        "model_load_seconds": load_seconds,
        "total_seconds": time.perf_counter() - start,
        "audio_seconds": audio_seconds,
    }
    log(f"note: {note}")
    log(
        f"note: separated {len(set(scores['input']))} of {n_inputs} input(s) ({audio_seconds:.1f} s of audio) "
        f"with {sep.path}; scores in {out_dir / SCORES_FILE}"
    )
    return scores


# --------------------------------------------------------------------------- cost
def separation_speed(
    sep: LoadedSeparator,
    seconds: float = 60.0,
    prompts: Sequence[str] = ("violin",),
    sample_rate: int | None = None,
    repeats: int = 1,
) -> dict[str, float]:
    """Real-time factor of ``sep`` on this machine: seconds of audio separated per second of wall time.

    A mono noise input of ``seconds`` at ``sample_rate`` (default: the model's)
    is separated ``repeats`` times after one warm-up window; the best time counts.
    """
    rate = sample_rate or sep.sample_rate
    wav = torch.randn(1, int(seconds * rate), generator=torch.Generator().manual_seed(0)) * 0.1
    sep.separate(wav[:, : sep.clip_samples], rate, prompts)  # warm-up: CLAP text cache, allocator
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        sep.separate(wav, rate, prompts)
        best = min(best, time.perf_counter() - t0)
    return {
        "audio_seconds": float(seconds),
        "wall_seconds": best,
        "realtime_factor": seconds / best,
        "prompts": len(prompts),
        "threads": torch.get_num_threads(),
    }


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
