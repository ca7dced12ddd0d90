"""Training loop for the four regimes, on one CPU, one GPU or many (DDP).

Regimes (PAPER.md):

* ``unsup``: mix-and-separate on the whole text of each sub-mixture;
* ``weak``: ``unsup`` + consistency + bi-modal contrastive (the paper's method);
* ``sup``: single-source supervision on every entity;
* ``semi``: ``sup`` on a labelled fraction of the clips, ``weak`` on the rest.

``unsup`` and ``weak`` batches carry no single sources at all.

The batch of step ``s`` on rank ``r`` is a pure function of (seed, r, s), so a
resumed run draws exactly the batches an uninterrupted one would, and the
only state to checkpoint is the model's, the optimiser's and the scheduler's.

Run ``python -m weaksep.train --help``; under ``torchrun --nproc_per_node K``
the same command trains with DistributedDataParallel.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .checkpoint import read_checkpoint, save_checkpoint
from .clap import ClapBackend
from .data import ClipSet, MixBatch, MixtureSampler, labelled_subset
from .io import atomic_torch_save, atomic_write_bytes, atomic_write_text
from .losses import bimodal_contrastive_loss, consistency_loss, mix_and_separate_loss, supervised_loss
from .model import Separator, SeparatorConfig
from .profiles import Profile

REGIMES = ("unsup", "weak", "sup", "semi")
LOSS_TERMS = ("loss_total", "loss_unsup", "loss_consistency", "loss_contrastive", "loss_sup")


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunConfig:
    """Everything that determines a training run (saved with it)."""

    regime: str
    n_sources: int
    profile: dict[str, Any]
    seed: int = 0
    steps: int = 1000
    label_fraction: float = 1.0  # share of training clips with single sources (sup, semi)
    contrastive_weight: float = 0.5
    reconstruction_weight: float = 5.0
    consistency: bool = True  # weak/semi: use the consistency term (ablations switch it off)
    contrastive: bool = True  # weak/semi: use the contrastive term
    clap: dict[str, Any] = field(default_factory=dict)  # backend, checkpoint, sha
    corpus: str = "instruments"
    # unsup/weak/semi: the query of a sub-mixture is its caption encoded as a sentence
    # (the paper) or "entity_mean", the normalised mean of its entities' embeddings.
    mixture_text: str = "sentence"
    version: str = ""

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {self.regime!r}")
        if self.mixture_text not in MIXTURE_TEXTS:
            raise ValueError(f"mixture_text must be one of {MIXTURE_TEXTS}, got {self.mixture_text!r}")
        if not 1 <= self.n_sources <= 4:
            raise ValueError(f"n_sources must be 1..4, got {self.n_sources}")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def identity(self, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
        """What makes two runs the same run: every field but ``version`` (and ``ignore``).

        Fields added after a study was run enter only when they differ from
        their default, so the runs already in a cache keep their identity.
        """
        d = json.loads(json.dumps(self.to_dict(), default=str))
        for name, default in LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name, None)
        for name in ("version", *ignore):
            d.pop(name, None)
        return d


MIXTURE_TEXTS = ("sentence", "entity_mean")
LATER_FIELDS = {"mixture_text": "sentence"}  # field -> default (see RunConfig.identity)


def same_run(saved: dict[str, Any], cfg: RunConfig, ignore: tuple[str, ...] = ()) -> bool:
    """Whether the run config ``saved`` with a checkpoint is ``cfg`` (up to ``ignore``)."""
    try:
        return RunConfig(**saved).identity(ignore) == cfg.identity(ignore)
    except TypeError:  # a field this version does not know
        return False


def separator_config(profile: Profile, clap: ClapBackend) -> SeparatorConfig:
    return SeparatorConfig(
        n_fft=profile.n_fft, hop=profile.hop, channels=tuple(profile.unet_channels),
        text_dim=clap.embed_dim, text_state_dim=clap.text_state_dim,
        conditioning=profile.conditioning, cond_levels=profile.cond_levels, head_channels=profile.head_channels,
    )


# --------------------------------------------------------------------------- devices
@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime() -> Runtime:
    """CUDA when present, else CPU; a process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return Runtime(device, rank, world)


# --------------------------------------------------------------------------- one step
def _stft_mag(model: Separator, wav: Tensor) -> Tensor:
    """|STFT| of waveforms (..., T) -> (..., F, frames)."""
    lead = wav.shape[:-1]
    spec = model.stft(wav.reshape(-1, wav.shape[-1])).abs()
    return spec.reshape(*lead, *spec.shape[-2:])


def _queries(batch: MixBatch, with_texts: bool, with_entities: bool) -> list[list[str]]:
    out = []
    for texts, ents in zip(batch.texts, batch.entities):
        q = list(texts) if with_texts else []
        if with_entities:
            q += [e for sub in ents for e in sub]
        out.append(q)
    return out


def _entity_means(clap: ClapBackend, batch: MixBatch) -> Tensor:
    """(B, 2, D) unit-norm mean of the entity embeddings of each sub-mixture."""
    rows = []
    for ents in batch.entities:
        rows.append(torch.stack([torch.nn.functional.normalize(clap.embed_text(list(sub)).mean(0), dim=-1)
                                 for sub in ents]))
    return torch.stack(rows)


def compute_losses(model: Separator, clap: ClapBackend, batch: MixBatch, cfg: RunConfig, sample_rate: int,
                   labelled: Tensor | None = None) -> dict[str, Tensor]:
    """All loss terms of one batch of mixtures of mixtures for ``cfg.regime``.

    ``labelled`` (B,) marks, in the ``semi`` regime, the examples that carry
    single sources: they get the supervised loss, the others the weak one.
    Returns a dict with ``loss_total`` and every term used (scalars).
    """
    b, n = batch.mixture.shape[0], cfg.n_sources
    device = batch.mixture.device
    core: Separator = getattr(model, "module", model)  # DDP wraps the separator; its STFT is the same
    regime = cfg.regime
    with_texts = regime in ("unsup", "weak", "semi")
    with_entities = regime in ("weak", "sup", "semi")
    queries = _queries(batch, with_texts, with_entities)
    q = len(queries[0])
    flat = [t for qs in queries for t in qs]
    text = clap.embed_text(flat).reshape(b, q, -1).to(device)
    if with_texts and cfg.mixture_text == "entity_mean":
        text = torch.cat([_entity_means(clap, batch).to(device), text[:, 2:]], dim=1)
    states = mask = None
    if core.cfg.conditioning == "cross_attention":
        if with_texts and cfg.mixture_text == "entity_mean":
            raise ValueError("mixture_text='entity_mean' has no token states for cross-attention; "
                             "use conditioning 'head' or 'film'")
        states, mask = clap.text_states(flat)
        states = states.reshape(b, q, *states.shape[1:]).to(device)
        mask = mask.reshape(b, q, -1).to(device)
    masks, spec = model(batch.mixture, text, states, mask)
    mix_mag = spec.abs()
    terms: dict[str, Tensor] = {}
    zero = mix_mag.new_zeros(())
    o = 2 if with_texts else 0  # entity queries start after the two whole-text queries
    weak_rows = sup_rows = None
    if regime == "semi":
        assert labelled is not None
        sup_rows, weak_rows = labelled, ~labelled
    elif regime in ("unsup", "weak"):
        weak_rows = torch.ones(b, dtype=torch.bool, device=device)
    else:
        sup_rows = torch.ones(b, dtype=torch.bool, device=device)

    total = zero
    if weak_rows is not None and weak_rows.any():
        sub_mags = _stft_mag(core, batch.submixtures[weak_rows])
        terms["loss_unsup"] = mix_and_separate_loss(masks[weak_rows, :2], mix_mag[weak_rows], sub_mags)
        total = total + cfg.reconstruction_weight * terms["loss_unsup"]
        if regime in ("weak", "semi"):
            wm = masks[weak_rows, o:].reshape(-1, 2, n, *mix_mag.shape[1:])
            entity_mags = wm * mix_mag[weak_rows, None, None]
            if cfg.consistency:
                terms["loss_consistency"] = consistency_loss(entity_mags, sub_mags)
                total = total + cfg.reconstruction_weight * terms["loss_consistency"]
            if cfg.contrastive and n > 1:
                wav = core.estimates(wm.reshape(wm.shape[0], 2 * n, *wm.shape[3:]), spec[weak_rows],
                                      batch.mixture.shape[-1])
                audio_emb = clap.embed_audio(wav.reshape(-1, wav.shape[-1]).float(), sample_rate)
                ent_emb = text[weak_rows, o:]  # the entity queries' embeddings, already looked up above
                terms["loss_contrastive"] = bimodal_contrastive_loss(
                    audio_emb.reshape(-1, n, audio_emb.shape[-1]), ent_emb.reshape(-1, n, ent_emb.shape[-1]),
                    clap.logit_scale.to(device))
                total = total + cfg.contrastive_weight * terms["loss_contrastive"]
    if sup_rows is not None and sup_rows.any():
        if batch.sources is None:
            raise ValueError(f"regime {regime!r} needs single sources but the batch has none")
        src = batch.sources[sup_rows]  # (b', 2, N, T)
        src_mags = _stft_mag(core, src.reshape(src.shape[0], 2 * n, -1))
        est = masks[sup_rows, o:] * mix_mag[sup_rows, None]
        terms["loss_sup"] = supervised_loss(est, src_mags, mix_mag[sup_rows])
        total = total + cfg.reconstruction_weight * terms["loss_sup"]
    terms["loss_total"] = total
    return terms


# --------------------------------------------------------------------------- batches
class BatchSource:
    """The batch of step ``s`` for one rank, a pure function of (seed, rank, s)."""

    def __init__(self, clips: ClipSet, cfg: RunConfig, profile: Profile, batch_size: int, rank: int) -> None:
        self.cfg, self.rank, self.batch_size = cfg, rank, batch_size
        n = cfg.n_sources
        kw = dict(gain_range=tuple(profile.train_gain_range), seed=cfg.seed)
        self.labelled_indices: list[int] = []
        if cfg.regime in ("unsup", "weak"):
            self.samplers = [(MixtureSampler(clips, n, batch_size, with_sources=False, **kw), False)]
        elif cfg.regime == "sup":
            idx = None
            if cfg.label_fraction < 1:
                idx = self.labelled_indices = labelled_subset(len(clips), cfg.label_fraction, cfg.seed)
            self.samplers = [(MixtureSampler(clips, n, batch_size, with_sources=True, clip_indices=idx, **kw), True)]
        else:  # semi: half of every batch from the labelled clips, half from the rest
            self.labelled_indices = labelled_subset(len(clips), cfg.label_fraction, cfg.seed)
            rest = sorted(set(range(len(clips))) - set(self.labelled_indices))
            n_lab = max(1, batch_size // 2)
            self.samplers = [
                (MixtureSampler(clips, n, n_lab, with_sources=True, clip_indices=self.labelled_indices, **kw), True),
                (MixtureSampler(clips, n, batch_size - n_lab, with_sources=False, clip_indices=rest, **kw), False),
            ]

    def batch(self, step: int) -> tuple[MixBatch, Tensor | None]:
        g = torch.Generator().manual_seed(((self.cfg.seed * 1_000_003 + self.rank) * 1_000_033 + step) % (2**63))
        parts = [(s.sample(g), lab) for s, lab in self.samplers]
        if len(parts) == 1:
            return parts[0][0], None
        (a, _), (b, _) = parts
        # The labelled part's sources go with it; the unlabelled part gets zeros that are never read.
        src_b = torch.zeros(b.mixture.shape[0], *a.sources.shape[1:])
        merged = MixBatch(
            mixture=torch.cat([a.mixture, b.mixture]), submixtures=torch.cat([a.submixtures, b.submixtures]),
            texts=a.texts + b.texts, entities=a.entities + b.entities, sources=torch.cat([a.sources, src_b]),
        )
        labelled = torch.cat([torch.ones(len(a.texts), dtype=torch.bool), torch.zeros(len(b.texts), dtype=torch.bool)])
        return merged, labelled


def _to(batch: MixBatch, device: torch.device) -> MixBatch:
    return MixBatch(
        mixture=batch.mixture.to(device), submixtures=batch.submixtures.to(device), texts=batch.texts,
        entities=batch.entities, sources=None if batch.sources is None else batch.sources.to(device),
    )


# --------------------------------------------------------------------------- the loop
def _read_log(path: Path, upto_step: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto_step]


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    cols = ["step", *LOSS_TERMS, "lr", "seconds"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def train(cfg: RunConfig, profile: Profile, clips: ClipSet, clap: ClapBackend, out_dir: str | Path, *,
          progress: bool = True, stop_after: int | None = None, snapshots: bool = False) -> Path:
    """Train (or resume) the run ``cfg`` in ``out_dir``; return the path of the final model.

    ``out_dir`` receives ``config.json``, ``log.csv`` (every loss term per
    step), ``checkpoint.pt`` (full state, every ``profile.checkpoint_every``
    steps) and, at the end, ``model.pt``. With ``snapshots``, the model at
    every checkpoint is also kept as ``snapshots/step_<k>.pt`` (for training
    curves). ``stop_after`` ends the call early after that many steps, as an
    interruption would (for tests).
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    rt = setup_runtime()
    final = out / "model.pt"
    ckpt_path = out / "checkpoint.pt"
    if final.exists():
        done = read_checkpoint(final)
        if same_run(done["run_config"], cfg):
            return final
        raise ValueError(f"{out} already holds a finished run of another config; choose another --out")
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str) + "\n")

    torch.manual_seed(cfg.seed)
    model = Separator(separator_config(profile, clap)).to(rt.device)
    clap = clap.to(rt.device).freeze()
    opt = torch.optim.Adam(model.parameters(), lr=profile.lr, weight_decay=profile.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=profile.lr_decay_every, gamma=0.1)
    start = 0
    if ckpt_path.exists():
        state = read_checkpoint(ckpt_path)
        if not same_run(state["run_config"], cfg):
            raise ValueError(f"{ckpt_path} was written by another config; remove it or choose another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
    log_rows: list[dict[str, Any]] = _read_log(out / "log.csv", start - 1) if rt.is_main else []

    net: torch.nn.Module = model
    if rt.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if profile.batch_size % rt.world_size:
        raise ValueError(f"batch size {profile.batch_size} is not divisible by {rt.world_size} processes")
    source = BatchSource(clips, cfg, profile, profile.batch_size // rt.world_size, rt.rank)
    if rt.is_main and source.labelled_indices:
        atomic_write_text(out / "labelled_clips.json", json.dumps(source.labelled_indices) + "\n")
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if rt.device.type == "cuda" else nullcontext())

    model.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=f"{cfg.regime} N={cfg.n_sources}",
               disable=not (progress and rt.is_main))
    t_last = time.time()
    for step in bar:
        batch, labelled = source.batch(step)
        batch = _to(batch, rt.device)
        with autocast:
            terms = compute_losses(net, clap, batch, cfg, profile.sample_rate,
                                   None if labelled is None else labelled.to(rt.device))
        for name, value in terms.items():
            if not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"step {step}: loss term {name} = {float(value)}; the last good checkpoint is {ckpt_path}")
        opt.zero_grad(set_to_none=True)
        terms["loss_total"].backward()
        opt.step()
        sched.step()
        now = time.time()
        row = {"step": step, **{k: float(v) for k, v in terms.items()}, "lr": sched.get_last_lr()[0],
               "seconds": round(now - t_last, 4)}
        t_last = now
        if rt.world_size > 1:  # log the mean over processes
            vals = torch.tensor([row.get(k, float("nan")) for k in LOSS_TERMS], device=rt.device)
            dist.all_reduce(vals)
            row.update({k: float(v) / rt.world_size for k, v in zip(LOSS_TERMS, vals) if not math.isnan(float(v))})
        log_rows.append(row)
        bar.set_postfix(loss=f"{row['loss_total']:.4f}")
        done_steps = step + 1
        if rt.is_main and (done_steps % profile.checkpoint_every == 0 or done_steps == cfg.steps):
            save_checkpoint(ckpt_path, model, cfg.to_dict(), done_steps, opt, sched)
            _write_log(out / "log.csv", log_rows)
            if snapshots:
                save_checkpoint(out / "snapshots" / f"step_{done_steps:07d}.pt", model, cfg.to_dict(), done_steps)
    if rt.is_main:
        _write_log(out / "log.csv", log_rows)
        if end == cfg.steps:
            save_checkpoint(final, model, cfg.to_dict(), cfg.steps)
        elif end > start:
            save_checkpoint(ckpt_path, model, cfg.to_dict(), end, opt, sched)
    if rt.world_size > 1:
        _check_replicas_agree(model)
        dist.barrier()
    return final


def continue_from(shorter_run: str | Path, cfg: RunConfig, out_dir: str | Path) -> bool:
    """Seed ``out_dir`` with the last full checkpoint of a shorter run of the same config.

    The batches of a step and the learning-rate schedule (a step decay) do not
    depend on the total number of steps, so training on from the shorter run's
    final state gives the same model as training ``cfg.steps`` from scratch.
    Returns False (and does nothing) when ``shorter_run`` does not qualify.
    """
    src, out = Path(shorter_run), Path(out_dir)
    ckpt = src / "checkpoint.pt"
    if not ckpt.exists() or (out / "checkpoint.pt").exists() or (out / "model.pt").exists():
        return False
    state = read_checkpoint(ckpt)
    if not same_run(state["run_config"], cfg, ignore=("steps",)) or state["step"] > cfg.steps:
        return False
    snaps = out / "snapshots"
    for snap in sorted((src / "snapshots").glob("step_*.pt")):
        atomic_write_bytes(snaps / snap.name, snap.read_bytes())
    last = snaps / f"step_{state['step']:07d}.pt"
    if (src / "model.pt").exists() and not last.exists():  # the shorter run's end is a point of the curve
        atomic_write_bytes(last, (src / "model.pt").read_bytes())
    state["model_config"] = json.dumps(state["model_config"])
    state["run_config"] = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    atomic_torch_save(state, out / "checkpoint.pt")
    if (src / "log.csv").exists():
        atomic_write_bytes(out / "log.csv", (src / "log.csv").read_bytes())
    return True


def _check_replicas_agree(model: Separator) -> None:
    """Under DDP every process must end with the same weights (gradients were synchronised)."""
    local = torch.stack([p.detach().double().sum() for p in model.parameters()])
    spread = local.clone()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    low = local.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if not torch.allclose(spread, low, rtol=1e-6, atol=1e-8):
        raise RuntimeError("DDP replicas ended with different weights: gradients were not synchronised")


# --------------------------------------------------------------------------- command line
def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="python -m weaksep.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--regime", choices=REGIMES, required=True, help="training regime (see PAPER.md)")
    p.add_argument("--sources", type=int, default=2, help="sources per training mixture, N (1-4; default 2)")
    p.add_argument("--profile", default=None, help="smoke | quick | paper (default: $WEAKSEP_PROFILE or quick)")
    p.add_argument("--out", required=True, help="run folder: config, log.csv, checkpoints; resumed when present")
    p.add_argument("--data-root", default=None, help="where corpora are rendered/cached (default: $WEAKSEP_CACHE or ./.cache)")
    p.add_argument("--clap", default=None, choices=["proxy", "laion"], help="CLAP backend (default: the profile's)")
    p.add_argument("--clap-checkpoint", default=None, help="CLAP checkpoint; the default CLAP is pretrained when absent")
    p.add_argument("--tokenizer-dir", default=None, help="laion only: folder with roberta-base vocab.json and merges.txt")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the profile's)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and labelled subset (default 0)")
    p.add_argument("--label-fraction", type=float, default=None, help="labelled share of training clips (sup default 1, semi default the profile's)")
    p.add_argument("--contrastive-weight", type=float, default=None, help="weight of the contrastive term (paper 0.5)")
    p.add_argument("--no-consistency", action="store_true", help="weak/semi: leave out the consistency term (ablation)")
    p.add_argument("--no-contrastive", action="store_true", help="weak/semi: leave out the contrastive term (ablation)")
    p.add_argument("--mixture-text", choices=MIXTURE_TEXTS, default=None,
                   help="query of a sub-mixture: its caption as a 'sentence' (paper, default) or 'entity_mean'")
    p.add_argument("--snapshots", action="store_true", help="keep the model of every checkpoint (training curves)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from .study import Study

    args = build_arg_parser().parse_args(argv)
    study = Study(args.profile, data_root=args.data_root, clap_backend=args.clap,
                  clap_checkpoint=args.clap_checkpoint, tokenizer_dir=args.tokenizer_dir, progress=not args.no_progress)
    overrides = {k: v for k, v in {"steps": args.steps, "label_fraction": args.label_fraction,
                                   "contrastive_weight": args.contrastive_weight,
                                   "mixture_text": args.mixture_text}.items() if v is not None}
    if args.no_consistency:
        overrides["consistency"] = False
    if args.no_contrastive:
        overrides["contrastive"] = False
    path = study.train(args.regime, args.sources, seed=args.seed, out_dir=args.out, snapshots=args.snapshots,
                       **overrides)
    print(f"model: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
