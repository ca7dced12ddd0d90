"""A trained separator applied to a waveform: load it with its CLAP, separate any length, rate and channel count.

:func:`load_for_inference` loads a separator checkpoint and finds the CLAP it
was trained with, giving a :class:`LoadedSeparator` that also knows the
separator's sample rate and training clip length. :func:`separate_waveform`
separates a (C, T) tensor: it is resampled to the separator's rate, scaled to
the level of the training mixtures, separated in crossfaded windows of one
clip length (:func:`weaksep.inference.overlap_add.overlap_add`), scaled back, resampled
to the input's rate and cut to its length; each channel is separated on its
own. Files, folders and scores are :mod:`weaksep.inference.separate`'s.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchaudio.functional as AF
from torch import Tensor

from ..clap import ClapBackend, load_clap
from ..data.render import TARGET_RMS
from ..method.model import Separator
from ..paths import file_sha256
from ..training.checkpoint import load_separator
from .overlap_add import overlap_add

# Training mixtures sum two clips rendered at TARGET_RMS with random gains:
# inputs are scaled to this RMS before separation and back afterwards, so a
# quiet recording meets the model at the level it was trained on.
REFERENCE_RMS = TARGET_RMS * math.sqrt(2)
DEFAULT_WINDOW_SECONDS = 2.048  # the quick profile's clip (16384 samples at 8 kHz)
FALLBACK_CLAP = Path("results") / "models" / "clap_proxy.pt"  # relative to the repository
INSTRUMENT_CHECKPOINT = Path("results") / "models" / "weak_n2.pt"  # relative to the repository: the quick study's
# Which model `weaksep separate` uses without a checkpoint: written by notebook 09 (the recorded-events
# model with the best validation SDR), else the instrument model above.
DEFAULT_CHOICE = Path("results") / "models" / "default_separator.json"
DEFAULT_CHECKPOINT = INSTRUMENT_CHECKPOINT  # the fallback, for messages


# --------------------------------------------------------------------------- separation
def check_prompts(prompts: Sequence[str]) -> list[str]:
    """``prompts`` stripped of surrounding spaces; an error naming the first empty one, or none given."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompt given: pass at least one text prompt, e.g. 'violin'")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i + 1} is empty ({p!r}); a prompt names the sound to extract, e.g. 'violin'")
    return [p.strip() for p in prompts]


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
    prompts = check_prompts(prompts)
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


# --------------------------------------------------------------------------- loading
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
    keeps its CLAP). A ``<cache>/...`` CLAP is also looked for beside the checkpoint under
    its file name (``results/models/proxy-v2-...-data....pt``: the recorded corpus's CLAP).
    """
    from ..paths import default_cache

    label, _, rest = recorded.partition("/")
    above = list(checkpoint.resolve().parents)
    if label == "<repo>":
        return [repo_root / rest]
    if label == "<cache>":  # the cache the run was trained in holds the run: look above it first
        # then beside the checkpoint under its cache name, where a study commits a dataset's own CLAP
        return [*(a / rest for a in above), default_cache() / rest, checkpoint.parent / Path(rest).name]
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
    from ..profiles import get_profile
    from ..runs import separator_config

    path = Path(checkpoint)
    model, run_config = load_separator(path)
    profile = run_config.get("profile") if isinstance(run_config, dict) else None
    if not isinstance(profile, dict) or not {"sample_rate", "clip_samples"} <= set(profile):
        raise ValueError(f"checkpoint {path} has no profile (sample_rate, clip_samples) in its run config")
    info = run_config.get("clap") or {}
    backend = info.get("backend", "proxy")
    if repo_root is None:
        from ..paths import REPO_ROOT as repo_root  # read at call time: tests point it elsewhere
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


def default_checkpoint(instruments: bool = False) -> Path:
    """The model ``weaksep separate`` uses without a checkpoint: the one ``results/models/default_separator.json``
    names (notebook 09: the recorded-events model with the best validation SDR), else, or with
    ``instruments``, the quick study's instrument model ``results/models/weak_n2.pt``; an error saying how to make it."""
    import json

    from ..paths import REPO_ROOT  # read at call time: tests point it elsewhere

    choice = REPO_ROOT / DEFAULT_CHOICE
    path = REPO_ROOT / INSTRUMENT_CHECKPOINT
    if not instruments and choice.is_file():
        path = choice.parent / json.loads(choice.read_text())["model"]
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint given and no default model {path}; make one with `make reproduce` (the quick study) "
            f"or `weaksep train --regime weak --sources 2 --out runs/weak_n2`, then pass runs/weak_n2/model.pt as the "
            f"checkpoint (--checkpoint)"
        )
    return path
