"""The objective of each regime: which batches a step draws and which losses it takes.

Regimes (``docs/METHOD.md#objective``):

* ``unsup``: mix-and-separate on the whole text of each sub-mixture;
* ``weak``: ``unsup`` + consistency + bi-modal contrastive (the paper's method);
* ``sup``: single-source supervision on every entity;
* ``semi``: ``sup`` on a labelled fraction of the clips, ``weak`` on the rest.

``unsup`` and ``weak`` batches carry no single sources at all. A supervised
example is, by default, one mixture of exactly N single sources, the
distribution of the test mixtures (``sup_input="mixture"``); the study's first
design trained it on mixtures of mixtures (2N sources), kept as an ablation.

The batches of step ``s`` on rank ``r`` are a pure function of (seed, r, s), so
a resumed run draws exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..clap import ClapBackend
from ..data import ClipSet, MixBatch, MixtureSampler, labelled_subset
from ..profiles import Profile
from ..runs import RunConfig
from .losses import consistency_loss, grouped_contrastive_loss, mix_and_separate_loss, supervised_loss
from .model import Separator

LOSS_TERMS = ("loss_total", "loss_unsup", "loss_consistency", "loss_contrastive", "loss_sup")


@dataclass
class StepBatches:
    """What one training step sees: a weakly-labelled batch, a labelled one, or both (semi)."""

    weak: MixBatch | None = None  # mixtures of mixtures with texts and entities, no sources
    labelled: MixBatch | None = None  # mixtures with their single sources

    def to(self, device: torch.device) -> StepBatches:
        return StepBatches(*(None if b is None else _batch_to(b, device) for b in (self.weak, self.labelled)))

    def pin_memory(self) -> StepBatches:
        """The same batches in page-locked memory (what a DataLoader with ``pin_memory`` calls)."""
        return StepBatches(*(None if b is None else _batch_pinned(b) for b in (self.weak, self.labelled)))


def _map_batch(batch: MixBatch, tensors: Callable[[Tensor], Tensor], lists: Callable[[list], list] = list) -> MixBatch:
    """``batch`` with ``tensors`` applied to each of its tensors and ``lists`` to its per-example lists."""
    return MixBatch(
        mixture=tensors(batch.mixture),
        submixtures=tensors(batch.submixtures),
        texts=lists(batch.texts),
        entities=lists(batch.entities),
        sources=None if batch.sources is None else tensors(batch.sources),
    )


def _batch_to(batch: MixBatch, device: torch.device) -> MixBatch:
    # non_blocking: a copy from pinned memory overlaps the previous step's kernels on a GPU
    return _map_batch(batch, lambda t: t.to(device, non_blocking=True))


def _batch_pinned(batch: MixBatch) -> MixBatch:
    return _map_batch(batch, lambda t: t.pin_memory())


def _batch_slice(batch: MixBatch, start: int, stop: int) -> MixBatch:
    return _map_batch(batch, lambda t: t[start:stop], lambda x: x[start:stop])


def micro_batches(batches: StepBatches, k: int, contrastive_group: int = 1) -> list[StepBatches]:
    """``batches`` cut into ``k`` equal micro-batches along the example axis, for gradient accumulation.

    Every part (weak, labelled) must split evenly, and a weak micro-batch must hold whole
    contrastive groups, so that the mean of the k micro-batch losses is the loss of the whole batch.
    """
    out = [StepBatches() for _ in range(k)]
    for part in ("weak", "labelled"):
        batch = getattr(batches, part)
        if batch is None:
            continue
        b = batch.mixture.shape[0]
        if b % k:
            raise ValueError(
                f"gradient accumulation over {k} micro-batches needs a {part} batch divisible by {k}, got {b}"
            )
        size = b // k
        if part == "weak" and k > 1 and size % min(contrastive_group, b):
            raise ValueError(
                f"a weak micro-batch of {size} examples cannot hold whole contrastive groups of "
                f"{min(contrastive_group, b)}: accumulate over fewer micro-batches or change contrastive_group"
            )
        for j in range(k):
            setattr(out[j], part, _batch_slice(batch, j * size, (j + 1) * size))
    return out


def first_submixtures(batch: MixBatch) -> MixBatch:
    """The first sub-mixture of every example as a batch of single N-source mixtures.

    ``submixtures`` becomes (B, 1, T), ``sources`` (B, 1, N, T), texts and entities one per example.
    """
    sub = batch.submixtures[:, :1]
    return MixBatch(
        mixture=sub[:, 0],
        submixtures=sub,
        texts=[t[:1] for t in batch.texts],
        entities=[e[:1] for e in batch.entities],
        sources=None if batch.sources is None else batch.sources[:, :1],
    )


class BatchSource:
    """The batches of step ``s`` for one rank, a pure function of (seed, rank, s)."""

    def __init__(self, clips: ClipSet, cfg: RunConfig, profile: Profile, batch_size: int, rank: int) -> None:
        self.cfg, self.rank = cfg, rank
        n = cfg.n_sources
        kw = dict(gain_range=tuple(profile.train_gain_range), seed=cfg.seed, corpus=cfg.corpus)
        self.labelled_indices: list[int] = []
        self.weak_sampler = self.labelled_sampler = None
        if cfg.regime in ("unsup", "weak"):
            self.weak_sampler = MixtureSampler(clips, n, batch_size, with_sources=False, **kw)
        elif cfg.regime == "sup":
            idx = None
            if cfg.label_fraction < 1:
                idx = self.labelled_indices = labelled_subset(len(clips), cfg.label_fraction, cfg.seed)
            self.labelled_sampler = MixtureSampler(clips, n, batch_size, with_sources=True, clip_indices=idx, **kw)
        else:  # semi: half of every batch from the labelled clips, half from the rest
            self.labelled_indices = labelled_subset(len(clips), cfg.label_fraction, cfg.seed)
            rest = sorted(set(range(len(clips))) - set(self.labelled_indices))
            n_lab = max(1, batch_size // 2)
            self.labelled_sampler = MixtureSampler(
                clips, n, n_lab, with_sources=True, clip_indices=self.labelled_indices, **kw
            )
            self.weak_sampler = MixtureSampler(
                clips, n, batch_size - n_lab, with_sources=False, clip_indices=rest, **kw
            )

    def batch(self, step: int) -> StepBatches:
        g = torch.Generator().manual_seed(((self.cfg.seed * 1_000_003 + self.rank) * 1_000_033 + step) % (2**63))
        labelled = None if self.labelled_sampler is None else self.labelled_sampler.sample(g)
        if labelled is not None and self.cfg.sup_input == "mixture":
            labelled = first_submixtures(labelled)
        weak = None if self.weak_sampler is None else self.weak_sampler.sample(g)
        return StepBatches(weak=weak, labelled=labelled)


class _Steps(torch.utils.data.Dataset):
    """Item i: the batches of step ``start + i`` (a pure function of seed, rank and step)."""

    def __init__(self, source: BatchSource, start: int, end: int) -> None:
        self.source, self.start, self.end = source, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i: int) -> StepBatches:
        return self.source.batch(self.start + i)


def step_loader(
    source: BatchSource, start: int, end: int, workers: int = 0, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """The batches of steps ``start .. end - 1`` in order, drawn by ``workers`` processes ahead of
    the step that needs them (0: on the main thread, when asked), in pinned memory for a GPU.

    Each step's batches depend only on (seed, rank, step), so any number of workers gives
    the same batches as none.
    """
    return torch.utils.data.DataLoader(
        _Steps(source, start, end),
        batch_size=None,  # an item is already a whole step
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def _entity_means(clap: ClapBackend, batch: MixBatch) -> Tensor:
    """(B, S, D) unit-norm mean of the entity embeddings of each of the S sub-mixtures."""
    return torch.stack(
        [
            torch.stack([F.normalize(clap.embed_text(list(ents)).mean(0), dim=-1) for ents in example])
            for example in batch.entities
        ]
    )


def _query_masks(
    model: torch.nn.Module,
    clap: ClapBackend,
    batch: MixBatch,
    queries: list[list[str]],
    whole_text: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Masks (B, Q, F, frames) of the Q text queries of every example, and the mixtures' STFT (B, F, frames).

    ``whole_text`` (B, S, D) replaces the embeddings of the first S queries (``entity_mean``).
    """
    b, q = len(queries), len(queries[0])
    device = batch.mixture.device
    flat = [t for qs in queries for t in qs]
    text = clap.embed_text(flat).reshape(b, q, -1).to(device)
    if whole_text is not None:
        text = torch.cat([whole_text.to(device), text[:, whole_text.shape[1] :]], dim=1)
    core: Separator = getattr(model, "module", model)  # DDP wraps the separator
    states = token_mask = None
    if core.cfg.conditioning == "cross_attention":
        if whole_text is not None:
            raise ValueError(
                "mixture_text='entity_mean' has no token states for cross-attention; use conditioning 'head' or 'film'"
            )
        states, token_mask = clap.text_states(flat)
        states = states.reshape(b, q, *states.shape[1:]).to(device)
        token_mask = token_mask.reshape(b, q, -1).to(device)
    return model(batch.mixture, text, states, token_mask)


def _magnitudes(model: torch.nn.Module, wav: Tensor) -> Tensor:
    """|STFT| of waveforms (..., T) -> (..., F, frames), with the separator's own STFT."""
    core: Separator = getattr(model, "module", model)
    spec = core.stft(wav.reshape(-1, wav.shape[-1])).abs()
    return spec.reshape(*wav.shape[:-1], *spec.shape[-2:])


def weak_terms(
    model: torch.nn.Module, clap: ClapBackend, batch: MixBatch, cfg: RunConfig, sample_rate: int
) -> dict[str, Tensor]:
    """Mix-and-separate (every weak regime) plus consistency and contrastive (``weak``, ``semi``).

    Queries per example: the two sub-mixtures' whole texts, then (weak, semi) the
    N entities of each sub-mixture. Returns unweighted scalar terms.
    """
    n = cfg.n_sources
    with_entities = cfg.regime in ("weak", "semi")
    queries = [
        list(texts) + ([e for sub in ents for e in sub] if with_entities else [])
        for texts, ents in zip(batch.texts, batch.entities)
    ]
    whole = _entity_means(clap, batch) if cfg.mixture_text == "entity_mean" else None
    masks, spec = _query_masks(model, clap, batch, queries, whole)
    mixture_mag = spec.abs()
    submixture_mags = _magnitudes(model, batch.submixtures)  # (B, 2, F, frames)
    terms = {"loss_unsup": mix_and_separate_loss(masks[:, :2], mixture_mag, submixture_mags)}
    if not with_entities:
        return terms
    entity_masks = masks[:, 2:].reshape(-1, 2, n, *mixture_mag.shape[1:])  # (B, 2, N, F, frames)
    if cfg.consistency:
        terms["loss_consistency"] = consistency_loss(entity_masks * mixture_mag[:, None, None], submixture_mags)
    if cfg.contrastive and n > 1:
        core: Separator = getattr(model, "module", model)
        wav = core.estimates(masks[:, 2:], spec, batch.mixture.shape[-1])  # (B, 2N, T)
        # The CLAP (resampler, front end, tower) in float32 even under the separator's bf16 autocast:
        # validation and evaluation score with a float32 CLAP, and training must judge alike.
        with torch.autocast(wav.device.type, enabled=False):
            audio_emb = clap.embed_audio(wav.reshape(-1, wav.shape[-1]).float(), sample_rate)
        entity_emb = clap.embed_text([e for ents in batch.entities for sub in ents for e in sub])
        shape = (-1, 2, n, audio_emb.shape[-1])  # (B, 2 sub-mixtures, N entities, D)
        terms["loss_contrastive"] = grouped_contrastive_loss(
            audio_emb.reshape(shape),
            entity_emb.to(audio_emb.device).reshape(shape),
            clap.logit_scale.to(audio_emb.device),
            cfg.contrastive_group,
        )
    return terms


def supervised_terms(model: torch.nn.Module, clap: ClapBackend, batch: MixBatch) -> dict[str, Tensor]:
    """L1 of every entity's estimate against its single source (``sup``, the labelled part of ``semi``)."""
    if batch.sources is None:
        raise ValueError("supervised training needs single sources but the batch has none")
    queries = [[e for sub in ents for e in sub] for ents in batch.entities]
    masks, spec = _query_masks(model, clap, batch, queries)
    mixture_mag = spec.abs()
    sources = batch.sources.reshape(batch.sources.shape[0], -1, batch.sources.shape[-1])  # (B, S*N, T)
    return {"loss_sup": supervised_loss(masks * mixture_mag[:, None], _magnitudes(model, sources), mixture_mag)}


def training_losses(
    model: torch.nn.Module, clap: ClapBackend, batches: StepBatches, cfg: RunConfig, sample_rate: int
) -> dict[str, Tensor]:
    """Every loss term of one step for ``cfg.regime``, and their weighted sum ``loss_total``.

    The reconstruction terms (mix-and-separate, consistency, supervised) weigh
    ``cfg.reconstruction_weight`` and the contrastive term ``cfg.contrastive_weight``.
    """
    terms: dict[str, Tensor] = {}
    if batches.weak is not None:
        terms.update(weak_terms(model, clap, batches.weak, cfg, sample_rate))
    if batches.labelled is not None:
        terms.update(supervised_terms(model, clap, batches.labelled))
    if not terms:
        raise ValueError(f"regime {cfg.regime!r} drew no batch")
    weights = {"loss_contrastive": cfg.contrastive_weight}
    terms["loss_total"] = sum(weights.get(k, cfg.reconstruction_weight) * v for k, v in terms.items())
    return terms
