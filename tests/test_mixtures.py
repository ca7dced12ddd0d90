"""Mixtures, fixed test sets and the mixture-of-mixtures sampler."""

from __future__ import annotations

import os

import pytest
import torch

from weaksep.data import (
    ClipSet,
    MixtureSampler,
    build_mixtures,
    caption_entities,
    labelled_subset,
    load_clips,
    load_or_build_testset,
    mixture_text,
)
from weaksep.data import mixtures as mixtures_module
from weaksep.data.corpus import corpus_dir
from weaksep.profiles import get_profile


@pytest.fixture(scope="module")
def smoke():
    return get_profile("smoke").replace(clips_per_class={"train": 4, "val": 2, "test": 2, "clap": 1})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("mix")


def _toy_clips(n_classes: int = 6, per_class: int = 3, T: int = 64) -> ClipSet:
    g = torch.Generator().manual_seed(0)
    labels = [f"c{c}" for c in range(n_classes) for _ in range(per_class)]
    audio = torch.randn(len(labels), T, generator=g)
    # Clip k starts with (1, k + 1): a scaled source tells its gain and its clip.
    audio[:, 0] = 1.0
    audio[:, 1] = torch.arange(1, len(labels) + 1, dtype=torch.float32)
    return ClipSet.from_labels(audio, labels, 8000)


def _trace(sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gain and clip index of each source ``(..., T)`` of ``_toy_clips``."""
    gain = sources[..., 0]
    return gain, (sources[..., 1] / gain).round().long() - 1


def test_mixture_text():
    assert mixture_text(["violin"]) == "violin"
    assert mixture_text(["violin", "flute"]) == "violin and flute"
    assert mixture_text(["violin", "flute", "cello"]) == "violin, flute and cello"
    assert mixture_text(["a", "b", "c", "d"]) == "a, b, c and d"
    with pytest.raises(ValueError):
        mixture_text([])


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_build_mixtures_exact_sum_distinct_classes_gains(n):
    clips = _toy_clips()
    mix = build_mixtures(clips, n, 40, (-6.0, 6.0), seed=1)
    assert mix.mixtures.shape == (40, 64) and mix.sources.shape == (40, n, 64)
    assert torch.equal(mix.mixtures, mix.sources.sum(dim=1))
    # Independent recomputation of each source from clip index and gain in dB.
    expected = clips.audio[mix.clip_indices] * torch.pow(10.0, mix.gains_db / 20).unsqueeze(-1)
    assert torch.allclose(mix.sources, expected, atol=1e-6)
    assert float(mix.gains_db.min()) >= -6.0 and float(mix.gains_db.max()) <= 6.0
    if n > 1:
        assert float(mix.gains_db.std()) > 2.0  # gains do vary across the range
    for k in range(40):
        assert len(set(mix.labels[k])) == n
        assert mix.labels[k] == [clips.labels[int(i)] for i in mix.clip_indices[k]]
        assert mix.texts[k] == mixture_text(mix.labels[k])
    again = build_mixtures(clips, n, 40, (-6.0, 6.0), seed=1)
    assert torch.equal(again.sources, mix.sources) and again.texts == mix.texts


def test_build_mixtures_rejects_too_many_sources():
    with pytest.raises(ValueError, match="distinct classes"):
        build_mixtures(_toy_clips(n_classes=3), 4, 2, (0.0, 0.0), seed=0)


def test_testset_is_saved_once_and_reloaded(root, smoke, monkeypatch):
    first = load_or_build_testset(root, smoke, 2)
    path = corpus_dir(root, smoke, "instruments") / "testsets" / "test_n2.pt"
    assert path.is_file()
    assert len(first) == smoke.n_test_mixtures and first.sources.shape[1] == 2
    assert torch.equal(first.mixtures, first.sources.sum(1))
    stamp = os.stat(path).st_mtime_ns

    def no_rebuild(*a, **k):
        raise AssertionError("test set rebuilt although saved")

    monkeypatch.setattr(mixtures_module, "build_mixtures", no_rebuild)
    second = load_or_build_testset(root, smoke, 2)
    assert os.stat(path).st_mtime_ns == stamp
    assert torch.equal(second.mixtures, first.mixtures) and torch.equal(second.sources, first.sources)
    assert second.labels == first.labels and second.texts == first.texts
    raw = torch.load(path, weights_only=True)
    assert torch.equal(raw["mixtures"], first.mixtures) and raw["texts"] == first.texts
    # The sources are real clips of the test split, gains within the profile's range.
    clips = load_clips(root, smoke, "instruments", "test")
    g = torch.pow(10.0, first.gains_db / 20).unsqueeze(-1)
    assert torch.allclose(first.sources, clips.audio[first.clip_indices] * g, atol=1e-6)
    lo, hi = smoke.mixture_gain_db
    assert lo <= float(first.gains_db.min()) and float(first.gains_db.max()) <= hi


def test_val_and_event_testsets(root, smoke):
    val = load_or_build_testset(root, smoke, 3, split="val")
    assert len(val) == smoke.n_val_mixtures and val.sources.shape[1] == 3
    ev = load_or_build_testset(root, smoke, 2, split="test", corpus="events")
    for text, labels in zip(ev.texts, ev.labels):
        assert caption_entities(text) == labels
    with pytest.raises(ValueError, match="splits"):
        load_or_build_testset(root, smoke, 2, split="clap")


@pytest.mark.parametrize("with_sources", [True, False])
def test_sampler_batches(with_sources):
    clips = _toy_clips(n_classes=7, per_class=3)
    N, B = 3, 5
    sampler = MixtureSampler(clips, N, B, with_sources=with_sources, gain_range=(0.5, 1.5), seed=3)
    batch = sampler.sample(torch.Generator().manual_seed(0))
    assert batch.mixture.shape == (B, 64) and batch.submixtures.shape == (B, 2, 64)
    assert torch.equal(batch.mixture, batch.submixtures.sum(1))
    assert len(batch.texts) == B and all(len(t) == 2 for t in batch.texts)
    for b in range(B):
        flat = batch.entities[b][0] + batch.entities[b][1]
        assert len(flat) == 2 * N and len(set(flat)) == 2 * N  # 2N distinct classes
        for i in range(2):
            assert batch.texts[b][i] == mixture_text(batch.entities[b][i])
    if not with_sources:
        assert batch.sources is None
        return
    assert batch.sources.shape == (B, 2, N, 64)
    assert torch.allclose(batch.submixtures, batch.sources.sum(2), atol=1e-6)
    # Each source is one clip times a gain in range, and the entity is its class.
    gain, clip = _trace(batch.sources)
    assert float(gain.min()) >= 0.5 and float(gain.max()) <= 1.5
    assert torch.allclose(batch.sources, clips.audio[clip] * gain.unsqueeze(-1), atol=1e-5)
    for b in range(B):
        for i in range(2):
            assert [clips.labels[int(k)] for k in clip[b, i]] == batch.entities[b][i]


def test_sampler_is_deterministic_and_respects_clip_indices():
    clips = _toy_clips(n_classes=6, per_class=4)
    a = next(iter(MixtureSampler(clips, 2, 4, with_sources=True, seed=9)))
    b = next(iter(MixtureSampler(clips, 2, 4, with_sources=True, seed=9)))
    c = next(iter(MixtureSampler(clips, 2, 4, with_sources=True, seed=10)))
    assert torch.equal(a.mixture, b.mixture) and a.texts == b.texts
    assert not torch.equal(a.mixture, c.mixture)
    allowed = [0, 4, 8, 12, 16, 20]  # one clip per class
    it = iter(MixtureSampler(clips, 2, 8, with_sources=True, seed=0, clip_indices=allowed))
    used = set()
    for _ in range(3):
        used |= set(_trace(next(it).sources)[1].flatten().tolist())
    assert used == set(allowed)
    with pytest.raises(ValueError, match="distinct classes"):
        MixtureSampler(clips, 4, 2, with_sources=False)
    with pytest.raises(ValueError, match="distinct classes"):
        MixtureSampler(clips, 2, 2, with_sources=False, clip_indices=[0, 4, 8])


def test_event_sampler_uses_captions():
    labels = ["applause", "bell", "bird", "breathing", "gunshot", "hand clap"]
    clips = ClipSet.from_labels(torch.randn(12, 32), labels * 2, 8000)
    batch = MixtureSampler(clips, 2, 6, with_sources=False, seed=1, corpus="events").sample(
        torch.Generator().manual_seed(2)
    )
    for b in range(6):
        for i in range(2):
            assert caption_entities(batch.texts[b][i]) == batch.entities[b][i]
            assert batch.texts[b][i] != mixture_text(batch.entities[b][i])


def test_labelled_subset():
    sub = labelled_subset(200, 0.05, seed=4)
    assert len(sub) == 10 and sub == sorted(set(sub)) and all(0 <= i < 200 for i in sub)
    assert sub == labelled_subset(200, 0.05, seed=4)
    assert sub != labelled_subset(200, 0.05, seed=5)
    assert len(labelled_subset(10, 0.01, seed=0)) == 1  # never empty
    with pytest.raises(ValueError):
        labelled_subset(10, 0.0, seed=0)
