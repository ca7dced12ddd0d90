"""The four training signals of the study, on STFT magnitudes.

Shapes: B examples (mixtures of mixtures M = m1 + m2), N entities per
sub-mixture, F frequency bins, T frames. Magnitudes are linear |STFT|.
Every reconstruction term is an L1 distance weighted by
``clamp(log1p(|reference|), 1e-3, 10)``, as in the authors' code, so that
loud time-frequency cells count more than near-silent ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def magnitude_weight(magnitude: Tensor) -> Tensor:
    """``clamp(log1p(|X|), 1e-3, 10)``, the per-cell weight of the L1 terms."""
    return torch.log1p(magnitude).clamp(1e-3, 10.0)


def weighted_l1(estimate: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean over all cells of ``weight * |estimate - target|`` (shapes broadcast)."""
    return (weight * (estimate - target).abs()).mean()


def mix_and_separate_loss(masks: Tensor, mixture_mag: Tensor, submixture_mags: Tensor) -> Tensor:
    """Unsupervised mix-and-separate loss.

    masks: (B, 2, F, T) predicted when conditioned on each sub-mixture's whole
    text; mixture_mag: (B, F, T) |M|; submixture_mags: (B, 2, F, T) |m1|, |m2|.
    The estimate ``mask * |M|`` should be the magnitude of its sub-mixture.
    """
    estimate = masks * mixture_mag.unsqueeze(1)
    return weighted_l1(estimate, submixture_mags, magnitude_weight(mixture_mag).unsqueeze(1))


def consistency_loss(entity_mags: Tensor, submixture_mags: Tensor) -> Tensor:
    """Consistency reconstruction: the N single-entity estimates add up to m_i.

    entity_mags: (B, 2, N, F, T) estimated magnitudes; submixture_mags: (B, 2, F, T).
    """
    return weighted_l1(entity_mags.sum(dim=2), submixture_mags, magnitude_weight(submixture_mags))


def bimodal_contrastive_loss(audio_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float) -> Tensor:
    """Audio-to-text cross-entropy between single-entity estimates and their entities, within groups.

    audio_emb: (G, R, D) CLAP embeddings of the R single-entity estimates of each
    of G contrastive groups; text_emb: (G, R, D) embeddings of their entity
    prompts, row for row; both L2-normalised. Within each group, estimate r must
    pick prompt r among the group's R prompts (``arange`` targets, as the authors'
    ``contrastive_loss``). Returns the mean cross-entropy over the G * R rows (nats).
    """
    g, r, _ = audio_emb.shape
    logits = logit_scale * torch.bmm(audio_emb, text_emb.transpose(1, 2))  # (G, R, R)
    target = torch.arange(r, device=audio_emb.device).repeat(g)
    return F.cross_entropy(logits.reshape(g * r, r), target)


def grouped_contrastive_loss(
    audio_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float, group_size: int
) -> Tensor:
    """The bi-modal contrastive loss with candidates drawn from ``group_size`` examples.

    audio_emb, text_emb: (B, S, N, D), the embeddings of the N single-entity
    estimates of the S sub-mixtures of B examples and of their entity prompts.
    For every sub-mixture slot s, the estimates of ``group_size`` consecutive
    examples and all their entities form one group of ``group_size * N``
    candidates (``docs/METHOD.md#objective``): 1 contrasts an estimate with the N
    entities of its own sub-mixture only; the authors' code contrasts it with
    every entity of its slot on the device (``group_size`` = their per-GPU batch,
    2). A ``group_size`` above B is the whole batch; when B is not a multiple of
    it, the last group is smaller. Returns the mean over all B * S * N rows (nats).
    """
    if group_size < 1:
        raise ValueError(f"contrastive group size must be >= 1, got {group_size}")
    b = audio_emb.shape[0]
    g = min(group_size, b)
    full = g * (b // g)
    pieces = [(0, full, g)] + ([(full, b, b - full)] if b > full else [])  # (start, stop, group size)
    losses = [
        bimodal_contrastive_loss(
            _slot_groups(audio_emb[start:stop], size), _slot_groups(text_emb[start:stop], size), logit_scale
        )
        for start, stop, size in pieces
    ]
    if len(losses) == 1:
        return losses[0]
    weights = [stop - start for start, stop, _ in pieces]  # rows per piece, up to the common S * N
    return sum(w * loss for w, loss in zip(weights, losses)) / b


def _slot_groups(emb: Tensor, size: int) -> Tensor:
    """(K * size, S, N, D) -> (K * S, size * N, D): one group per chunk of ``size`` examples and slot."""
    b, s, n, d = emb.shape
    k = b // size
    return emb.reshape(k, size, s, n, d).transpose(1, 2).reshape(k * s, size * n, d)


def supervised_loss(entity_mags: Tensor, source_mags: Tensor, mixture_mag: Tensor) -> Tensor:
    """Supervised L1 between each single-entity estimate and its true source.

    entity_mags, source_mags: (B, S, F, T) for S queried sources;
    mixture_mag: (B, F, T) |M|, whose log1p weights the cells.
    """
    return weighted_l1(entity_mags, source_mags, magnitude_weight(mixture_mag).unsqueeze(1))
