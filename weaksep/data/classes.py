"""The classes of the two rendered corpora and how each one is played.

``INSTRUMENTS`` are the 11 classes of MUSIC (Zhao et al., 2018), each mapped to
a General-MIDI program (0-based, as tinysoundfont numbers presets) with a
register and a way of playing that the phrase generator in ``render.py`` uses.
``EVENTS`` are sound-event classes made from the General-MIDI sound-effect
programs (120-127), one melodic program and the percussion bank; they stand in
for AudioCaps in the caption-based setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CORPORA: tuple[str, ...] = ("instruments", "events")


@dataclass(frozen=True)
class Instrument:
    """How an instrument class is rendered.

    ``low``/``high`` bound the MIDI keys of its phrases; ``durations`` are note
    lengths in beats drawn with ``weights``; ``legato`` is the probability that
    a note is tied into the next one; ``vibrato`` is a pitch-bend vibrato depth
    in semitones (0: none); ``slide`` is the probability of a portamento into a
    note; ``style`` picks the phrase shape (``melody``, ``arpeggio``,
    ``melody_bass``, ``mallet``).
    """

    name: str
    program: int
    low: int
    high: int
    tempo: tuple[float, float]  # beats per minute
    durations: tuple[float, ...]  # beats
    weights: tuple[float, ...]
    legato: float
    velocity: tuple[int, int]
    style: str = "melody"
    vibrato: float = 0.0
    slide: float = 0.0


_SHORT = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)

INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        # Accordion: right-hand melody over sustained left-hand bass chords.
        Instrument("accordion", 21, 55, 84, (80, 140), _SHORT, (3, 4, 1, 3, 1, 1), 0.5, (70, 115), "melody_bass"),
        # Steel-string guitar: MUSIC's "acoustic guitar" videos are mostly
        # fingerpicked or strummed chords, so the phrases are arpeggios and strums.
        Instrument("acoustic guitar", 25, 40, 76, (70, 130), (0.25, 0.5, 1.0), (4, 4, 1), 0.0, (60, 115), "arpeggio"),
        Instrument("cello", 42, 36, 69, (60, 110), _SHORT, (1, 3, 1, 4, 2, 2), 0.6, (60, 110), "melody", vibrato=0.25),
        Instrument("clarinet", 71, 50, 86, (70, 130), _SHORT, (2, 4, 1, 3, 1, 1), 0.6, (60, 110)),
        # General MIDI has no erhu. Program 110 "Fiddle" is GM's folk bowed
        # string (its "ethnic" family, beside sitar, shamisen and koto) and a
        # preset distinct from program 40 "Violin" in every soundfont we use.
        # What makes an erhu recognisable - portamento slides between notes and
        # a wide vibrato, in the D4-A6 register - is added by the phrase
        # generator, so "erhu" and "violin" differ in sound and in playing.
        Instrument("erhu", 110, 62, 93, (55, 100), _SHORT, (1, 3, 1, 4, 2, 2), 0.7, (65, 110), vibrato=0.5, slide=0.45),
        Instrument("flute", 73, 60, 93, (70, 140), _SHORT, (3, 4, 1, 3, 1, 1), 0.5, (60, 110), vibrato=0.12),
        Instrument(
            "saxophone", 65, 49, 80, (70, 140), _SHORT, (3, 4, 2, 3, 1, 1), 0.6, (65, 115), vibrato=0.15, slide=0.1
        ),
        Instrument("trumpet", 56, 54, 82, (80, 140), _SHORT, (3, 4, 1, 3, 1, 1), 0.35, (70, 120)),
        Instrument("tuba", 58, 30, 58, (60, 110), (0.5, 1.0, 1.5, 2.0), (3, 4, 1, 2), 0.4, (70, 120)),
        Instrument("violin", 40, 55, 96, (60, 130), _SHORT, (2, 3, 1, 4, 2, 2), 0.6, (60, 115), vibrato=0.25),
        # Xylophone notes die in a fraction of a second: short notes, and long
        # values are played as a tremolo (repeated strikes) as players do.
        Instrument("xylophone", 13, 65, 96, (90, 160), (0.25, 0.5, 1.0, 2.0), (4, 4, 2, 1), 0.0, (70, 120), "mallet"),
    )
}


@dataclass(frozen=True)
class SoundEvent:
    """How a sound-event class is rendered.

    ``program`` is a General-MIDI program of the melodic bank, or ``None`` for
    the percussion bank (channel 10), where ``keys`` are drum keys; otherwise
    ``keys`` is the range of MIDI keys (pitches) it is played at. ``pattern``
    names the rhythm generator in ``render.py``.
    """

    name: str
    program: int | None
    keys: tuple[int, ...]
    pattern: str
    velocity: tuple[int, int] = (80, 120)


EVENTS: dict[str, SoundEvent] = {
    e.name: e
    for e in (
        SoundEvent("applause", 126, tuple(range(52, 72)), "sustained_swell"),
        SoundEvent("bell", 14, (60, 62, 64, 65, 67, 69, 71, 72), "strikes"),
        SoundEvent("bird", 123, tuple(range(66, 90)), "chirps"),
        SoundEvent("breathing", 121, tuple(range(55, 72)), "breaths"),
        SoundEvent("gunshot", 127, tuple(range(40, 64)), "shots"),
        # Hand clap (39) of the GM percussion map, with a second clapper a few
        # milliseconds late now and then.
        SoundEvent("hand clap", None, (39,), "claps"),
        SoundEvent("helicopter", 125, tuple(range(40, 64)), "sustained_swell"),
        # Hi and low wood block (76, 77): knocks come in quick groups.
        SoundEvent("knocking", None, (76, 77), "knocks"),
        SoundEvent("telephone", 124, tuple(range(55, 68)), "rings"),
        SoundEvent("waves", 122, tuple(range(40, 64)), "waves"),
    )
}

CLASS_TABLES: dict[str, dict] = {"instruments": INSTRUMENTS, "events": EVENTS}


def corpus_classes(corpus: str) -> list[str]:
    """Sorted class names of ``corpus`` ("instruments" or "events")."""
    if corpus not in CLASS_TABLES:
        raise ValueError(f"unknown corpus {corpus!r}; expected one of {list(CORPORA)}")
    return sorted(CLASS_TABLES[corpus])


def slug(label: str) -> str:
    """File-system name of a class: ``"acoustic guitar"`` -> ``"acoustic_guitar"``."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
