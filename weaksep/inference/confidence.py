"""How far to trust a separation: reference-free CLAP scores, and when to warn that a sound is absent.

One purpose: the score, the threshold measured with it and the file that carries
the threshold are defined together so that they cannot drift apart.

**Score.** The cosine similarity between the CLAP audio embedding of a signal
and the CLAP text embedding of the prompt (put into the CLAP's template, "The
sound of {entity}", as in training): the reference-free score of CLAPScore.
``weaksep separate`` gives it for every estimate and for the whole mixture.
A signal is scored in windows of the separator's training clip length (the
length of the study's test mixtures, on which the threshold below is
measured): consecutive windows, the last one ending at the signal's end, the
score being the mean over the windows where the mixture is not silent. A
signal shorter than one window is repeated to fill it, as LAION-CLAP does,
because zeros would pull the audio tower's mean and max pooling towards the
embedding of silence.

**Threshold.** :func:`measure_threshold` scores every saved test mixture of the
study against the prompt of each class of the corpus: the classes it contains
("present" prompts) and all the others ("absent" prompts). The rule:

    threshold = numpy.quantile(present-prompt scores, 0.05)   (linear interpolation)

that is, the level below which 5 % of the prompts of sounds that *are* in a
mixture score. A user's mixture scoring below it for a prompt gets a warning
that the sound may be absent; by construction about 5 % of present prompts are
warned about on the test mixtures, and the share of absent prompts warned about
is what the CLAP's discrimination buys. Both rates are reported, on the test
mixtures and on the held-out validation mixtures. The threshold belongs to one
CLAP file and is only used with it (its sha256 is stored beside it).

``weaksep confidence --profile quick`` measures it and writes
``results/confidence.json`` (``results/<profile>/confidence.json`` for the other
profiles), which ``weaksep separate`` reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..data.manifest import SILENCE_PEAK
from ..io import atomic_write_text
from ..paths import default_results_dir, file_sha256, portable_path

if TYPE_CHECKING:
    from ..clap import ClapBackend
    from ..reproduce.study import Study

FORMAT = "weaksep-confidence-v1"
FILE_NAME = "confidence.json"
DEFAULT_QUANTILE = 0.05
DEFAULT_SOURCES = (2, 3, 4)  # the study's test mixtures: user mixtures hold a few sources
EMBED_BATCH = 16  # windows per CLAP call: bounds memory on long files


# --------------------------------------------------------------------------- scores
def window_starts(length: int, window: int) -> list[int]:
    """Start samples of the scoring windows of a signal of ``length`` samples.

    Consecutive windows of ``window`` samples; the last one ends at the
    signal's end (overlapping its predecessor) so that no sample is left out.
    A signal of at most one window has one window, starting at 0.
    """
    if length < 1 or window < 1:
        raise ValueError(f"cannot score a signal of {length} samples in windows of {window}")
    if length <= window:
        return [0]
    n = math.ceil(length / window)
    return [k * window for k in range(n - 1)] + [length - window]


def cut_windows(signals: Tensor, window: int) -> Tensor:
    """(S, T) signals -> (S, W, window) scoring windows (see :func:`window_starts`).

    A signal shorter than ``window`` is repeated to fill its one window.
    """
    if signals.dim() != 2:
        raise ValueError(f"expected (signals, samples), got shape {tuple(signals.shape)}")
    length = signals.shape[-1]
    if length < window:
        return signals.repeat(1, math.ceil(window / length))[:, None, :window]
    return torch.stack([signals[:, s : s + window] for s in window_starts(length, window)], dim=1)


@torch.no_grad()
def embed_windows(clap: ClapBackend, windows: Tensor, sample_rate: int, batch_size: int = EMBED_BATCH) -> Tensor:
    """(..., window) waveforms at ``sample_rate`` Hz -> (..., D) L2-normalised CLAP audio embeddings."""
    flat = windows.reshape(-1, windows.shape[-1]).float()
    device = clap._device()
    out = [
        clap.embed_audio(flat[i : i + batch_size].to(device), sample_rate).cpu()
        for i in range(0, flat.shape[0], batch_size)
    ]
    return torch.cat(out).reshape(*windows.shape[:-1], -1)


def _mono(x: Tensor) -> Tensor:
    """(..., C, T) -> (..., T): CLAP hears one channel."""
    return x.float().mean(dim=-2)


@torch.no_grad()
def confidence_scores(
    clap: ClapBackend,
    mixture: Tensor,
    estimates: Tensor,
    sample_rate: int,
    prompts: Sequence[str],
    window: int,
    *,
    template: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """CLAP similarity of each estimate to its prompt and of the mixture to each prompt.

    Args:
        clap: the CLAP the separator was trained with.
        mixture: (C, T) the input at ``sample_rate`` Hz (channels are averaged).
        estimates: (P, C, T) one estimate per prompt, at the same rate.
        prompts: P texts, put into the CLAP's template when ``template``.
        window: scoring window in samples at ``sample_rate`` (the separator's
            training clip length, converted to this rate).

    Returns:
        (P,) estimate scores and (P,) mixture scores, float64 cosine similarities
        in [-1, 1], each the mean over the windows where the mixture is not
        silent (all windows if it is silent throughout).
    """
    if mixture.dim() != 2 or estimates.dim() != 3 or estimates.shape[1:] != mixture.shape:
        raise ValueError(
            f"expected a (C, T) mixture and (P, C, T) estimates, got {tuple(mixture.shape)} and "
            f"{tuple(estimates.shape)}"
        )
    if estimates.shape[0] != len(prompts):
        raise ValueError(f"{estimates.shape[0]} estimates for {len(prompts)} prompts")
    mix_windows = cut_windows(_mono(mixture)[None], window)[0]  # (W, window)
    active = mix_windows.abs().amax(dim=-1) > SILENCE_PEAK
    if not bool(active.any()):
        active[:] = True
    est_windows = cut_windows(_mono(estimates), window)[:, active]  # (P, W', window)
    text = clap.embed_text(list(prompts), template=template).cpu().float()  # (P, D)
    mix_emb = embed_windows(clap, mix_windows[active], sample_rate)  # (W', D)
    est_emb = embed_windows(clap, est_windows, sample_rate)  # (P, W', D)
    mixture_scores = (mix_emb @ text.T).mean(dim=0)  # (P,)
    estimate_scores = (est_emb * text[:, None]).sum(dim=-1).mean(dim=1)  # (P,)
    return estimate_scores.double().numpy(), mixture_scores.double().numpy()


# --------------------------------------------------------------------------- the threshold
def prompt_score_table(
    study: Study, sources: Sequence[int] = DEFAULT_SOURCES, split: str = "test", corpus: str = "instruments"
) -> pd.DataFrame:
    """The CLAP similarity of every saved mixture of ``split`` to the prompt of every class.

    Returns one row per (mixture, class): ``split``, ``n_sources``, ``mixture``
    (index in the test set), ``prompt`` (the class name), ``present`` (the
    class is one of the mixture's sources) and ``score``. The mixtures are one
    clip long, so each is one scoring window, as in :func:`confidence_scores`.
    """
    from ..data import corpus_classes

    clap = study.clap()
    classes = corpus_classes(corpus) if study.manifests is None else list(study.clips(split).classes)
    text = clap.embed_text(classes).cpu().float()  # (K, D)
    rows = []
    for n in sources:
        mix = study.testset(int(n), split, corpus)
        emb = embed_windows(
            clap, cut_windows(mix.mixtures, study.profile.clip_samples), study.profile.sample_rate
        )  # (M, W, D)
        sims = torch.einsum("mwd,kd->mk", emb, text) / emb.shape[1]  # mean over windows (one here)
        for m, labels in enumerate(mix.labels):
            for k, c in enumerate(classes):
                rows.append(
                    {
                        "split": split,
                        "n_sources": int(n),
                        "mixture": m,
                        "prompt": c,
                        "present": c in labels,
                        "score": float(sims[m, k]),
                    }
                )
    return pd.DataFrame(rows)


def warning_rates(table: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Share of present and of absent prompts scoring below ``threshold``, with the score distributions.

    ``auc`` is the probability that a present prompt outscores an absent one
    (ties count one half): how well the mixture score alone tells them apart.
    """
    present = table.loc[table["present"], "score"].to_numpy()
    absent = table.loc[~table["present"], "score"].to_numpy()
    if present.size == 0 or absent.size == 0:
        raise ValueError(f"need present and absent prompts, got {present.size} and {absent.size}")
    auc = float(
        ((present[:, None] > absent[None]).sum() + 0.5 * (present[:, None] == absent[None]).sum())
        / (present.size * absent.size)
    )
    return {
        "n_present": int(present.size),
        "n_absent": int(absent.size),
        "warn_rate_present": float((present < threshold).mean()),
        "warn_rate_absent": float((absent < threshold).mean()),
        "median_present": float(np.median(present)),
        "median_absent": float(np.median(absent)),
        "auc": auc,
    }


def measure_threshold(
    study: Study,
    sources: Sequence[int] = DEFAULT_SOURCES,
    quantile: float = DEFAULT_QUANTILE,
    split: str = "test",
    heldout_split: str | None = "val",
    corpus: str = "instruments",
) -> dict[str, Any]:
    """The absent-sound threshold of the study's CLAP and how often it warns (see the module docstring).

    Returns the record :func:`write_confidence` saves: ``threshold``, the
    ``rule`` and ``quantile``, the CLAP (backend, portable path, sha256), the
    profile, and the warning ``rates`` on present and absent prompts on
    ``split`` (overall and ``by_sources``) and on ``heldout_split`` (``heldout``).
    """
    from .. import __version__

    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be within (0, 1), got {quantile}")
    table = prompt_score_table(study, sources, split, corpus)
    threshold = float(np.quantile(table.loc[table["present"], "score"].to_numpy(), quantile))
    by_sources = {str(n): warning_rates(t, threshold) for n, t in table.groupby("n_sources")}
    record: dict[str, Any] = {
        "format": FORMAT,
        "weaksep_version": __version__,
        "threshold": threshold,
        "quantile": quantile,
        "rule": f"numpy.quantile(scores of present prompts, {quantile}): the level below which "
        f"{quantile * 100:g} % of the {split} mixtures' prompts of classes they contain score",
        "score": "cosine similarity of the CLAP embedding of the mixture (mono, mean over windows of the "
        "training clip length) and of the templated prompt",
        "clap": {
            "backend": study.clap_backend,
            "checkpoint": portable_path(study.clap_checkpoint),
            "sha256": file_sha256(study.clap_checkpoint),
        },
        "prompt_template": study.clap().prompt_template,
        "profile": study.profile.to_dict(),
        "corpus": corpus,
        "sources": [int(n) for n in sources],
        "split": split,
        "rates": {**warning_rates(table, threshold), "by_sources": by_sources},
    }
    if heldout_split:
        record["heldout"] = {
            "split": heldout_split,
            **warning_rates(prompt_score_table(study, sources, heldout_split, corpus), threshold),
        }
    return record


def write_confidence(record: dict[str, Any], path: str | Path) -> Path:
    """Save a :func:`measure_threshold` record as JSON, atomically."""
    return atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def default_confidence_path(profile_name: str) -> Path:
    """``results/confidence.json`` for the quick profile, ``results/<profile>/confidence.json`` otherwise."""
    return default_results_dir(profile_name) / FILE_NAME


# --------------------------------------------------------------------------- using it
@dataclass(frozen=True)
class ConfidenceThreshold:
    """A measured absent-sound threshold, valid for the CLAP file of sha256 ``clap_sha256``."""

    threshold: float
    quantile: float
    warn_rate_present: float  # on the test mixtures it was measured on
    warn_rate_absent: float
    clap_sha256: str
    path: Path

    def warns(self, mixture_score: float) -> bool:
        return mixture_score < self.threshold

    def explain(self) -> str:
        return (
            f"below {self.threshold:.3f}, the level under which {100 * self.warn_rate_present:.0f} % of the "
            f"present sounds and {100 * self.warn_rate_absent:.0f} % of the absent ones of the study's test "
            f"mixtures score"
        )


def load_threshold(
    path: str | Path, clap_path: str | Path, *, required: bool = False
) -> tuple[ConfidenceThreshold | None, str]:
    """The threshold saved at ``path`` if it was measured with the CLAP file ``clap_path``.

    Returns the threshold (or ``None``) and a one-line note saying which is in
    use or why none is. With ``required`` (a file the user named), a missing or
    unreadable file is an error naming it; otherwise it is only noted, because
    separating needs no threshold.
    """
    path = Path(path)
    how = "compute it with `weaksep confidence --profile <profile>`"
    try:
        if not path.is_file():
            raise FileNotFoundError(f"confidence threshold file {path} does not exist")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            threshold = float(record["threshold"])
            sha = str(record["clap"]["sha256"])
            rates = record["rates"]
            found = ConfidenceThreshold(
                threshold,
                float(record["quantile"]),
                float(rates["warn_rate_present"]),
                float(rates["warn_rate_absent"]),
                sha,
                path,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"confidence threshold file {path} is not one written by weaksep.inference.confidence ({type(e).__name__}: {e})"
            ) from e
    except (FileNotFoundError, ValueError) as e:
        if required:
            raise
        return None, f"no absent-sound warnings: {e}; {how}"
    actual = file_sha256(clap_path)
    n = min(len(actual), len(found.clap_sha256))
    if actual[:n] != found.clap_sha256[:n]:
        return None, (
            f"no absent-sound warnings: {path} was measured for another CLAP (sha256 "
            f"{found.clap_sha256}, not {actual} of {clap_path}); {how}"
        )
    return found, f"absent-sound warnings when a mixture's CLAP score is {found.explain()} ({path})"
