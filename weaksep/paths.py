"""Where things live, and the one file hash of the package.

* ``REPO_ROOT``: the checkout this package was imported from;
* the cache (``$WEAKSEP_CACHE``, else ``.cache/`` in the checkout, else
  ``~/.cache/weaksep`` for an installed package): rendered corpora, test sets,
  the pretrained default CLAP and every training run;
* the results (``$WEAKSEP_RESULTS``, else ``results/`` for the quick profile and
  ``results/<profile>/`` for the others): tables, figures, models.

Paths written into results are made relative to one of these roots
(:func:`portable_path`), so no result holds a path of the machine that made it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_cache() -> Path:
    env = os.environ.get("WEAKSEP_CACHE")
    if env:
        return Path(env)
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / ".cache"
    return Path.home() / ".cache" / "weaksep"


def default_results_dir(profile_name: str) -> Path:
    env = os.environ.get("WEAKSEP_RESULTS")
    base = Path(env) if env else REPO_ROOT / "results"
    return base if profile_name == "quick" else base / profile_name


def file_sha256(path: str | Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the file's sha256 (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def portable_path(path: str | Path, cache: str | Path | None = None) -> str:
    """``path`` as ``<cache>/...`` or ``<repo>/...`` when under the cache or the checkout.

    ``cache`` is the study's cache (default: :func:`default_cache`); :func:`resolve_portable`
    turns the result back into a path. A path under neither keeps only its file
    name, so nothing machine-specific is written into a result.
    """
    p = Path(path).resolve()
    for label, root in (("<cache>", Path(cache or default_cache()).resolve()), ("<repo>", REPO_ROOT)):
        try:
            return f"{label}/{p.relative_to(root)}"
        except ValueError:
            continue
    return p.name


def resolve_portable(recorded: str, cache: str | Path | None = None) -> Path:
    """The path a :func:`portable_path` string names, under ``cache`` (default: :func:`default_cache`)."""
    if recorded.startswith("<cache>/"):
        return Path(cache or default_cache()) / recorded[len("<cache>/") :]
    if recorded.startswith("<repo>/"):
        return REPO_ROOT / recorded[len("<repo>/") :]
    return Path(recorded)
