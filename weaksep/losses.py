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
    """Audio-to-text cross-entropy between single-entity estimates and their entities.

    audio_emb: (G, N, D) CLAP embeddings of the N single-entity estimates of G
    sub-mixtures; text_emb: (G, N, D) embeddings of the same N entity prompts;
    both L2-normalised. Within each group, estimate k must pick entity k among
    the N entities of its own sub-mixture. Returns the mean cross-entropy (nats).
    """
    g, n, _ = audio_emb.shape
    logits = logit_scale * torch.bmm(audio_emb, text_emb.transpose(1, 2))  # (G, N, N)
    target = torch.arange(n, device=audio_emb.device).repeat(g)
    return F.cross_entropy(logits.reshape(g * n, n), target)


def supervised_loss(entity_mags: Tensor, source_mags: Tensor, mixture_mag: Tensor) -> Tensor:
    """Supervised L1 between each single-entity estimate and its true source.

    entity_mags, source_mags: (B, S, F, T) for S queried sources;
    mixture_mag: (B, F, T) |M|, whose log1p weights the cells.
    """
    return weighted_l1(entity_mags, source_mags, magnitude_weight(mixture_mag).unsqueeze(1))
