"""Each loss against an independent, loop-based computation of its definition."""

import math

import torch

from weaksep.losses import (
    bimodal_contrastive_loss,
    consistency_loss,
    magnitude_weight,
    mix_and_separate_loss,
    supervised_loss,
)

g = torch.Generator().manual_seed(0)
B, N, F, T = 3, 2, 5, 4


def rand(*shape):
    return torch.rand(*shape, generator=g)


def test_magnitude_weight_clamps():
    w = magnitude_weight(torch.tensor([0.0, 1.0, 1e6]))
    assert torch.allclose(w, torch.tensor([1e-3, math.log(2.0), 10.0]))


def test_mix_and_separate_matches_loop():
    masks, mix, subs = rand(B, 2, F, T), rand(B, F, T) * 3, rand(B, 2, F, T)
    total = 0.0
    for b in range(B):
        for i in range(2):
            for f in range(F):
                for t in range(T):
                    w = min(max(math.log1p(mix[b, f, t]), 1e-3), 10)
                    total += w * abs(masks[b, i, f, t] * mix[b, f, t] - subs[b, i, f, t])
    assert torch.isclose(mix_and_separate_loss(masks, mix, subs), torch.tensor(total / (B * 2 * F * T)), rtol=1e-5)


def test_consistency_zero_when_estimates_sum_to_submixture():
    subs = rand(B, 2, F, T)
    parts = torch.stack([subs * 0.3, subs * 0.7], dim=2)
    assert consistency_loss(parts, subs) < 1e-7
    off = torch.stack([subs * 0.3, subs * 0.3], dim=2)
    expected = (magnitude_weight(subs) * (0.4 * subs)).mean()
    assert torch.isclose(consistency_loss(off, subs), expected, rtol=1e-5)


def test_contrastive_matches_per_row_softmax():
    a = torch.nn.functional.normalize(torch.randn(4, 3, 8, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(4, 3, 8, generator=g), dim=-1)
    scale = 14.0
    ref = 0.0
    for grp in range(4):
        for k in range(3):
            logits = [scale * float(a[grp, k] @ t[grp, j]) for j in range(3)]
            ref += -logits[k] + math.log(sum(math.exp(x) for x in logits))
    assert math.isclose(float(bimodal_contrastive_loss(a, t, scale)), ref / 12, rel_tol=1e-5)


def test_contrastive_low_when_matched_high_when_swapped():
    t = torch.nn.functional.normalize(torch.randn(2, 3, 16, generator=g), dim=-1)
    matched = bimodal_contrastive_loss(t, t, 50.0)
    swapped = bimodal_contrastive_loss(t.flip(1), t, 50.0)
    assert matched < 0.1 < swapped


def test_supervised_zero_at_truth_and_weighted_by_mixture():
    src, mix = rand(B, 2 * N, F, T), rand(B, F, T)
    assert supervised_loss(src, src, mix) == 0
    est = src + 0.5
    assert torch.isclose(supervised_loss(est, src, mix), (0.5 * magnitude_weight(mix)).mean(), rtol=1e-5)
