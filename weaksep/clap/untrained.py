"""A LAION-CLAP checkpoint and tokenizer made here, offline: random weights in the authors' layout.

For what needs LAION-CLAP's architecture but not its knowledge: the wrapper's tests, the
end-to-end study with the laion backend, and ``weaksep gpu-check`` (its speed and memory
are the real model's); no pretrained weights can be fetched here. Needs ``tokenizers``
and ``transformers`` (laion-clap's dependencies).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from . import laion

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
CORPUS = [
    "The sound of violin",
    "The sound of flute",
    "The sound of acoustic guitar",
    "a dog barking and a cello playing",
    "church organ, trumpet and piano",
    "rain on a window",
] * 20
LOGIT_SCALE = 33.0


def make_tokenizer_dir(root: Path) -> tuple[Path, int]:
    """A tiny byte-level BPE tokenizer (vocab.json + merges.txt), RoBERTa's special tokens first."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=320, min_frequency=2, show_progress=False, special_tokens=SPECIALS)
    root.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(root))
    return root, bpe.get_vocab_size()


def untrained_clap_model(audio_model: str, vocab_size: int, fusion: bool = False) -> torch.nn.Module:
    """LAION-CLAP as laion_clap builds it, random weights: the real audio tower ``audio_model``
    beside a small RoBERTa text tower (768 wide, because laion_clap's projection expects it)."""
    from transformers import RobertaConfig

    text_config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=768,
        num_hidden_layers=2,
        num_attention_heads=12,
        intermediate_size=256,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    return laion.build_clap_model(audio_model, fusion, "aff_2d" if fusion else "None", text_config)


def make_checkpoint(path: Path, audio_model: str, vocab_size: int, fusion: bool = False) -> dict[str, torch.Tensor]:
    """Random CLAP weights in the authors' layout: {'state_dict': {'module.<key>': tensor}, 'epoch': ...}."""
    torch.manual_seed(0)
    model = untrained_clap_model(audio_model, vocab_size, fusion)
    with torch.no_grad():
        model.logit_scale_a.fill_(math.log(LOGIT_SCALE))
        # Batch-norm statistics that differ from a fresh model's, so a skipped buffer would show.
        model.audio_branch.bn0.running_mean.uniform_(-1.0, 1.0)
    state = model.state_dict()
    # Checkpoints written with transformers < 4.31 carry this buffer; the wrapper must drop it.
    state["text_branch.embeddings.position_ids"] = torch.arange(514)[None]
    torch.save({"epoch": 15, "state_dict": {"module." + k: v for k, v in state.items()}}, path)
    return state
