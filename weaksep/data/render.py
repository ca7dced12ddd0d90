"""Render one clip: a generated phrase (or event pattern) played by tinysoundfont.

A clip is a list of timed MIDI events made by a generator seeded from the clip's
seed, played by tinysoundfont at ``render_rate`` (a multiple of the study's
rate, >= 40 kHz, so that the synthesiser's own interpolation aliasing stays far
above the band we keep), mixed to mono, resampled to the study's rate with
torchaudio, high-passed (TimGM6mb's saxophone samples carry a DC offset) and
normalised to a fixed RMS. The same seed always gives the same samples.

The phrase and event-pattern generators are many small functions that only
:func:`make_score` calls, so they live here beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from .classes import EVENTS, INSTRUMENTS, Instrument, SoundEvent

RENDER_VERSION = 1  # bump when the generators change: cached corpora re-render
TARGET_RMS = 0.1  # -20 dBFS: leaves headroom for PCM_16 and for mixing
PEAK_LIMIT = 0.99
HIGHPASS_HZ = 30.0  # below the lowest tuba note (~46 Hz), removes DC offsets
MELODIC_CHANNEL = 0
DRUM_CHANNEL = 9  # General-MIDI percussion channel (channel 10)

# (time s, order, op, args): ``order`` puts note-offs before note-ons at the
# same instant so that a repeated key is released and struck again.
Event = tuple[float, int, str, tuple[int, ...]]


@dataclass
class Score:
    """Timed MIDI events of one clip; times in seconds from the clip start
    (negative times are a pre-roll, rendered and discarded)."""

    events: list[Event]
    program: int | None  # melodic GM program, None for percussion
    bend_range: float = 2.0  # semitones of the pitch wheel

    @property
    def start(self) -> float:
        return min([0.0] + [e[0] for e in self.events])


def clip_seed(*parts: object) -> int:
    """A 63-bit seed from the identity of a clip, e.g. ``(0, "instruments", "train", "violin", 3)``.

    Hashing the whole identity (not adding integers) keeps seeds of different
    splits, classes and namespaces apart.
    """
    key = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


# ---------------------------------------------------------------- instruments

_SCALES: tuple[tuple[int, ...], ...] = (
    (0, 2, 4, 5, 7, 9, 11),  # major
    (0, 2, 3, 5, 7, 8, 10),  # natural minor
    (0, 2, 3, 5, 7, 9, 10),  # dorian
    (0, 2, 4, 5, 7, 9, 10),  # mixolydian
    (0, 2, 3, 5, 7, 8, 11),  # harmonic minor
    (0, 2, 4, 7, 9),  # major pentatonic
)
_STEPS = np.array([-4, -3, -2, -1, 0, 1, 2, 3, 4])
_STEP_P = np.array([0.03, 0.06, 0.17, 0.22, 0.04, 0.22, 0.17, 0.06, 0.03])


def _scale_keys(rng: np.random.Generator, low: int, high: int) -> tuple[list[int], int]:
    root = int(rng.integers(12))
    scale = _SCALES[int(rng.integers(len(_SCALES)))]
    keys = [k for k in range(low, high + 1) if (k - root) % 12 in scale]
    return keys, root


def _velocity(rng: np.random.Generator, lo: int, hi: int, level: float) -> int:
    """A velocity around a phrase level in [0, 1] (a slow dynamic contour)."""
    v = lo + (hi - lo) * level + rng.normal(0, 6)
    return int(np.clip(round(v), 1, 127))


def _melody(
    inst: Instrument,
    seconds: float,
    rng: np.random.Generator,
    t0: float,
    low: int | None = None,
    high: int | None = None,
) -> list[tuple[float, float, int, int]]:
    """Notes ``(on, off, key, velocity)`` of a monophonic line filling ``seconds``."""
    keys, _ = _scale_keys(rng, inst.low if low is None else low, inst.high if high is None else high)
    bpm = rng.uniform(*inst.tempo)
    beat = 60.0 / bpm
    pos = int(rng.integers(len(keys) // 4, max(len(keys) * 3 // 4, len(keys) // 4 + 1)))
    weights = np.asarray(inst.weights, float) / sum(inst.weights)
    level, t = rng.uniform(0.3, 0.8), t0
    onsets: list[tuple[float, int, int]] = []
    while t < seconds:
        pos = pos + int(rng.choice(_STEPS, p=_STEP_P))
        if pos < 0 or pos >= len(keys):  # reflect at the edges of the register
            pos = int(np.clip(-pos if pos < 0 else 2 * (len(keys) - 1) - pos, 0, len(keys) - 1))
        level = float(np.clip(level + rng.normal(0, 0.08), 0.0, 1.0))
        onsets.append((t, keys[pos], _velocity(rng, *inst.velocity, level)))
        t += float(rng.choice(inst.durations, p=weights)) * beat
        if rng.random() < 0.12:  # a short breath between phrases, never long
            t += min(float(rng.choice([0.25, 0.5])) * beat, 0.25)
    notes = []
    for i, (on, key, vel) in enumerate(onsets):
        nxt = onsets[i + 1] if i + 1 < len(onsets) else None
        if nxt is None:
            off = seconds + 0.5
        elif rng.random() < inst.legato and nxt[1] != key:
            off = nxt[0] + 0.03  # tied: the next note starts before this one ends
        else:
            off = on + (nxt[0] - on) * rng.uniform(0.6, 0.92)
        notes.append((on, off, key, vel))
    return notes


def _with_bass(inst: Instrument, seconds: float, rng: np.random.Generator, t0: float):
    """Melody plus a sustained bass chord every bar (an accordion's left hand)."""
    notes = _melody(inst, seconds, rng, t0)
    keys, _ = _scale_keys(rng, 43, 62)
    bar = 4 * 60.0 / rng.uniform(*inst.tempo)
    t = t0
    while t < seconds:
        d = int(rng.integers(0, max(1, len(keys) - 4)))
        vel = int(rng.integers(45, 80))
        for k in (keys[d], keys[min(d + 2, len(keys) - 1)], keys[min(d + 4, len(keys) - 1)]):
            notes.append((t, t + bar * 0.95, k, vel))
        t += bar
    return notes


def _arpeggio(inst: Instrument, seconds: float, rng: np.random.Generator, t0: float):
    """Guitar: a chord per bar, fingerpicked (notes ring to the bar's end) or strummed."""
    keys, _ = _scale_keys(rng, inst.low, inst.high)
    beat = 60.0 / rng.uniform(*inst.tempo)
    pattern = [int(i) for i in rng.permutation(4)] + [int(i) for i in rng.integers(0, 5, 4)]
    strum = rng.random() < 0.35
    notes, t = [], t0
    while t < seconds:
        d = int(rng.integers(0, max(1, len(keys) - 9)))
        voicing = [keys[min(d + s, len(keys) - 1)] for s in (0, 2, 4, 7, 9)]
        bar_end = t + 4 * beat
        if strum:
            for b, vel in ((0.0, 105), (1.0, 80), (1.5, 85), (2.5, 80), (3.0, 95)):
                onset = t + b * beat
                direction = voicing if rng.random() < 0.7 else voicing[::-1]
                for j, k in enumerate(direction):
                    on = onset + j * rng.uniform(0.008, 0.025)
                    notes.append(
                        (on, onset + beat * rng.uniform(0.5, 1.0), k, _velocity(rng, *inst.velocity, vel / 127))
                    )
        else:
            for j in range(8):
                on = t + j * 0.5 * beat
                notes.append(
                    (
                        on,
                        bar_end + 0.05,
                        voicing[pattern[j] % len(voicing)],
                        _velocity(rng, *inst.velocity, rng.uniform(0.4, 0.9)),
                    )
                )
        t = bar_end
    return notes


def _mallet(inst: Instrument, seconds: float, rng: np.random.Generator, t0: float):
    """Xylophone: struck notes; long values become a tremolo of repeated strikes."""
    notes = []
    for on, off, key, vel in _melody(inst, seconds, rng, t0):
        if off - on > 0.3 and rng.random() < 0.6:
            step = rng.uniform(0.055, 0.09)
            t = on
            while t < off:
                notes.append((t, t + 0.2, key, int(np.clip(vel + rng.integers(-12, 6), 1, 127))))
                t += step
        else:
            notes.append((on, on + 0.25, key, vel))
    return notes


def _expression_bends(
    inst: Instrument, notes, seconds: float, rng: np.random.Generator, bend_range: float
) -> list[Event]:
    """Pitch-wheel events every 10 ms: vibrato and portamento slides (in semitones)."""
    if inst.vibrato <= 0 and inst.slide <= 0:
        return []
    onsets = sorted(notes)
    starts = np.array([n[0] for n in onsets])
    slides = []
    for i in range(1, len(onsets)):
        if rng.random() < inst.slide:
            delta = float(np.clip(onsets[i - 1][2] - onsets[i][2], -bend_range, bend_range))
            slides.append((onsets[i][0], rng.uniform(0.06, 0.14), delta))
    rate, phase = rng.uniform(4.8, 6.5), rng.uniform(0, 2 * math.pi)
    t = np.arange(min(0.0, starts[0]), seconds, 0.01)
    current = starts[np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)]
    ramp = np.clip((t - current - 0.12) / 0.25, 0.0, 1.0)  # vibrato grows into a held note
    bend = inst.vibrato * ramp * np.sin(2 * math.pi * rate * t + phase)
    for on, glide, delta in slides:
        inside = (t >= on) & (t < on + glide)
        bend[inside] += delta * (1.0 - (t[inside] - on) / glide)
    values = np.clip(8192 + np.round(bend / bend_range * 8191), 0, 16383).astype(int)
    changed = np.flatnonzero(np.diff(values, prepend=-1) != 0)
    events = [(float(t[i]), 0, "bend", (MELODIC_CHANNEL, int(values[i]))) for i in changed]
    return events


def instrument_score(inst: Instrument, seconds: float, rng: np.random.Generator) -> Score:
    """The phrase of one instrument clip lasting ``seconds``."""
    t0 = rng.uniform(0.0, 0.03)
    if inst.style == "melody_bass":
        notes = _with_bass(inst, seconds, rng, t0)
    elif inst.style == "arpeggio":
        notes = _arpeggio(inst, seconds, rng, t0)
    elif inst.style == "mallet":
        notes = _mallet(inst, seconds, rng, t0)
    else:
        notes = _melody(inst, seconds, rng, t0)
    bend_range = 4.0 if inst.slide > 0 else 2.0
    events = _notes_to_events(notes, MELODIC_CHANNEL)
    events += _expression_bends(inst, notes, seconds, rng, bend_range)
    return Score(sorted(events), inst.program, bend_range)


def _notes_to_events(notes, channel: int) -> list[Event]:
    events: list[Event] = []
    for on, off, key, vel in notes:
        events.append((float(on), 2, "on", (channel, int(key), int(vel))))
        events.append((float(max(off, on + 0.02)), 1, "off", (channel, int(key))))
    return events


# ---------------------------------------------------------------- sound events


def _event_notes(ev: SoundEvent, seconds: float, rng: np.random.Generator) -> tuple[list, list[Event]]:
    """Notes ``(on, off, key, velocity)`` and extra controller events of one event clip."""
    keys = ev.keys
    key = int(rng.choice(keys))
    lo, hi = ev.velocity
    vel = lambda: int(rng.integers(lo, hi + 1))  # noqa: E731
    notes, extra = [], []
    p = ev.pattern
    if p == "sustained_swell":
        # Helicopter and applause presets fade in over seconds: start before the
        # clip (a pre-roll) and re-strike now and then so the texture changes.
        t = -rng.uniform(1.5, 3.0)
        while t < seconds:
            length = rng.uniform(1.5, 4.0)
            notes.append((t, t + length + 0.6, int(rng.choice(keys)), vel()))
            t += length
        # A slow swell of the expression controller: something passing by.
        rate, phase, depth = rng.uniform(0.15, 0.6), rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.4)
        for t in np.arange(notes[0][0], seconds, 0.05):
            value = int(127 * (1 - depth + depth * math.sin(2 * math.pi * rate * t + phase)))
            extra.append((float(t), 0, "cc", (MELODIC_CHANNEL, 11, value)))
    elif p == "waves":
        t = -rng.uniform(0.5, 1.5)
        while t < seconds:
            length = rng.uniform(1.2, 2.8)
            notes.append((t, t + length, int(rng.choice(keys)), vel()))
            t += length * rng.uniform(0.45, 0.8)  # waves overlap
    elif p == "strikes":
        t = rng.uniform(0, 0.05)
        while t < seconds:
            notes.append((t, t + 1.5, int(rng.choice(keys)), vel()))
            t += rng.uniform(0.3, 0.9)
    elif p == "chirps":
        t = rng.uniform(0, 0.05)
        while t < seconds:
            base = int(rng.choice(keys))
            # Some bird presets are a single 0.1 s tweet: chirps come in quick trills.
            for _ in range(int(rng.integers(3, 8))):
                notes.append((t, t + rng.uniform(0.05, 0.15), int(np.clip(base + rng.integers(-3, 4), 0, 127)), vel()))
                t += rng.uniform(0.04, 0.1)
            t += rng.uniform(0.03, 0.15)
    elif p == "breaths":
        t = rng.uniform(0, 0.05)
        inhale = True
        while t < seconds:
            k = key + (3 if inhale else -2)
            for _ in range(int(rng.integers(3, 6))):  # one breath = overlapping puffs
                notes.append((t, t + 0.25, int(k + rng.integers(-1, 2)), vel()))
                t += rng.uniform(0.06, 0.11)
            t += rng.uniform(0.05, 0.2)
            inhale = not inhale
    elif p == "shots":
        t = rng.uniform(0, 0.05)
        while t < seconds:
            if rng.random() < 0.35:  # a burst of automatic fire
                for _ in range(int(rng.integers(3, 7))):
                    notes.append((t, t + 0.3, int(rng.choice(keys)), vel()))
                    t += rng.uniform(0.07, 0.14)
            else:
                notes.append((t, t + 0.4, int(rng.choice(keys)), vel()))
            t += rng.uniform(0.2, 0.6)
    elif p == "claps":
        # A clap lasts ~0.1 s: clap on eighths (some left out) at a lively
        # tempo, often with a second clapper a little late, so that the clip
        # is a rhythm and not mostly silence.
        beat = 60.0 / rng.uniform(100, 170)
        grid = [g for g in np.arange(0.0, 4.0, 0.5) if g in (0.0, 2.0) or rng.random() < 0.8]
        second_clapper = rng.random() < 0.7
        bar, t0 = 0, rng.uniform(0, 0.05)
        while t0 + bar * 4 * beat < seconds:
            for g in grid:
                on = t0 + (bar * 4 + g) * beat + rng.normal(0, 0.006)
                notes.append((max(on, 0.0), max(on, 0.0) + 0.1, keys[0], vel()))
                if second_clapper:
                    on2 = on + rng.uniform(0.005, 0.025)
                    notes.append((on2, on2 + 0.1, keys[0], max(1, vel() - 25)))
            bar += 1
    elif p == "knocks":
        t = rng.uniform(0, 0.05)
        while t < seconds:
            k = int(rng.choice(keys))
            for _ in range(int(rng.integers(2, 5))):
                notes.append((t, t + 0.1, k, vel()))
                t += rng.uniform(0.08, 0.14)
            t += rng.uniform(0.08, 0.3)
    elif p == "rings":
        t = rng.uniform(0, 0.05)
        while t < seconds:
            ring_end = t + rng.uniform(0.6, 1.2)
            while t < ring_end:  # some telephone presets are one short burst: re-strike
                notes.append((t, t + 0.2, key, vel()))
                t += rng.uniform(0.08, 0.14)
            t += rng.uniform(0.12, 0.3)
    else:
        raise ValueError(f"unknown event pattern {p!r} of class {ev.name!r}")
    return notes, extra


def event_score(ev: SoundEvent, seconds: float, rng: np.random.Generator) -> Score:
    """The event pattern of one sound-event clip lasting ``seconds``."""
    notes, extra = _event_notes(ev, seconds, rng)
    channel = DRUM_CHANNEL if ev.program is None else MELODIC_CHANNEL
    return Score(sorted(_notes_to_events(notes, channel) + extra), ev.program)


def make_score(corpus: str, label: str, seconds: float, seed: int) -> Score:
    """The score of clip ``label`` of ``corpus`` from its ``seed`` (a pure function)."""
    rng = np.random.default_rng(seed)
    if corpus == "instruments":
        if label not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {label!r}; expected one of {sorted(INSTRUMENTS)}")
        return instrument_score(INSTRUMENTS[label], seconds, rng)
    if corpus == "events":
        if label not in EVENTS:
            raise ValueError(f"unknown sound event {label!r}; expected one of {sorted(EVENTS)}")
        return event_score(EVENTS[label], seconds, rng)
    raise ValueError(f"unknown corpus {corpus!r}; expected 'instruments' or 'events'")


# ---------------------------------------------------------------- synthesis


def render_rate_for(sample_rate: int) -> int:
    """The synthesiser's rate: the smallest multiple of ``sample_rate`` >= 40 kHz."""
    return sample_rate * max(1, math.ceil(40000 / sample_rate))


class ClipRenderer:
    """Plays scores with one soundfont; one synthesiser is reused across clips.

    Loading a soundfont can take seconds (the .sf3 ones decode Vorbis), so the
    synthesiser lives as long as the renderer; before each clip every voice is
    silenced and drained and every controller we use is reset, so a clip's
    samples do not depend on the clips rendered before it (tested).
    """

    def __init__(self, soundfont: str | Path, sample_rate: int):
        import tinysoundfont  # imported here: only rendering needs it

        self.soundfont = Path(soundfont)
        self.sample_rate = int(sample_rate)
        self.render_rate = render_rate_for(self.sample_rate)
        self._synth = tinysoundfont.Synth(samplerate=self.render_rate)
        try:
            self._sfid = self._synth.sfload(str(self.soundfont))
        except Exception as e:
            raise RuntimeError(f"tinysoundfont cannot load soundfont {self.soundfont}: {e}") from e

    def _reset(self, score: Score) -> int:
        s = self._synth
        s.sounds_off()
        for _ in range(64):  # a voice ended by "all sounds off" fades within a few ms
            if not any(s.generate(1024)):
                break
        if score.program is None:
            s.program_select(DRUM_CHANNEL, self._sfid, 128, 0, True)
            channel = DRUM_CHANNEL
        else:
            try:
                s.program_select(MELODIC_CHANNEL, self._sfid, 0, score.program)
            except RuntimeError as e:
                raise RuntimeError(f"soundfont {self.soundfont} has no preset for GM program {score.program}") from e
            channel = MELODIC_CHANNEL
        s.pitchbend_range(channel, score.bend_range)
        s.pitchbend(channel, 8192)
        s.control_change(channel, 7, 100)  # volume
        s.control_change(channel, 10, 64)  # pan centre
        s.control_change(channel, 11, 127)  # expression
        return channel

    def play(self, score: Score, n_samples: int) -> np.ndarray:
        """Raw mono samples ``(n_samples,)`` float32 at ``render_rate`` from time 0."""
        self._reset(score)
        s = self._synth
        start = score.start  # <= 0: the pre-roll
        total = n_samples + int(round(-start * self.render_rate))
        out = np.zeros((total, 2), np.float32)
        pos = 0
        for time, _, op, args in score.events:
            idx = min(total, int(round((time - start) * self.render_rate)))
            if idx > pos:
                out[pos:idx] = np.frombuffer(s.generate(idx - pos), np.float32).reshape(-1, 2)
                pos = idx
            if pos >= total:
                break
            if op == "on":
                s.noteon(*args)
            elif op == "off":
                s.noteoff(*args)
            elif op == "bend":
                s.pitchbend(*args)
            elif op == "cc":
                s.control_change(*args)
        if pos < total:
            out[pos:] = np.frombuffer(s.generate(total - pos), np.float32).reshape(-1, 2)
        return out[total - n_samples :].mean(axis=1)

    def render(self, score: Score, n_samples: int) -> torch.Tensor:
        """The finished clip: ``(n_samples,)`` float32 at ``sample_rate``, RMS ``TARGET_RMS``."""
        factor = self.render_rate // self.sample_rate
        # Render a little past the end so the resampler's filter has real signal.
        raw = torch.from_numpy(self.play(score, (n_samples + 64) * factor))
        with single_thread():
            audio = AF.resample(raw, self.render_rate, self.sample_rate)[:n_samples]
            return finish_clip(audio, self.sample_rate, what=f"clip of {self.soundfont.name}")


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: for one clip's small convolutions the thread
    pool's start-up costs ~10x the work itself (measured on a 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def finish_clip(audio: torch.Tensor, sample_rate: int, what: str = "clip") -> torch.Tensor:
    """High-pass at ``HIGHPASS_HZ`` and normalise ``(T,)`` audio to ``TARGET_RMS``
    (scaled down further if a peak would exceed ``PEAK_LIMIT``)."""
    audio = AF.highpass_biquad(audio, sample_rate, HIGHPASS_HZ)
    rms = float(audio.pow(2).mean().sqrt())
    if not math.isfinite(rms) or rms < 1e-6:
        raise RuntimeError(f"{what} is silent (RMS {rms:.2e}); the generator produced no audible note")
    gain = min(TARGET_RMS / rms, PEAK_LIMIT / float(audio.abs().max()))
    return (audio * gain).to(torch.float32)


def render_clip(
    soundfont: str | Path, corpus: str, label: str, seed: int, sample_rate: int, n_samples: int
) -> torch.Tensor:
    """One clip ``(n_samples,)`` float32 at ``sample_rate`` (loads the soundfont each call;
    use ``ClipRenderer`` to render many)."""
    score = make_score(corpus, label, n_samples / sample_rate, seed)
    return ClipRenderer(soundfont, sample_rate).render(score, n_samples)
