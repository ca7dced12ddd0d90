"""A dataset as users have it on disk -> the study's manifests ``train.csv``, ``val.csv``, ``test.csv``.

Three public layouts are read, one module each: the dataset's own metadata
plus a folder of downloaded audio somewhere under the dataset root (any
depth; any extension soundfile reads: wav, flac, ogg, mp3, aiff ...). The
metadata files are looked for in the root and in its subfolders down to two
levels.

``music.py``
    MUSIC (Zhao et al., 2018): ``MUSIC_solo_videos.json`` /
    ``MUSIC21_solo_videos.json`` and ``<class>/<youtube id>.<ext>``; split
    by a hash of the video id (:func:`music_split`).
``vggsound.py``
    VGGSound (Chen et al., 2020): ``vggsound.csv`` and
    ``<youtube id>_<start>.<ext>``; val carved from train by a hash
    (:func:`vggsound_split`).
``audiocaps.py``
    AudioCaps (Kim et al., 2019): ``train.csv``, ``val.csv``, ``test.csv``
    and ``<youtube id>_<start_time>.<ext>``; one row per clip, its first caption.

What they share (file search, the audio index, bad-row bookkeeping, hash
splits) is ``common.py``; detecting the layout, matching rows to audio files,
the summary line and writing the manifests is ``prepare.py``.

Missing audio is the norm (a fifth of VGGSound's videos are gone): a clip the
metadata lists without an audio file is counted per split and left out, and
one summary line per dataset says what was kept and what was missing. A bad
row (empty label or caption, unparsable start time, unknown split, wrong
number of columns) or a corrupt audio file (soundfile cannot read its header,
checked with the cheap ``soundfile.info``, not by decoding) raises
``LayoutError`` naming the metadata file and line and the audio file, or with
``skip_bad=True`` is left out, counted in the summary and listed in a warning.
Silent clips are only found when the study loads the audio
(:func:`weaksep.data.load_manifest`).

Paths in the written manifests are relative to the manifest folder when that
folder lies inside the dataset root (dataset and manifests move together),
else absolute. ``prepare_data`` caches: a second call with unchanged metadata
and audio files (names, sizes, times) reads back its ``prepared.json``.
"""

from .common import MANIFEST_SPLITS, LayoutError, hash_fraction
from .music import MUSIC_DUET_FILE, MUSIC_SOLO_FILES, music_split
from .prepare import (
    DATASET_LAYOUTS,
    LAYOUTS,
    LayoutReport,
    detect_layout,
    prepare_data,
    prepare_layout,
    prepared_report,
)
from .vggsound import VGGSOUND_FILE, vggsound_split

__all__ = [
    "DATASET_LAYOUTS",
    "LAYOUTS",
    "MANIFEST_SPLITS",
    "MUSIC_DUET_FILE",
    "MUSIC_SOLO_FILES",
    "VGGSOUND_FILE",
    "LayoutError",
    "LayoutReport",
    "detect_layout",
    "hash_fraction",
    "music_split",
    "prepare_data",
    "prepare_layout",
    "prepared_report",
    "vggsound_split",
]
