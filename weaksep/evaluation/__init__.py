"""Scoring separations: per-query SDR, SI-SDR and CLAP scores (``scores``), the statistics over queries
and seeds (``stats``), and evaluating a model on saved test mixtures (``evaluate``)."""
