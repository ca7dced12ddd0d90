"""The sound files of a separation: which files the inputs name, and where and how the outputs are written.

Inputs are files, folders (searched recursively for every format soundfile
reads) and glob patterns (:func:`expand_inputs`); a file soundfile cannot read
is found from its header alone (:func:`probe_audio`), before any model is
loaded. The outputs of ``weaksep separate`` are laid out as

    OUTDIR/<input name>/<prompt slug>.wav   one per prompt (:func:`output_paths`)
    OUTDIR/<input name>/residual.wav        with --residual
    OUTDIR/scores.csv                       the scores (:mod:`weaksep.inference.separate`)

``<input name>`` being the input's stem, made unique (:func:`input_folder_names`);
the WAVs of one input are written all together or not at all (:func:`write_outputs`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

import soundfile as sf
from torch import Tensor

from .waveform import check_prompts

RESIDUAL_FILE = "residual.wav"
SCORES_FILE = "scores.csv"
# Headerless RAW needs its rate and sample format spelled out: a folder scan cannot read it.
UNSCANNED_FORMATS = frozenset({"RAW"})
EXTENSION_ALIASES = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG", "snd": "AU"}


# --------------------------------------------------------------------------- inputs
def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (without the dot) of every format this soundfile reads, for folder scans.

    Each format's own name (``wav``, ``flac``, ``ogg``, ``mp3``, ``aiff``, ...)
    and the usual aliases (``aif``, ``oga``, ``opus``, ``snd``); headerless RAW
    is left out.
    """
    formats = set(sf.available_formats()) - UNSCANNED_FORMATS
    return frozenset({f.lower() for f in formats} | {a for a, f in EXTENSION_ALIASES.items() if f in formats})


def _scan_folder(folder: Path, exclude: Path | None) -> list[Path]:
    """Audio files under ``folder``, sorted; hidden files and folders and ``exclude`` left out.

    Hidden entries are skipped because they are not the user's recordings
    (``.git``, macOS ``._x.wav`` resource forks, our own ``.x.wav.tmp`` files).
    """
    extensions = audio_extensions()
    found = []
    for root, dirs, files in os.walk(folder):  # does not follow symbolic links to folders: no cycles
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        found += [here / f for f in files if not f.startswith(".") and Path(f).suffix[1:].lower() in extensions]
    return sorted(found)


def expand_inputs(
    inputs: str | Path | Sequence[str | Path], exclude: str | Path | None = None
) -> tuple[list[Path], list[str]]:
    """The sound files that ``inputs`` name, and one message per input that names none.

    Each input is a file (taken whatever its extension), a folder (searched
    recursively for :func:`audio_extensions`, hidden entries and the folder
    ``exclude`` — the output folder — left out) or a glob pattern (``*``, ``?``,
    ``[...]``; ``**`` spans folders). A file named twice is kept once, at its
    first place.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    skip = Path(exclude).resolve() if exclude is not None else None
    files: list[Path] = []
    problems: list[str] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            found = _scan_folder(path, skip)
            if not found:
                problems.append(
                    f"folder {path} holds no sound file (looked for {', '.join(sorted(audio_extensions()))})"
                )
        elif path.exists():
            found = [path]
        elif re.search(r"[*?\[]", str(spec)):
            import glob

            found = []
            for match in sorted(glob.glob(str(spec), recursive=True)):
                m = Path(match)
                found += _scan_folder(m, skip) if m.is_dir() else [m]
            if not found:
                problems.append(f"pattern {spec} matches no file")
        else:
            problems.append(f"audio file {path} does not exist")
            found = []
        files += found
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def probe_audio(path: str | Path) -> str | None:
    """Why soundfile cannot read ``path`` (from its header only), or ``None`` when it looks readable."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        return f"audio file {path} is not readable by soundfile ({type(e).__name__}: {e})"
    if info.frames == 0:
        return f"audio file {path} has zero length (no samples)"
    return None


# --------------------------------------------------------------------------- outputs
def input_folder_names(paths: Sequence[str | Path], reserved: Collection[str] = (SCORES_FILE,)) -> list[str]:
    """The output folder of each input: its stem, made unique deterministically.

    Inputs of equal stems (compared without case, for case-insensitive file
    systems) are named by their stem preceded by as many of their parent
    folders as tell them apart, joined by ``__`` (``a/mix.wav``, ``b/mix.wav``
    -> ``a__mix``, ``b__mix``); files of one folder that differ only in
    extension keep it (``mix.wav``, ``mix.flac``). Names depend only on the set
    of files, not on their order. ``reserved`` names (the scores file) are
    avoided the same way.
    """
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError("the same file is listed twice; expand_inputs keeps one")
    taken = {r.casefold() for r in reserved}

    def label(p: Path, depth: int, keep_extension: bool) -> str:
        parents = list(p.parent.parts[1:])  # without the root
        return "__".join([*(parents[len(parents) - depth :] if depth else []), p.name if keep_extension else p.stem])

    names = [p.stem for p in resolved]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name.casefold(), []).append(i)
    for key, idx in groups.items():
        if len(idx) == 1 and key not in taken:
            continue
        deepest = max(len(resolved[i].parent.parts) - 1 for i in idx)
        tries = [(d, False) for d in range(1, deepest + 1)] + [(d, True) for d in range(deepest + 1)]
        for depth, keep_extension in tries:
            candidates = [label(resolved[i], depth, keep_extension) for i in idx]
            folded = {c.casefold() for c in candidates}
            if len(folded) == len(candidates) and not folded & taken:
                break
        for i, c in zip(idx, candidates):
            names[i] = c
    # A name made above may equal another input's stem: number the later one (by path).
    final = list(names)
    for i in sorted(range(len(names)), key=lambda i: str(resolved[i])):
        name, k = names[i], 2
        while name.casefold() in taken:
            name, k = f"{names[i]}_{k}", k + 1
        taken.add(name.casefold())
        final[i] = name
    return final


def prompt_filename(prompt: str) -> str:
    """``"a bowed string instrument"`` -> ``"a_bowed_string_instrument.wav"``."""
    name = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:80].strip("_")
    if not name:
        name = "prompt_" + hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"{name}.wav"


def output_paths(prompts: Sequence[str], out_dir: str | Path, residual: bool = False) -> list[Path]:
    """One ``<out_dir>/<slug>.wav`` per prompt, then ``<out_dir>/residual.wav`` with ``residual``.

    Two outputs with the same file name (two prompts, or a prompt "residual"
    beside the residual) are an error.
    """
    prompts = check_prompts(prompts)
    names = [prompt_filename(p) for p in prompts]
    seen: dict[str, str] = {}
    for p, n in zip(prompts, names):
        if n in seen:
            raise ValueError(f"prompts {seen[n]!r} and {p!r} would both be written to {n}; make them differ")
        seen[n] = p
    if residual:
        if RESIDUAL_FILE in seen:
            raise ValueError(
                f"prompt {seen[RESIDUAL_FILE]!r} would be written to {RESIDUAL_FILE}, the residual's "
                f"file; rephrase it or leave out the residual"
            )
        names.append(RESIDUAL_FILE)
    return [Path(out_dir) / n for n in names]


def write_outputs(estimates: Tensor, sample_rate: int, paths: Sequence[Path]) -> list[Path]:
    """Write (P, C, T) estimates as 32-bit float WAVs, all or none.

    Every file is first written beside its target under a temporary name; only
    when all are written are they renamed into place. A failure removes the
    temporary files (and the output folder, if this call created it).
    """
    paths = [Path(p) for p in paths]
    folders = sorted({p.parent for p in paths})
    created = [f for f in folders if not f.exists()]
    temps: list[Path] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for f in folders:
            f.mkdir(parents=True, exist_ok=True)
        for est, p in zip(estimates, paths):
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
            os.close(fd)
            temps.append(Path(tmp))
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs get the usual mode
            sf.write(tmp, est.T.numpy(), int(sample_rate), subtype="FLOAT", format="WAV")
        for tmp, p in zip(temps, paths):
            os.replace(tmp, p)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        for f in reversed(created):
            try:
                f.rmdir()
            except OSError:
                pass
        raise
    return paths
