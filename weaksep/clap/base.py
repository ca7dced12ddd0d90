"""The interface every CLAP backend offers the separator and the losses.

A backend is frozen: its parameters never change during separation training,
and it stays in eval mode whatever ``train()`` is called on the module that
holds it. Gradients still flow *through* its audio encoder to the waveform,
which the bi-modal contrastive loss needs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict
from pathlib import Path

import torch
import torchaudio
from torch import Tensor, nn

from ..io import atomic_torch_save, safe_torch_load

DEFAULT_TEMPLATE = "The sound of {entity}"
TEXT_CHUNK = 256  # prompts per pass of the text tower (46 000 AudioCaps captions at once would not fit a GPU)
TEXT_CACHE_SIZE = 200_000  # embeddings kept (2 KB each at D = 512: at most about 400 MB)
STATE_CACHE_SIZE = 4_000  # token states kept (up to 77 x 768 floats, about 0.2 MB each: at most about 1 GB)


def _trim(cache: OrderedDict[str, Tensor], size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


class ClapBackend(nn.Module):
    """Frozen audio-text embedding model.

    Subclasses set ``sample_rate`` (their own rate, Hz), ``embed_dim`` (D),
    ``text_state_dim`` (H) and implement :meth:`_encode_text` and
    :meth:`_encode_audio`.
    """

    sample_rate: int
    embed_dim: int
    text_state_dim: int

    def __init__(self, prompt_template: str = DEFAULT_TEMPLATE) -> None:
        super().__init__()
        if "{entity}" not in prompt_template:
            raise ValueError(f"prompt template {prompt_template!r} must contain '{{entity}}'")
        self.prompt_template = prompt_template
        # Prompt -> embedding (D,), and prompt -> token states (L, H), both on the CPU, least recently
        # used first. Bounded: a dataset's mixture sentences are new at almost every step, and at the
        # paper's sizes token states take about 0.2 MB a prompt.
        self._text_cache: OrderedDict[str, Tensor] = OrderedDict()
        self._state_cache: OrderedDict[str, Tensor] = OrderedDict()

    # --- to implement ---------------------------------------------------
    @abstractmethod
    def _encode_text(self, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        """prompts -> (embedding (B, D) L2-normalised, states (B, L, H), mask (B, L) bool)."""

    @abstractmethod
    def _encode_audio(self, wav: Tensor) -> Tensor:
        """wav (B, T) at ``self.sample_rate`` -> embedding (B, D), not yet normalised."""

    # --- the interface ----------------------------------------------------
    @property
    def logit_scale(self) -> Tensor:
        """The frozen temperature (a scalar, already exponentiated)."""
        return self._logit_scale().detach()

    def _logit_scale(self) -> Tensor:
        raise NotImplementedError

    def prompt(self, entity: str) -> str:
        return self.prompt_template.format(entity=entity)

    def freeze(self) -> ClapBackend:
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> ClapBackend:
        # A frozen backend never switches to training mode (no dropout, no
        # batch-norm statistics updates) when the separator does.
        return super().train(False)

    def _prompts(self, texts: list[str], template: bool) -> list[str]:
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError(f"text prompts must be non-empty strings, got {texts!r}")
        return [self.prompt(t) if template else t for t in texts]

    @torch.no_grad()
    def _encode_missing(self, prompts: list[str], need_states: bool) -> None:
        """Encode the prompts not yet cached (embeddings always, token states when asked)."""
        missing = sorted(
            {p for p in prompts if p not in self._text_cache or (need_states and p not in self._state_cache)}
        )
        if not missing:
            return
        for start in range(0, len(missing), TEXT_CHUNK):  # a fixed batch for the text tower, however many
            chunk = missing[start : start + TEXT_CHUNK]
            emb, states, mask = self._encode_text(chunk)
            for i, p in enumerate(chunk):
                self._text_cache[p] = emb[i].detach().float().cpu()
                if need_states:
                    n = int(mask[i].sum())
                    self._state_cache[p] = states[i, :n].detach().cpu()
        for p in prompts:  # the prompts of this call are the most recently used
            self._text_cache.move_to_end(p)
            if need_states:
                self._state_cache.move_to_end(p)
        _trim(self._text_cache, max(TEXT_CACHE_SIZE, len(set(prompts))))
        _trim(self._state_cache, max(STATE_CACHE_SIZE, len(set(prompts)) if need_states else 0))

    def text_cache_bytes(self) -> int:
        """Bytes held by the text caches (embeddings and token states)."""
        return sum(t.numel() * t.element_size() for c in (self._text_cache, self._state_cache) for t in c.values())

    def embed_text(self, texts: list[str], template: bool = True) -> Tensor:
        """Texts -> (B, D) L2-normalised embeddings (no gradient; cached per prompt).

        With ``template`` each text is an entity put into the prompt template
        ("The sound of violin"); without, the text is used as it is.
        """
        prompts = self._prompts(list(texts), template)
        self._encode_missing(prompts, need_states=False)
        return torch.stack([self._text_cache[p] for p in prompts]).to(self._device())

    def text_states(self, texts: list[str], template: bool = True) -> tuple[Tensor, Tensor]:
        """Texts -> token states (B, L, H) and their mask (B, L), True on real tokens."""
        prompts = self._prompts(list(texts), template)
        self._encode_missing(prompts, need_states=True)
        length = max(self._state_cache[p].shape[0] for p in prompts)
        states = torch.zeros(len(prompts), length, self.text_state_dim)
        mask = torch.zeros(len(prompts), length, dtype=torch.bool)
        for i, p in enumerate(prompts):
            s = self._state_cache[p]
            states[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        device = self._device()
        return states.to(device), mask.to(device)

    # --- a text-embedding cache shared by runs ------------------------------
    def load_text_cache(self, path: str | Path) -> int:
        """Add the embeddings saved at ``path`` (if it exists) to the cache; returns how many."""
        path = Path(path)
        if not path.exists():
            return 0
        saved = safe_torch_load(path, "text-embedding cache")
        prompts, emb = saved["prompts"], saved["embeddings"]
        if emb.shape != (len(prompts), self.embed_dim):
            raise ValueError(
                f"text-embedding cache {path} holds {tuple(emb.shape)} embeddings, "
                f"expected ({len(prompts)}, {self.embed_dim}); delete it"
            )
        for p, e in zip(prompts, emb):
            self._text_cache.setdefault(p, e)
        return len(prompts)

    def save_text_cache(self, path: str | Path) -> None:
        """Save every cached embedding (not the token states) to ``path``, atomically."""
        prompts = sorted(self._text_cache)
        atomic_torch_save(
            {
                "prompts": prompts,
                "embeddings": torch.stack([self._text_cache[p] for p in prompts])
                if prompts
                else torch.zeros(0, self.embed_dim),
            },
            path,
        )

    def embed_audio(self, wav: Tensor, sample_rate: int) -> Tensor:
        """Waveforms (B, T) at ``sample_rate`` Hz -> (B, D) L2-normalised embeddings.

        Differentiable with respect to ``wav``; resampling to the backend's own
        rate happens here.
        """
        if wav.dim() != 2:
            raise ValueError(f"embed_audio expects a (batch, samples) waveform, got shape {tuple(wav.shape)}")
        if sample_rate != self.sample_rate:
            wav = torchaudio.functional.resample(wav, sample_rate, self.sample_rate)
        emb = self._encode_audio(wav)
        return torch.nn.functional.normalize(emb, dim=-1)

    def _device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")
