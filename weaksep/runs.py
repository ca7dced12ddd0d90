"""What a training run is: its config, its identity in the cache, its label, its model.

A :class:`RunConfig` holds everything that determines a run (regime, N, seed,
steps, loss weights, the profile's settings, the CLAP) and is saved with it.
Two runs are *the same run* when their identities agree (:meth:`RunConfig.identity`);
the identity includes :data:`TRAINING_SEMANTICS`, the version of what the training
code trains (kept in step with :func:`code_version`, a hash of that code, by a test), so a
model trained by other code is never silently reused from a cache.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from .clap import ClapBackend
from .method.model import SeparatorConfig
from .paths import REPO_ROOT
from .profiles import Profile
from .training_semantics import CONFIRMED_CODE, TRAINING_SEMANTICS

__all__ = ["CONFIRMED_CODE", "TRAINING_SEMANTICS", "RunConfig", "code_version", "same_run"]

REGIMES = ("unsup", "weak", "sup", "semi")
MIXTURE_TEXTS = ("sentence", "entity_mean")
# What a supervised example is: one mixture of exactly N single sources (the test
# distribution), or a mixture of two N-source mixtures (2N sources; the study's
# first design, kept as an ablation).
SUP_INPUTS = ("mixture", "mixture_of_mixtures")
TEXT_NORMS = ("vocabulary", "batch")

# The modules whose code decides what a trained model is. Their syntax trees (comments,
# docstrings and formatting left out) are hashed by code_version(); a listed file that is missing
# is an error, so that a move cannot silently drop it out of the hash.
TRAINING_CODE = (
    "method/model.py",
    "method/losses.py",
    "method/objective.py",
    "method/text_norm.py",
    "training/train.py",
    "training/validation.py",
    "training/checkpoint.py",
    "training/distrib.py",
    "runs.py",
    "profiles.py",
    "data/__init__.py",
    "data/mixtures.py",
    "data/corpus.py",
    "data/render.py",
    "data/soundfonts.py",
    "data/classes.py",
    "data/captions.py",
    "data/manifest.py",
    "data/store.py",
    "clap/__init__.py",
    "clap/base.py",
    "clap/proxy.py",
    "clap/pretrain.py",
    "clap/augment.py",
)


@dataclass
class RunConfig:
    """Everything that determines a training run (saved with it as ``config.json``)."""

    regime: str
    n_sources: int
    profile: dict[str, Any]
    seed: int = 0
    steps: int = 1000
    label_fraction: float = 1.0  # share of training clips with single sources (sup, semi)
    contrastive_weight: float = 0.5
    reconstruction_weight: float = 5.0
    consistency: bool = True  # weak/semi: use the consistency term (ablations switch it off)
    contrastive: bool = True  # weak/semi: use the contrastive term
    # weak/semi: how many examples' entities are the candidates of one contrastive group
    # (weaksep.method.losses.grouped_contrastive_loss). 1 here: a config saved before the setting existed
    # was trained with groups of one sub-mixture; a study passes its profile's (the authors' 2).
    contrastive_group: int = 1
    clap: dict[str, Any] = field(default_factory=dict)  # backend, checkpoint, sha256
    corpus: str = "instruments"
    # unsup/weak/semi: the query of a sub-mixture is its caption encoded as a sentence
    # (the paper) or "entity_mean", the normalised mean of its entities' embeddings.
    mixture_text: str = "sentence"
    sup_input: str = "mixture"  # see SUP_INPUTS
    text_norm: str = "vocabulary"  # see weaksep.method.text_norm
    lr: float | None = None  # None: the profile's
    data: str = "rendered"  # where the clips come from: "rendered" or a manifest folder's name and hash
    code: str = ""  # TRAINING_SEMANTICS of the code that trains it
    # Provenance, not identity:
    version: str = ""
    commit: str = ""

    def __post_init__(self) -> None:
        for name, allowed in (
            ("regime", REGIMES),
            ("mixture_text", MIXTURE_TEXTS),
            ("sup_input", SUP_INPUTS),
            ("text_norm", TEXT_NORMS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 1 <= self.n_sources <= 4:
            raise ValueError(f"n_sources must be 1..4, got {self.n_sources}")
        if self.contrastive_group < 1:
            raise ValueError(f"contrastive_group must be >= 1, got {self.contrastive_group}")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")

    @property
    def learning_rate(self) -> float:
        return float(self.lr if self.lr is not None else self.profile["lr"])

    @property
    def uses_contrastive(self) -> bool:
        """Whether the run trains the bi-modal contrastive term (weak or semi, term on, N > 1)."""
        return self.regime in ("weak", "semi") and self.contrastive and self.n_sources > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
        """What makes two runs the same run: every field but the provenance (and ``ignore``)."""
        d = json.loads(json.dumps(self.to_dict(), default=str))
        for name in ("version", "commit", *ignore):
            d.pop(name, None)
        d.get("clap", {}).pop("checkpoint", None)  # where the CLAP file lies does not matter, its hash does
        # The profile's contrastive group is copied into the run's own field; only that one decides a
        # run, and only a run that trains the contrastive term: unsup and sup keep their identity.
        d.get("profile", {}).pop("contrastive_group", None)
        if not self.uses_contrastive:
            d.pop("contrastive_group", None)
        return d


def same_run(saved: dict[str, Any], cfg: RunConfig, ignore: tuple[str, ...] = ()) -> bool:
    """Whether the run config ``saved`` with a checkpoint is ``cfg`` (up to ``ignore``)."""
    try:
        return RunConfig(**saved).identity(ignore) == cfg.identity(ignore)
    except (TypeError, ValueError):  # a field or value this version does not know
        return False


def why_not_same_run(saved: dict[str, Any], cfg: RunConfig) -> str:
    """The fields in which ``saved`` differs from ``cfg``, for error messages."""
    try:
        old = RunConfig(**saved).identity()
    except (TypeError, ValueError) as e:
        return f"the saved config is not readable by this version ({e})"
    new = cfg.identity()
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "nothing"


def run_label(regime: str, label_fraction: float = 1.0) -> str:
    """The label of a regime in tables and figures: ``sup``, ``sup@5%``, ``semi@5%``, ``weak``."""
    if regime in ("sup", "semi") and 0 < label_fraction < 1:
        return f"{regime}@{label_fraction * 100:g}%"
    return regime


def separator_config(profile: Profile, clap: ClapBackend, text_norm: str = "vocabulary") -> SeparatorConfig:
    """The separator of ``profile`` for the text embeddings of ``clap``."""
    return SeparatorConfig(
        n_fft=profile.n_fft,
        hop=profile.hop,
        channels=tuple(profile.unet_channels),
        text_dim=clap.embed_dim,
        text_state_dim=clap.text_state_dim,
        conditioning=profile.conditioning,
        cond_levels=profile.cond_levels,
        head_channels=profile.head_channels,
        text_norm=text_norm,
    )


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the training code's syntax trees (comments, docstrings, formatting ignored)."""
    h = hashlib.sha256()
    pkg = REPO_ROOT / "weaksep"
    for name in TRAINING_CODE:
        path = pkg / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in weaksep.runs.TRAINING_CODE but missing: update the list")
        h.update(name.encode())
        h.update(ast.dump(_strip_docstrings(ast.parse(path.read_text()))).encode())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes to tracked files), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
