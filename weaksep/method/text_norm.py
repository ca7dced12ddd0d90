"""Fixed statistics for the separator's text normalisation.

The separator standardises every text embedding per feature before it
conditions anything (prompts share most of their embedding). The mean and
spread come from the CLAP's embeddings of a fixed vocabulary: every entity
of the training clips as a query ("The sound of violin") and a fixed sample
of mixture texts ("violin, flute and cello", or captions for sound events),
computed once from the CLAP. The function is then the same for every regime,
whatever text that regime trains on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..clap import ClapBackend
from ..data.mixtures import _text_and_entities

MIXTURE_TEXTS_PER_N = 64  # sampled mixture texts per N = 2, 3, 4


def vocabulary(entities: list[str], corpus: str = "instruments", seed: int = 0) -> list[str]:
    """The fixed vocabulary: every entity, then sampled 2-, 3- and 4-entity mixture texts.

    ``entities`` are the class names of the training clips (order does not
    matter); ``corpus`` decides how a mixture is described ("instruments":
    joined names, "events": a caption). Deterministic for its arguments.
    """
    names = sorted(set(entities))
    if not names:
        raise ValueError("the text vocabulary needs at least one entity")
    rng = np.random.default_rng(seed)
    texts = list(names)
    for n in (2, 3, 4):
        if n > len(names):
            break
        for _ in range(MIXTURE_TEXTS_PER_N):
            labels = [names[i] for i in rng.choice(len(names), n, replace=False)]
            texts.append(_text_and_entities(corpus, labels, rng)[0])
    return texts


@torch.no_grad()
def vocabulary_statistics(clap: ClapBackend, entities: list[str], corpus: str = "instruments") -> tuple[Tensor, Tensor]:
    """Per-feature mean and standard deviation, each (D,), of the CLAP's embeddings of :func:`vocabulary`."""
    emb = clap.embed_text(vocabulary(entities, corpus)).float().cpu()
    return emb.mean(0), emb.std(0)
