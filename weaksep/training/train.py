"""The training loop, on one CPU, one GPU or many (DDP), with resume and validation.

:func:`train` trains (or resumes) one run: the batches of a step are a pure
function of (seed, rank, step) (:mod:`weaksep.method.objective`), so the only state to
checkpoint is the model's, the optimiser's and the scheduler's. With a
validation set, the model is scored on it at every checkpoint; the best
checkpoint is kept as ``best.pt`` and the run stops early once its validation
SDR has plateaued (:func:`plateau_rise`). The test mixtures choose nothing.

The command line is ``weaksep train`` (:mod:`weaksep.cli`); under torchrun,
``torchrun --nproc_per_node K -m weaksep train ...``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..clap import ClapBackend
from ..data import ClipSet, Mixture
from ..io import atomic_torch_save, atomic_write_bytes, atomic_write_text
from ..method.model import Separator
from ..method.objective import LOSS_TERMS, BatchSource, StepBatches, micro_batches, step_loader, training_losses
from ..method.text_norm import vocabulary_statistics
from ..profiles import Profile
from ..runs import RunConfig, same_run, separator_config, why_not_same_run
from .checkpoint import read_checkpoint, save_checkpoint
from .distrib import check_replicas_agree, decision_of_main, setup_runtime, wrap_model
from .validation import VAL_COLUMNS, plateau_rise, validate_across_processes

# Steps between two checks of the loss terms (finite?) and their copy to the host for the log.
CHECK_EVERY = 50


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


def _read_csv(path: Path, upto_step: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto_step]


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def build_separator(cfg: RunConfig, profile: Profile, clap: ClapBackend, clips: ClipSet) -> Separator:
    """The untrained separator of a run (seeded), its text normalisation set from the CLAP."""
    torch.manual_seed(cfg.seed)
    model = Separator(separator_config(profile, clap, cfg.text_norm))
    if cfg.text_norm == "vocabulary":
        model.text_norm.set_statistics(*vocabulary_statistics(clap, list(clips.classes), cfg.corpus))
    return model


def make_optimizer(model: torch.nn.Module, cfg: RunConfig, profile: Profile, device: torch.device) -> torch.optim.Adam:
    """Adam at the run's learning rate; fused (one kernel for all parameters) where torch offers it."""
    return torch.optim.Adam(
        model.parameters(),
        lr=cfg.learning_rate,
        weight_decay=profile.weight_decay,
        fused=device.type in ("cpu", "cuda"),
    )


def train(
    cfg: RunConfig,
    profile: Profile,
    clips: ClipSet,
    clap: ClapBackend,
    out_dir: str | Path,
    *,
    val: Mixture | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    snapshots: bool = False,
    text_cache: str | Path | None = None,
    accumulate: int = 1,
    check_every: int = CHECK_EVERY,
    workers: int = 0,
) -> Path:
    """Train (or resume) the run ``cfg`` in ``out_dir``; return the path of the model to use.

    ``out_dir`` receives ``config.json``, ``log.csv`` (every loss term per
    step), ``checkpoint.pt`` (full state, every ``profile.checkpoint_every``
    steps) and, at the end, ``model.pt`` (the last weights). With ``val``, the
    model is also scored on those mixtures at every checkpoint (``val.csv``),
    the best is kept as ``best.pt``, training stops once the validation SDR
    has plateaued, and the returned path is ``best.pt``. With ``snapshots``,
    the model at every checkpoint is kept as ``snapshots/step_<k>.pt``.
    ``text_cache`` is a file of CLAP text embeddings shared by runs.
    ``stop_after`` ends the call early after that many steps, as an
    interruption would (for tests).

    ``accumulate`` splits every step's batch into that many micro-batches whose
    gradients add up (:func:`weaksep.method.objective.micro_batches`): the memory of
    one micro-batch, the update of the whole batch. The separator's BatchNorm then
    normalises each micro-batch on its own, as it does each GPU's share under DDP.
    The loss terms stay on the device and are checked (finite) and logged every
    ``check_every`` steps and at every checkpoint: one host sync, not one per term
    and step. ``workers`` processes draw the batches ahead of the step
    (:func:`weaksep.method.objective.step_loader`). None of the three changes what
    the run is (not in its config).
    """
    from tqdm.auto import tqdm

    if accumulate < 1:
        raise ValueError(f"accumulate must be >= 1, got {accumulate}")
    out = Path(out_dir)
    rt = setup_runtime()
    final, best_path, ckpt_path = out / "model.pt", out / "best.pt", out / "checkpoint.pt"
    chosen = best_path if val is not None else final
    if final.exists():
        done = read_checkpoint(final)
        if not same_run(done["run_config"], cfg):
            raise ValueError(
                f"{out} already holds a finished run of another config "
                f"({why_not_same_run(done['run_config'], cfg)}); choose another --out"
            )
        return chosen if chosen.exists() else final
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str) + "\n")

    clap = clap.to(rt.device).freeze()
    if text_cache is not None:
        clap.load_text_cache(text_cache)
    model = build_separator(cfg, profile, clap, clips).to(rt.device)
    opt = make_optimizer(model, cfg, profile, rt.device)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=profile.lr_decay_every, gamma=0.1)
    start = 0
    if ckpt_path.exists():
        state = read_checkpoint(ckpt_path)
        if not same_run(state["run_config"], cfg):
            raise ValueError(
                f"{ckpt_path} was written by another config ({why_not_same_run(state['run_config'], cfg)}); "
                "remove it or choose another --out"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
    log_rows: list[dict[str, Any]] = _read_csv(out / "log.csv", start - 1) if rt.is_main else []
    val_rows: list[dict[str, Any]] = _read_csv(out / "val.csv", start) if rt.is_main else []

    net = wrap_model(model, rt)
    if profile.batch_size % rt.world_size:
        raise ValueError(f"batch size {profile.batch_size} is not divisible by {rt.world_size} processes")
    source = BatchSource(clips, cfg, profile, profile.batch_size // rt.world_size, rt.rank)
    if rt.is_main and source.labelled_indices:
        atomic_write_text(out / "labelled_clips.json", json.dumps(source.labelled_indices) + "\n")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if rt.device.type == "cuda" else nullcontext()

    model.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    bar = tqdm(
        range(start, end),
        initial=start,
        total=cfg.steps,
        desc=f"{cfg.regime} N={cfg.n_sources}",
        disable=not (progress and rt.is_main),
    )
    t_last = time.time()
    stopped_early = False
    pending: list[torch.Tensor] = []  # per step since the last check: its loss terms, stacked, on the device
    pending_rows: list[dict[str, Any]] = []  # per step: step, lr, seconds
    names: list[str] = []
    loader = step_loader(source, start, end, workers, pin_memory=rt.device.type == "cuda")
    for step, batches in zip(bar, loader):
        opt.zero_grad(set_to_none=True)
        terms = accumulated_backward(net, clap, batches, cfg, profile.sample_rate, accumulate, autocast)
        opt.step()
        sched.step()
        names = names or list(terms)
        pending.append(torch.stack([terms[k].detach().float() for k in names]))
        now = time.time()
        pending_rows.append({"step": step, "lr": sched.get_last_lr()[0], "seconds": round(now - t_last, 4)})
        t_last = now
        done_steps = step + 1
        at_checkpoint = done_steps % profile.checkpoint_every == 0 or done_steps == cfg.steps
        if len(pending) >= check_every or at_checkpoint or done_steps == end:
            log_rows += checked_loss_rows(pending, pending_rows, names, rt, ckpt_path)
            pending, pending_rows = [], []
            bar.set_postfix(loss=f"{log_rows[-1]['loss_total']:.4f}")
        if not at_checkpoint:
            continue
        if val is not None:  # every rank scores its share of the validation mixtures
            scores = validate_across_processes(model, clap, val, profile.eval_batch_size, rt.rank, rt.world_size)
            model.train()
        if rt.is_main:
            if val is not None:
                best_before = max((float(r["val_sdr"]) for r in val_rows), default=-math.inf)
                val_rows.append({"step": done_steps, **scores})
                _write_csv(out / "val.csv", val_rows, VAL_COLUMNS)
                if scores["val_sdr"] > best_before:
                    save_checkpoint(best_path, model, cfg.to_dict(), done_steps)
                rise = plateau_rise([int(r["step"]) for r in val_rows], [float(r["val_sdr"]) for r in val_rows])
                stopped_early = (
                    done_steps >= profile.min_steps_fraction * cfg.steps
                    and rise is not None
                    and rise < profile.plateau_db
                    and done_steps < cfg.steps
                )
            save_checkpoint(ckpt_path, model, cfg.to_dict(), done_steps, opt, sched)
            _write_csv(out / "log.csv", log_rows, ["step", *LOSS_TERMS, "lr", "seconds"])
            if snapshots:
                save_checkpoint(out / "snapshots" / f"step_{done_steps:07d}.pt", model, cfg.to_dict(), done_steps)
            if text_cache is not None:
                clap.save_text_cache(text_cache)
        stopped_early = decision_of_main(stopped_early, rt)  # every rank leaves the loop at the same step
        if stopped_early:
            end = done_steps
            break
    if rt.is_main:
        _write_csv(out / "log.csv", log_rows, ["step", *LOSS_TERMS, "lr", "seconds"])
        if end == cfg.steps or stopped_early:
            save_checkpoint(final, model, cfg.to_dict(), end)
            if val is not None:
                _write_selection(out, val_rows, end, stopped_early, profile.plateau_db)
        elif end > start:
            save_checkpoint(ckpt_path, model, cfg.to_dict(), end, opt, sched)
    if rt.world_size > 1:
        check_replicas_agree(model)
        torch.distributed.barrier()
    return chosen if (end == cfg.steps or stopped_early) and chosen.exists() else final


def accumulated_backward(
    net: torch.nn.Module,
    clap: ClapBackend,
    batches: StepBatches,
    cfg: RunConfig,
    sample_rate: int,
    accumulate: int = 1,
    autocast: Any = None,
) -> dict[str, torch.Tensor]:
    """Backpropagate the loss of ``batches`` in ``accumulate`` micro-batches; return the loss terms
    (scalar tensors on the device, detached) of the whole batch: the mean of the micro-batches'.

    Under DDP the gradients are all-reduced once, at the last micro-batch.
    """
    parts = micro_batches(batches, accumulate, cfg.contrastive_group) if accumulate > 1 else [batches]
    device = next(net.parameters()).device
    total: dict[str, torch.Tensor] = {}
    for j, part in enumerate(parts):
        sync = j == len(parts) - 1 or not hasattr(net, "no_sync")
        with nullcontext() if sync else net.no_sync(), autocast or nullcontext():
            terms = training_losses(net, clap, part.to(device), cfg, sample_rate)
        (terms["loss_total"] / len(parts)).backward()
        for k, v in terms.items():
            total[k] = total.get(k, 0) + v.detach() / len(parts)
    return total


def checked_loss_rows(
    pending: list[torch.Tensor],
    rows: list[dict[str, Any]],
    names: list[str],
    rt: Any,
    ckpt_path: Path,
) -> list[dict[str, Any]]:
    """The log rows of the steps since the last check, loss terms averaged over processes.

    ``pending``: per step, the terms (``names``) stacked on the device. One all-reduce and one
    copy to the host for all of them. Raises :class:`NonFiniteLossError` naming the first
    step and term that is not finite (on every rank alike: the values are the all-reduced ones).
    """
    values = torch.stack(pending).double()
    if rt.world_size > 1:
        torch.distributed.all_reduce(values)
        values /= rt.world_size
    values = values.cpu()
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        i, j = (int(x) for x in bad[0])
        raise NonFiniteLossError(
            f"step {rows[i]['step']}: loss term {names[j]} = {float(values[i, j])} (steps {rows[0]['step']}-"
            f"{rows[-1]['step']} checked together); the last good checkpoint is {ckpt_path}"
        )
    return [{**row, **dict(zip(names, map(float, v)))} for row, v in zip(rows, values)]


def _write_selection(
    out: Path, val_rows: list[dict[str, Any]], stop_step: int, stopped_early: bool, plateau_db: float
) -> None:
    """``selection.json``: the chosen (best validation) step, where training stopped, and whether it plateaued."""
    steps = [int(r["step"]) for r in val_rows]
    sdr = [float(r["val_sdr"]) for r in val_rows]
    best = max(range(len(sdr)), key=lambda i: sdr[i])
    rise = plateau_rise(steps, sdr)
    selection = {
        "best_step": steps[best],
        "best_val_sdr": sdr[best],
        "best_val_si_sdr": float(val_rows[best]["val_si_sdr"]),
        "stop_step": stop_step,
        "stopped_early": stopped_early,
        "rise_last_fifth_db": rise,
        "plateau_db": plateau_db,
        "plateaued": rise is not None and rise < plateau_db,
    }
    atomic_write_text(out / "selection.json", json.dumps(selection, indent=2) + "\n")


def continue_from(shorter_run: str | Path, cfg: RunConfig, out_dir: str | Path) -> bool:
    """Seed ``out_dir`` with the last full checkpoint of a shorter run of the same config.

    The batches of a step and the learning-rate schedule (a step decay) do not
    depend on the total number of steps, so training on from the shorter run's
    final state gives the same model as training ``cfg.steps`` from scratch.
    Returns False (and does nothing) when ``shorter_run`` does not qualify
    (among others: a run that stopped early at its plateau).
    """
    src, out = Path(shorter_run), Path(out_dir)
    ckpt = src / "checkpoint.pt"
    if not ckpt.exists() or (out / "checkpoint.pt").exists() or (out / "model.pt").exists():
        return False
    if (src / "selection.json").exists() and json.loads((src / "selection.json").read_text()).get("stopped_early"):
        return False
    state = read_checkpoint(ckpt)
    if not same_run(state["run_config"], cfg, ignore=("steps",)) or state["step"] > cfg.steps:
        return False
    for name in ("snapshots",):
        for snap in sorted((src / name).glob("step_*.pt")):
            atomic_write_bytes(out / name / snap.name, snap.read_bytes())
    last = out / "snapshots" / f"step_{state['step']:07d}.pt"
    if (src / "model.pt").exists() and not last.exists():
        atomic_write_bytes(last, (src / "model.pt").read_bytes())  # the shorter run's end is a point of the curve
    state["model_config"] = json.dumps(state["model_config"])
    state["run_config"] = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    atomic_torch_save(state, out / "checkpoint.pt")
    for name in ("log.csv", "val.csv", "best.pt"):
        if (src / name).exists():
            atomic_write_bytes(out / name, (src / name).read_bytes())
    return True
