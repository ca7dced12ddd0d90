"""Separator checkpoints: full training state for resuming, and the model for inference.

Everything is saved as tensors, numbers and strings so that files load with
``torch.load(weights_only=True)``: a downloaded checkpoint cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_torch_save, safe_torch_load
from ..method.model import Separator, SeparatorConfig

FORMAT = "weaksep-separator-v1"


def save_checkpoint(
    path: str | Path,
    model: Separator,
    run_config: dict[str, Any],
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> Path:
    """Atomically save the model (and, when given, the optimiser and scheduler state)."""
    state: dict[str, Any] = {
        "format": FORMAT,
        "model_config": json.dumps(model.cfg.to_dict()),
        "run_config": json.dumps(run_config, sort_keys=True, default=str),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    return atomic_torch_save(state, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint file; errors name the file and what is wrong."""
    state = safe_torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a weaksep separator checkpoint (expected format {FORMAT!r})")
    missing = [k for k in ("model_config", "run_config", "step", "model") if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}")
    state["model_config"] = json.loads(state["model_config"])
    state["run_config"] = json.loads(state["run_config"])
    return state


def load_separator(path: str | Path, expected: SeparatorConfig | None = None) -> tuple[Separator, dict[str, Any]]:
    """The separator saved at ``path`` (eval mode) and its run config.

    With ``expected``, a checkpoint of another model size is an error that says
    which settings differ.
    """
    state = read_checkpoint(path)
    cfg = SeparatorConfig.from_dict(state["model_config"])
    if expected is not None and cfg != expected:
        diff = {
            k: (v, getattr(expected, k)) for k, v in cfg.to_dict().items() if v != SeparatorConfig.to_dict(expected)[k]
        }
        raise ValueError(f"checkpoint {path} is of another model: (saved, expected) differ in {diff}")
    model = Separator(cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not match its own model config: {e}") from e
    return model.eval(), state["run_config"]
