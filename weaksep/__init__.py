"""weaksep: weakly-supervised, language-conditioned audio source separation.

A reproduction of Mahmud et al., *Weakly-supervised Audio Separation via
Bi-modal Semantic Similarity* (ICLR 2024), sized to run on a CPU.
"""

__version__ = "0.1.0"
