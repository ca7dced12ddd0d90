"""Tiny stand-ins of the recorded corpus's Debian packages, built with ``dpkg-deb -b``.

They hold synthetic sounds (one timbre per class) at the paths and in the containers
of the real packages (0 A.D.'s ``public.zip``, Hydrogen's ``drumkit.xml``, per-language
folders), so that :func:`~weaksep.data.recorded.build_recorded` runs its real
unpacking, rules, grouping and splitting without a download: the tests and the
``smoke`` profile (CI) use them. Each holds files the rules must leave out and one
class with too few recordings.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .recorded_rules import SOURCES, Source

RATE = 16000
# (package, file name within its source, class timbre): names follow the real packages.
_0AD = [f"audio/actor/singlesteps/fs_grass{i}.ogg" for i in range(1, 6)]
_0AD += [f"audio/attack/impact/arrow_0{i}.ogg" for i in range(1, 6)]
_0AD += [f"audio/actor/fauna/animal/chicken_1{i}.ogg" for i in range(3)]  # 3 recordings: dropped
_0AD += ["audio/music/Sunrise.ogg", "audio/actor/fauna/animal/cattle_attack.xml"]  # left out by the rules
KITS = ["BJA_Pacific", "ColomboAcousticDrumkit", "ForzeeStereo", "Millo-Drums_v.1", "rumpf_kit_z01_h2"]
SYNTHETIC_KIT = "HardElectro1"  # left out by the rules
LANGUAGES = ["en", "fr", "de", "sr", "sr@latin"]  # sr@latin is sr's speaker: one group
TABLA = ["tabla_ghe1", "tabla_ghe2", "tabla_na", "tabla_ke1", "tabla_te1", "tabla_tun1"]


def fixture_sources() -> list[Source]:
    """The sources the fixture packages stand in for (the real ones' rules apply)."""
    names = {"0ad-data", "hydrogen-drumkits", "ktuberling-data", "sonic-pi-samples"}
    return [s for s in SOURCES if s.package in names]


def _sound(name: str, rng: np.random.Generator) -> np.ndarray:
    """A clip of 0.4-2.5 s whose timbre depends on the class word in ``name`` (same class, same timbre)."""
    timbres = {"fs_": (150, 0.9), "arrow": (900, 0.5), "chicken": (600, 0.2), "kick": (60, 0.1),
               "snare": (250, 0.8), "tabla": (320, 0.1)}  # fmt: skip
    f0, noise = next((v for k, v in timbres.items() if k in name.lower()), (200, 0.05))  # words: voiced
    n = int(RATE * rng.uniform(0.4, 2.5))
    t = np.arange(n) / RATE
    f = f0 * rng.uniform(0.9, 1.1) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
    tone = sum(np.sin(2 * np.pi * np.cumsum(f * h) / RATE) / h for h in range(1, 5))
    x = (1 - noise) * tone / 2 + noise * rng.standard_normal(n)
    return (0.3 * x * np.exp(-t * rng.uniform(0.5, 3))).astype(np.float32)


def _write(path: Path, rng: np.random.Generator, name: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".ogg": "OGG", ".flac": "FLAC", ".wav": "WAV"}[path.suffix]
    sf.write(path, _sound(name or path.name, rng), RATE, format=fmt)


def _deb(tree: Path, package: str, debs: Path) -> Path:
    control = tree / "DEBIAN" / "control"
    control.parent.mkdir(parents=True, exist_ok=True)
    control.write_text(
        f"Package: {package}\nVersion: 0.0-fixture\nArchitecture: all\nMaintainer: weaksep tests <none>\n"
        "Description: a tiny stand-in built by weaksep's tests\n"
    )
    out = debs / f"{package}_0.0-fixture_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(tree), str(out)], check=True,
                   capture_output=True)  # fmt: skip
    return out


def write_recorded_debs(debs: str | Path, work: str | Path, seed: int = 0) -> list[Path]:
    """Build the fixture ``.deb`` files into ``debs`` (their trees under ``work``); their paths."""
    debs, work, rng = Path(debs), Path(work), np.random.default_rng(seed)
    debs.mkdir(parents=True, exist_ok=True)
    src = {s.package: s for s in SOURCES}
    out = []

    tree = work / "0ad-data"
    zpath = tree / src["0ad-data"].root / "public.zip"
    zpath.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zpath, "w") as z:
        for name in _0AD:
            tmp = work / "member" / Path(name).name
            if name.endswith(".xml"):
                tmp.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text("<SoundGroup/>")
            else:
                _write(tmp, rng)
            z.write(tmp, name)
    out.append(_deb(tree, "0ad-data", debs))

    tree = work / "hydrogen-drumkits"
    for kit in [*KITS, SYNTHETIC_KIT]:
        folder = tree / src["hydrogen-drumkits"].root / kit
        instruments = []
        for inst in ("Kick", "Snare"):
            layers = [f"{kit}_{inst.lower()}_{v}.wav" for v in ("soft", "hard")]
            for f in layers:
                _write(folder / f, rng, inst)
            files = "".join(f"<layer><filename>{f}</filename></layer>" for f in layers)
            instruments.append(f"<instrument><name>{inst}</name>{files}</instrument>")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "drumkit.xml").write_text(
            '<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">'
            f"<name>{kit}</name><instrumentList>{''.join(instruments)}</instrumentList></drumkit_info>"
        )
    out.append(_deb(tree, "hydrogen-drumkits", debs))

    tree = work / "ktuberling-data"
    for lang in LANGUAGES:
        for word in ("moon", "pizza"):
            _write(tree / src["ktuberling-data"].root / lang / f"{word}.ogg", rng)
    # A copy of one file under another language: kept once.
    copy = tree / src["ktuberling-data"].root / "de" / "copied.ogg"
    copy.write_bytes((tree / src["ktuberling-data"].root / "en" / "moon.ogg").read_bytes())
    out.append(_deb(tree, "ktuberling-data", debs))

    tree = work / "sonic-pi-samples"
    for name in [*TABLA, "elec_beep"]:
        _write(tree / src["sonic-pi-samples"].root / f"{name}.flac", rng)
    out.append(_deb(tree, "sonic-pi-samples", debs))
    return out
