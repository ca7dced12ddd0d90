"""The offline LAION-CLAP checkpoint and tokenizer of the tests (made by weaksep.clap.untrained)."""

from weaksep.clap.untrained import CORPUS, LOGIT_SCALE, make_checkpoint, make_tokenizer_dir

__all__ = ["CORPUS", "LOGIT_SCALE", "make_checkpoint", "make_tokenizer_dir"]
