"""The text-conditioned mask separator.

Mixture waveform -> STFT -> ``log1p(|X|)`` -> U-Net -> one sigmoid ratio mask
per text query -> estimate = mask x |X| with the mixture's phase -> inverse STFT.

Text enters in two places, as in the paper:

* in the deepest ``cond_levels`` levels of the U-Net, by FiLM from the pooled
  text embedding (``conditioning="film"``) or by cross-attention to the text
  encoder's token states (``conditioning="cross_attention"``, the authors'
  choice); with ``conditioning="head"`` the U-Net is text-free;
* in the Sound-of-Pixels head: the mask is a weighted sum of ``head_channels``
  feature maps, the weights being the projected text embedding.

With ``"head"`` the U-Net runs once per mixture and each extra query costs only
the head; with deep conditioning the decoder runs once per query.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class SeparatorConfig:
    n_fft: int
    hop: int
    channels: tuple[int, ...]  # per U-Net level, shallow to deep
    text_dim: int  # D of the CLAP text embedding
    text_state_dim: int  # H of the CLAP token states (cross-attention)
    conditioning: str = "film"  # "head" | "film" | "cross_attention"
    cond_levels: int = 1
    head_channels: int = 32
    # How text embeddings are standardised before they condition anything:
    # "vocabulary" (fixed statistics of a vocabulary, the same for every regime)
    # or "batch" (a BatchNorm over the training queries; models trained before it existed).
    text_norm: str = "batch"

    def __post_init__(self) -> None:
        if self.conditioning not in ("head", "film", "cross_attention"):
            raise ValueError(f"conditioning must be 'head', 'film' or 'cross_attention', got {self.conditioning!r}")
        if self.text_norm not in ("vocabulary", "batch"):
            raise ValueError(f"text_norm must be 'vocabulary' or 'batch', got {self.text_norm!r}")
        if not 0 <= self.cond_levels <= len(self.channels):
            raise ValueError(f"cond_levels={self.cond_levels} must be within 0..{len(self.channels)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SeparatorConfig:
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


class STFT(nn.Module):
    """Hann-window STFT and its inverse (``center=True``)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        """wav (B, T) -> complex spectrogram (B, n_fft//2+1, frames)."""
        return torch.stft(wav.float(), self.n_fft, self.hop, window=self.window, return_complex=True)

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        """complex (..., F, frames) -> waveform (..., length)."""
        lead = spec.shape[:-2]
        wav = torch.istft(spec.reshape(-1, *spec.shape[-2:]), self.n_fft, self.hop, window=self.window, length=length)
        return wav.reshape(*lead, length)


class VocabularyNorm(nn.Module):
    """Standardise each feature with a fixed mean and spread (buffers, saved with the model).

    The statistics come from the CLAP's embeddings of a fixed vocabulary
    (:mod:`weaksep.method.text_norm`), so the function is the same whatever text a
    regime trains on; a BatchNorm's running statistics would follow the
    training queries (sentences for ``unsup``, entities for ``sup``).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class FiLM(nn.Module):
    def __init__(self, text_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(text_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)  # starts as the identity

    def forward(self, x: Tensor, text: Tensor, states: Tensor | None, mask: Tensor | None) -> Tensor:
        gamma, beta = self.proj(text).chunk(2, dim=-1)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class CrossAttention(nn.Module):
    """Self-attention over time-frequency cells, then cross-attention to text tokens."""

    def __init__(self, text_state_dim: int, channels: int, heads: int = 4) -> None:
        super().__init__()
        heads = max(1, min(heads, channels // 8))
        self.norm1 = nn.LayerNorm(channels)
        self.self_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.kv = nn.Linear(text_state_dim, channels)
        self.cross_attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor, text: Tensor, states: Tensor | None, mask: Tensor | None) -> Tensor:
        if states is None or mask is None:
            raise ValueError("cross-attention conditioning needs the text token states and mask")
        b, c, f, t = x.shape
        seq = x.flatten(2).transpose(1, 2)  # (B, f*t, C)
        h = self.norm1(seq)
        seq = seq + self.self_attn(h, h, h, need_weights=False)[0]
        kv = self.kv(states)
        seq = seq + self.cross_attn(self.norm2(seq), kv, kv, key_padding_mask=~mask, need_weights=False)[0]
        return seq.transpose(1, 2).reshape(b, c, f, t)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int, last: bool = False) -> nn.Sequential:
    # Transposed 4x4 convolutions as in Sound of Pixels: at full resolution a
    # 3x3 convolution after upsampling costs 2.25x as much.
    conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    return nn.Sequential(conv) if last else nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU())


class TextConditionedUNet(nn.Module):
    """U-Net on ``log1p`` magnitudes with text conditioning in its deepest levels.

    Input (B, 1, F, frames) with F and frames multiples of ``2**depth``;
    output features (B, Q, head_channels, F, frames) for Q queries, or
    (B, 1, head_channels, F, frames) shared by all queries when no level is
    text-conditioned.
    """

    def __init__(self, cfg: SeparatorConfig) -> None:
        super().__init__()
        ch = list(cfg.channels)
        self.cfg = cfg
        self.depth = len(ch)
        self.down = nn.ModuleList(_down(cin, cout) for cin, cout in zip([1] + ch[:-1], ch))
        # Decoder level i maps depth-i features back up one level; skips are concatenated.
        up_out = ch[:-1][::-1] + [cfg.head_channels]
        up_in = [ch[-1]] + [2 * c for c in ch[:-1][::-1]]
        self.up = nn.ModuleList(
            _up(cin, cout, last=i == len(ch) - 1) for i, (cin, cout) in enumerate(zip(up_in, up_out))
        )
        # Conditioned blocks act on the bottleneck and the first (deepest) decoder outputs.
        cond_channels = [ch[-1]] + up_out[: max(cfg.cond_levels - 1, 0)]
        n_cond = cfg.cond_levels if cfg.conditioning != "head" else 0
        block = FiLM if cfg.conditioning == "film" else CrossAttention
        dim = cfg.text_dim if cfg.conditioning == "film" else cfg.text_state_dim
        self.cond = nn.ModuleList(block(dim, c) for c in cond_channels[:n_cond])

    def forward(self, x: Tensor, text: Tensor, states: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, 1, F, frames); text (B, Q, D); states (B, Q, L, H); mask (B, Q, L) -> (B, Q, K, F, frames)."""
        b, q = text.shape[:2]
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        conditioned = len(self.cond) > 0
        if conditioned:  # the decoder runs once per query

            def rep(t: Tensor) -> Tensor:
                return t.repeat_interleave(q, dim=0)

            skips = [rep(s) for s in skips]
            h = skips[-1]
            text_flat = text.reshape(b * q, -1)
            states_flat = None if states is None else states.reshape(b * q, *states.shape[2:])
            mask_flat = None if mask is None else mask.reshape(b * q, -1)
            h = self.cond[0](h, text_flat, states_flat, mask_flat)
        for i, layer in enumerate(self.up):
            h = layer(h)
            if conditioned and 0 < i + 1 < len(self.cond):
                h = self.cond[i + 1](h, text_flat, states_flat, mask_flat)
            if i + 2 <= len(skips):
                h = torch.cat([h, skips[-(i + 2)]], dim=1)
        if conditioned:
            return h.reshape(b, q, *h.shape[1:])
        return h.unsqueeze(1)  # (B, 1, K, F, frames): shared by every query


class Separator(nn.Module):
    """Language-queried mask separator (see module docstring)."""

    def __init__(self, cfg: SeparatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stft = STFT(cfg.n_fft, cfg.hop)
        self.unet = TextConditionedUNet(cfg).to(memory_format=torch.channels_last)
        # Prompts share most of their embedding ("The sound of ..." : cosines of
        # 0.7-0.9 between instruments with the sentence encoder), so the text is
        # standardised per feature before it conditions anything: without it a
        # supervised model learned one mask for every query.
        self.text_norm = VocabularyNorm(cfg.text_dim) if cfg.text_norm == "vocabulary" else nn.BatchNorm1d(cfg.text_dim)
        self.head_proj = nn.Linear(cfg.text_dim, cfg.head_channels + 1)  # weights + bias of the mask

    def forward(
        self, mixture: Tensor, text: Tensor, states: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Masks for every query.

        mixture: (B, T) waveform; text: (B, Q, D) CLAP text embeddings of the
        queries; states/mask: (B, Q, L, H) / (B, Q, L) token states (for
        cross-attention only).
        Returns ``(masks, spec)``: masks (B, Q, F, frames) in [0, 1] and the
        mixture's complex STFT (B, F, frames), F = n_fft // 2 + 1.
        """
        spec = self.stft(mixture)
        masks = self.masks_from_spec(spec, text, states, mask)
        return masks, spec

    def masks_from_spec(
        self, spec: Tensor, text: Tensor, states: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """Complex STFT (B, F, frames) and queries -> masks (B, Q, F, frames) in [0, 1]."""
        _, n_freq, n_frames = spec.shape
        text = self.text_norm(text.reshape(-1, text.shape[-1])).reshape(text.shape)
        # The network sees the largest multiple of 2**depth bins and frames (257 x 129
        # -> 256 x 128); the few cells beyond get the mask of their nearest neighbour.
        unit = 2**self.unet.depth
        f_in, t_in = n_freq - n_freq % unit, n_frames - n_frames % unit
        if f_in == 0 or t_in == 0:
            raise ValueError(f"spectrogram of {n_freq} x {n_frames} is smaller than the U-Net's unit {unit}")
        # channels_last: oneDNN's convolutions skip a layout reorder per layer (see make bench).
        x = torch.log1p(spec[:, :f_in, :t_in].abs()).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        feats = self.unet(x, text, states, mask)  # (B, Q or 1, K, f_in, t_in)
        w = self.head_proj(text)  # (B, Q, K + 1)
        b, q = text.shape[:2]
        if feats.shape[1] == 1:  # shared features: one batched matrix product for all queries
            logits = torch.bmm(w[..., :-1], feats[:, 0].flatten(2)).reshape(b, q, f_in, t_in)
        else:
            logits = torch.einsum("bqkft,bqk->bqft", feats, w[..., :-1])
        masks = torch.sigmoid(logits + w[..., -1, None, None])
        if (f_in, t_in) != (n_freq, n_frames):
            masks = F.pad(masks, (0, n_frames - t_in, 0, n_freq - f_in), mode="replicate")
        return masks

    def estimates(self, masks: Tensor, spec: Tensor, length: int) -> Tensor:
        """Waveforms (B, Q, length) of ``mask x |X|`` with the mixture's phase."""
        return self.stft.inverse(masks.to(spec.real.dtype) * spec.unsqueeze(1), length)

    @torch.no_grad()
    def separate(
        self, mixture: Tensor, text: Tensor, states: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """mixture (B, T), text (B, Q, D) -> estimated waveforms (B, Q, T)."""
        masks, spec = self(mixture, text, states, mask)
        return self.estimates(masks, spec, mixture.shape[-1])
