"""Validation during training: a model's score on the validation mixtures, and when it has plateaued.

Every run is scored on the same saved validation mixtures at each checkpoint
(bss_eval SDR and SI-SDR, mean over all queries, a silent estimate counted at
``SILENT_FLOOR_DB``); the table then uses the best validation checkpoint. The
scores are computed on the model's device: on a GPU the estimates never go to
the CPU (see :mod:`weaksep.evaluation.scores`), on the CPU with the numpy reference.
"""

from __future__ import annotations

import numpy as np
import torch

from ..clap import ClapBackend
from ..data import Mixture
from ..evaluation.evaluate import separate_testset
from ..evaluation.scores import SILENT_FLOOR_DB, evaluate_queries
from ..method.model import Separator

VAL_COLUMNS = ["step", "val_sdr", "val_si_sdr"]
LAST_SHARE = 0.2  # "plateaued": the last fifth of the steps raised the best validation SDR by less than the tolerance


def _query_scores(model: Separator, clap: ClapBackend, val: Mixture, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """bss_eval SDR and SI-SDR (dB) of every query of ``val``, a silent estimate at the floor."""
    estimates = separate_testset(model, clap, val, batch_size)  # (K, N, T) on the model's device
    # References on the estimates' device too: evaluate_queries then scores on a
    # GPU where there is one, and with numpy (as before) on the CPU.
    sources, mixtures = val.sources.to(estimates.device), val.mixtures.to(estimates.device)
    sdr, si = [], []
    for k in range(len(val)):
        for row in evaluate_queries(sources[k], estimates[k], mixtures[k]):
            sdr.append(row["sdr"])
            si.append(row["si_sdr"])
    floor = lambda x: np.nan_to_num(np.asarray(x, dtype=float), nan=SILENT_FLOOR_DB)  # noqa: E731
    return floor(sdr), floor(si)


@torch.no_grad()
def validate(model: Separator, clap: ClapBackend, val: Mixture, batch_size: int = 16) -> dict[str, float]:
    """Mean bss_eval SDR and SI-SDR (dB) over every query of the validation mixtures."""
    sdr, si = _query_scores(model, clap, val, batch_size)
    return {"val_sdr": float(sdr.mean()), "val_si_sdr": float(si.mean())}


@torch.no_grad()
def validate_across_processes(
    model: Separator, clap: ClapBackend, val: Mixture, batch_size: int, rank: int, world_size: int
) -> dict[str, float]:
    """:func:`validate` with the mixtures shared out over the processes of a torchrun job (mixture
    k to rank k mod world_size), every rank returning the same means; :func:`validate` itself on
    one process."""
    if world_size == 1:
        return validate(model, clap, val, batch_size)
    mine = list(range(rank, len(val), world_size))
    sdr, si = _query_scores(model, clap, val.subset(mine), batch_size) if mine else (np.zeros(0), np.zeros(0))
    device = next(model.parameters()).device
    sums = torch.tensor([sdr.sum(), si.sum(), float(len(sdr))], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(sums)
    return {"val_sdr": float(sums[0] / sums[2]), "val_si_sdr": float(sums[1] / sums[2])}


def plateau_rise(steps: list[int], val_sdr: list[float]) -> float | None:
    """How much the last fifth of the steps raised the best validation SDR (dB).

    ``max(SDR at steps > 0.8 s_max) - max(SDR at steps <= 0.8 s_max)``; None
    when fewer than 3 validation points exist or none falls before the last fifth.
    """
    if len(steps) < 3:
        return None
    cut = (1 - LAST_SHARE) * max(steps)
    before = [v for s, v in zip(steps, val_sdr) if s <= cut]
    after = [v for s, v in zip(steps, val_sdr) if s > cut]
    if not before or not after:
        return None
    return max(after) - max(before)
