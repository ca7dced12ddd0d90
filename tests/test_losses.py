"""Each loss against an independent, loop-based computation of its definition."""

import math

import torch

from weaksep.method.losses import (
    bimodal_contrastive_loss,
    consistency_loss,
    grouped_contrastive_loss,
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


def _authors_contrastive(audio, text, scale, examples_per_device):
    """The authors' formula, written out: for every sub-mixture slot and device, the estimates of
    all its examples and entities (rows entity-major, as their ``torch.cat(pred_wavs)``) against
    their prompts, cross-entropy with ``arange`` targets; averaged over every row."""
    b, s, n, _ = audio.shape
    total, rows = 0.0, 0
    for first in range(0, b, examples_per_device):
        devs = range(first, min(first + examples_per_device, b))
        for slot in range(s):
            a = [audio[i, slot, k] for k in range(n) for i in devs]
            t = [text[i, slot, k] for k in range(n) for i in devs]
            for r in range(len(a)):
                logits = [scale * float(a[r] @ t[c]) for c in range(len(t))]
                total += -logits[r] + math.log(sum(math.exp(x) for x in logits))
                rows += 1
    return total / rows


def _unit(*shape):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_grouped_contrastive_is_the_authors_formula_with_a_repeated_class():
    # 4 examples, 2 sub-mixtures of N = 2; prompts from 5 classes, and example 1 repeats
    # example 0's first class in slot 0: within a group of 2 the two prompts are the same text.
    classes = _unit(5, 8)
    labels = torch.tensor([[[0, 1], [2, 3]], [[0, 4], [1, 2]], [[3, 4], [0, 2]], [[1, 3], [4, 0]]])
    text = classes[labels]  # (B=4, S=2, N=2, D)
    audio = _unit(4, 2, 2, 8)
    for group in (1, 2, 4, 3):  # 3: the last group holds the one example left over
        ours = float(grouped_contrastive_loss(audio, text, 10.0, group))
        assert math.isclose(ours, _authors_contrastive(audio, text, 10.0, group), rel_tol=1e-5), group
    # group 1 is the loss of one sub-mixture's N entities, as before the setting existed
    old = bimodal_contrastive_loss(audio.reshape(8, 2, 8), text.reshape(8, 2, 8), 10.0)
    assert float(grouped_contrastive_loss(audio, text, 10.0, 1)) == float(old)


def test_repeated_class_caps_a_perfect_estimate_at_log2():
    # Two rows with the same prompt: even an estimate equal to it cannot prefer its own column,
    # so its cross-entropy stays at log 2 however large the scale (the target is shared in effect).
    classes = _unit(3, 16)
    text = classes[torch.tensor([[[0, 1]], [[0, 2]]])]  # (B=2, S=1, N=2, D): class 0 in both examples
    loss = grouped_contrastive_loss(text, text, 1000.0, 2)
    per_row = [math.log(2), 0.0, math.log(2), 0.0]  # rows of class 0 split their probability
    assert math.isclose(float(loss), sum(per_row) / 4, rel_tol=1e-3)
    assert float(grouped_contrastive_loss(text, text, 1000.0, 1)) < 1e-6  # within one sub-mixture: distinct


def test_supervised_zero_at_truth_and_weighted_by_mixture():
    src, mix = rand(B, 2 * N, F, T), rand(B, F, T)
    assert supervised_loss(src, src, mix) == 0
    est = src + 0.5
    assert torch.isclose(supervised_loss(est, src, mix), (0.5 * magnitude_weight(mix)).mean(), rtol=1e-5)
