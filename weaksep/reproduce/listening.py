"""Compact audio players and figures for notebooks.

An executed notebook carries its outputs, and IPython's ``Audio`` embeds
16-bit WAV (64 kB per second at 16 kHz, more in base64) and ``Image`` the
PNG as it is (a spectrogram figure is noise to PNG: 250 kB). Players here
embed MP3 at the estimate's true level (no normalisation, so a model that
removes a sound is heard doing so) and figures are re-encoded with a
64-colour palette, about a quarter of the size, for display only: the PNG on
disk is untouched.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def encoded_audio(wav: torch.Tensor | np.ndarray, sample_rate: int) -> tuple[bytes, str]:
    """(T,) or (C, T) waveform, clipped to [-1, 1], as MP3 bytes and their MIME type
    (16-bit WAV where libsndfile is older than 1.1 and cannot write MP3)."""
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    x = np.clip(np.nan_to_num(x.astype(np.float32)), -1.0, 1.0)
    buf = io.BytesIO()
    if "MP3" in sf.available_formats():
        sf.write(buf, x.T if x.ndim == 2 else x, int(sample_rate), format="MP3", subtype="MPEG_LAYER_III")
        return buf.getvalue(), "audio/mpeg"
    sf.write(buf, x.T if x.ndim == 2 else x, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue(), "audio/wav"


def players_html(named: Mapping[str, torch.Tensor | np.ndarray], sample_rate: int, seconds: float | None = None) -> str:
    """One table row of labelled ``<audio>`` players (MP3 data URIs), the first ``seconds`` of each."""
    n = None if seconds is None else int(seconds * sample_rate)
    cells = []
    for name, wav in named.items():
        data, mime = encoded_audio(wav[..., :n], sample_rate)
        cells.append(
            f"<td style='text-align:center'>{html.escape(str(name))}<br><audio controls preload='none' "
            f"src='data:{mime};base64,{base64.b64encode(data).decode('ascii')}'></audio></td>"
        )
    return f"<table><tr>{''.join(cells)}</tr></table>"


def players(named: Mapping[str, torch.Tensor | np.ndarray], sample_rate: int, seconds: float | None = None):
    """:func:`players_html` as an IPython ``HTML`` object, for ``display``."""
    from IPython.display import HTML

    return HTML(players_html(named, sample_rate, seconds))


def compact_png(path: str | Path, colours: int = 64) -> bytes:
    """The PNG at ``path`` re-encoded with a ``colours``-colour palette."""
    from PIL import Image

    with Image.open(path) as im:
        buf = io.BytesIO()
        im.convert("RGB").quantize(colours).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def compact_image(path: str | Path, colours: int = 64):
    """An IPython ``Image`` of :func:`compact_png`, for ``display``."""
    from IPython.display import Image

    return Image(data=compact_png(path, colours), format="png")
