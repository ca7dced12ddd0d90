"""The method of the paper, to read first: the separator (``model``), its loss terms (``losses``), how a
training step draws its batches and combines the terms per regime (``objective``), and the fixed
normalisation of the CLAP text embeddings that condition it (``text_norm``)."""
