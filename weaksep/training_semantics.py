"""The version of what the training code trains, kept out of the hashed training code itself.

Outside ``runs.TRAINING_CODE`` on purpose: confirming a hash here must not change the hash.
"""

# What a run trained by today's code is, saved as every run config's ``code`` and part of its
# identity. It changes only when the training code changes what a model becomes; then every
# cached and committed model is trained again. CONFIRMED_CODE is the code_version() for which
# that was last decided: tests/test_runs.py fails as soon as the hashed code differs from it and
# asks which it is. A change that alters training: set TRAINING_SEMANTICS to the new hash. A
# refactor, a move, or a new setting whose default for saved configs keeps the old behaviour
# (contrastive_group): set CONFIRMED_CODE to it, and say why in the commit.
TRAINING_SEMANTICS = "7032ef39a6ad"
CONFIRMED_CODE = "bc16b91a21b9"
