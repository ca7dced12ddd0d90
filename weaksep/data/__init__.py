"""Data of the study: rendered corpora, captions, mixtures and real-dataset manifests.

``render_corpus``/``load_clips`` give single-source clips of the rendered
``instruments`` (MUSIC's 11 classes) and ``events`` corpora; ``build_mixtures``,
``load_or_build_testset`` and ``MixtureSampler`` make mixtures of them;
``load_manifest`` reads a user's own dataset; ``prepare_data`` writes manifests
for a MUSIC, VGGSound or AudioCaps download (``detect_layout`` tells which) and
``write_fixture`` a tiny dataset in one of those layouts. ``python -m
weaksep.data render|prepare|fixture`` does these from the command line.
"""

from .captions import caption_entities, caption_for, parse_caption, phrase_class
from .classes import CORPORA, EVENTS, INSTRUMENTS, corpus_classes, slug
from .corpus import SPLITS, ClipSet, clip_rows, corpus_dir, load_clips, render_corpus
from .fixtures import FixtureRecord, read_fixture_record, write_fixture
from .layouts import (
    LayoutError,
    LayoutReport,
    detect_layout,
    music_split,
    prepare_data,
    prepare_layout,
    vggsound_split,
)
from .manifest import ManifestClips, ManifestError, load_audio, load_manifest
from .mixtures import (
    MixBatch,
    Mixture,
    MixtureSampler,
    build_mixtures,
    labelled_subset,
    load_or_build_testset,
    mixture_text,
)
from .render import ClipRenderer, make_score, render_clip
from .soundfonts import available_soundfonts, find_soundfont

__all__ = [
    "CORPORA",
    "SPLITS",
    "EVENTS",
    "INSTRUMENTS",
    "ClipSet",
    "Mixture",
    "MixBatch",
    "MixtureSampler",
    "ManifestClips",
    "ManifestError",
    "ClipRenderer",
    "available_soundfonts",
    "build_mixtures",
    "caption_entities",
    "caption_for",
    "clip_rows",
    "corpus_classes",
    "corpus_dir",
    "find_soundfont",
    "labelled_subset",
    "load_audio",
    "load_clips",
    "load_manifest",
    "load_or_build_testset",
    "make_score",
    "mixture_text",
    "parse_caption",
    "phrase_class",
    "render_clip",
    "render_corpus",
    "slug",
    "FixtureRecord",
    "LayoutError",
    "LayoutReport",
    "detect_layout",
    "music_split",
    "prepare_data",
    "prepare_layout",
    "read_fixture_record",
    "vggsound_split",
    "write_fixture",
]
