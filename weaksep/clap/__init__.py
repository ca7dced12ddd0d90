"""CLAP backends behind one interface (:class:`ClapBackend`).

``proxy`` (default): the study's own audio-text model, pretrained here offline.
``laion``: LAION-CLAP, for users who have its checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import DEFAULT_TEMPLATE, ClapBackend

BACKENDS = ("proxy", "laion")


def load_clap(backend: str, checkpoint: str | Path, **kwargs: Any) -> ClapBackend:
    """A frozen backend ``backend`` loaded from ``checkpoint``.

    ``laion`` accepts ``tokenizer_dir`` and ``audio_model`` (see
    :class:`weaksep.clap.laion.LaionClap`).
    """
    if backend == "proxy":
        from .proxy import ProxyClap

        return ProxyClap.load(checkpoint)
    if backend == "laion":
        from .laion import LaionClap  # imports laion_clap lazily: it is slow and hub-hungry

        return LaionClap(checkpoint, **kwargs)
    raise ValueError(f"unknown CLAP backend {backend!r}; expected one of {BACKENDS}")


__all__ = ["BACKENDS", "DEFAULT_TEMPLATE", "ClapBackend", "load_clap"]
