"""Validation during training: a model's score on the validation mixtures, and when it has plateaued.

Every run is scored on the same saved validation mixtures at each checkpoint
(bss_eval SDR and SI-SDR, mean over all queries, a silent estimate counted at
``SILENT_FLOOR_DB``); the table then uses the best validation checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

from .clap import ClapBackend
from .data import Mixture
from .evaluate import separate_testset
from .model import Separator
from .scores import SILENT_FLOOR_DB, evaluate_queries

VAL_COLUMNS = ["step", "val_sdr", "val_si_sdr"]
LAST_SHARE = 0.2  # "plateaued": the last fifth of the steps raised the best validation SDR by less than the tolerance


@torch.no_grad()
def validate(model: Separator, clap: ClapBackend, val: Mixture, batch_size: int = 16) -> dict[str, float]:
    """Mean bss_eval SDR and SI-SDR (dB) over every query of the validation mixtures."""
    estimates = separate_testset(model, clap, val, batch_size)
    sdr, si = [], []
    for k in range(len(val)):
        for row in evaluate_queries(val.sources[k], estimates[k], val.mixtures[k]):
            sdr.append(row["sdr"])
            si.append(row["si_sdr"])
    floor = lambda x: np.nan_to_num(np.asarray(x, dtype=float), nan=SILENT_FLOOR_DB)  # noqa: E731
    return {"val_sdr": float(floor(sdr).mean()), "val_si_sdr": float(floor(si).mean())}


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
