"""Notebook players and figures: compact, and faithful to the level of what they play."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import soundfile as sf
import torch

from weaksep.reproduce.listening import compact_png, players_html


def test_players_embed_mp3_at_the_true_level_and_cut_to_the_excerpt():
    rate = 8000
    t = torch.arange(3 * rate) / rate
    loud, quiet = 0.5 * torch.sin(2 * torch.pi * 440 * t), 0.05 * torch.sin(2 * torch.pi * 440 * t)
    page = players_html({"loud": loud, "quiet <b>": torch.stack([quiet, quiet])}, rate, seconds=1.0)
    assert "quiet &lt;b&gt;" in page  # names are escaped
    blobs = re.findall(r"data:audio/mpeg;base64,([A-Za-z0-9+/=]+)", page)
    assert len(blobs) == 2
    decoded = [sf.read(io.BytesIO(base64.b64decode(b)), dtype="float32", always_2d=True) for b in blobs]
    for (x, r), peak, channels in zip(decoded, (0.5, 0.05), (1, 2)):
        assert r == rate and x.shape[1] == channels
        assert abs(x.shape[0] / rate - 1.0) < 0.1  # MP3 pads a few frames
        assert abs(np.sqrt((x[2000:6000] ** 2).mean()) - peak / np.sqrt(2)) < 0.15 * peak  # not normalised


def test_compact_png_is_smaller_and_the_same_size(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = (rng.random((200, 300, 3)) * 255).astype(np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(img).save(path)
    small = compact_png(path)
    assert len(small) < path.stat().st_size / 2
    assert Image.open(io.BytesIO(small)).size == (300, 200)
