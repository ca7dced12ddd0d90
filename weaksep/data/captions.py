"""Captions of sound-event mixtures and the rule-based parser that takes them apart.

The caption-based setting of the paper (AudioCaps) trains on natural-language
captions and extracts the entities by splitting on phrases such as "followed
by", " and ", ", ", " while ". Here ``caption_for`` writes a caption of a
mixture of sound events from varied templates and per-class phrases, e.g.
"A bird tweets while a telephone rings" or "Applause followed by a gunshot and
waves", and ``parse_caption`` / ``caption_entities`` recover the entities.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .classes import EVENTS

# Per class: clauses ("a bird tweets") fit after "while"/"as"/"and"; noun
# phrases ("birds chirping") fit after "followed by"/"with". No phrase may
# contain a connector word, or the parser would split it.
CLAUSES: dict[str, tuple[str, ...]] = {
    "applause": ("an audience applauds", "a crowd applauds", "people applaud loudly"),
    "bell": ("a bell rings", "church bells chime", "a bell tolls"),
    "bird": ("a bird tweets", "birds chirp", "a bird is singing", "small birds are chirping"),
    "breathing": ("someone breathes heavily", "a person is breathing", "a man breathes deeply"),
    "gunshot": ("a gun fires", "a gunshot rings out", "shots are fired"),
    "hand clap": ("someone claps their hands", "hands clap in rhythm", "a person claps"),
    "helicopter": ("a helicopter flies overhead", "a helicopter hovers", "helicopter blades whir"),
    "knocking": ("someone knocks on a door", "a person knocks on wood", "somebody is knocking"),
    "telephone": ("a telephone rings", "a phone is ringing", "an old telephone rings"),
    "waves": ("waves crash on the shore", "the sea washes onto the beach", "ocean waves roll in"),
}
NOUN_PHRASES: dict[str, tuple[str, ...]] = {
    "applause": ("applause", "loud applause", "a crowd applauding", "an audience applauding"),
    "bell": ("a bell ringing", "bells chiming", "the toll of a bell"),
    "bird": ("birds chirping", "a bird tweeting", "birdsong", "chirping birds"),
    "breathing": ("heavy breathing", "someone breathing", "deep breaths"),
    "gunshot": ("a gunshot", "gunfire", "several gunshots", "a gun firing"),
    "hand clap": ("hand claps", "rhythmic clapping", "someone clapping"),
    "helicopter": ("a helicopter flying overhead", "the whir of helicopter blades", "a hovering helicopter"),
    "knocking": ("knocking", "a knock on the door", "someone knocking on a door"),
    "telephone": ("a telephone ringing", "a ringing phone", "the ring of a telephone"),
    "waves": ("waves crashing", "ocean waves", "waves breaking on the shore", "the surf"),
}
# Words that name a class inside a phrase (first match in a phrase wins).
KEYWORDS: dict[str, tuple[str, ...]] = {
    "applause": ("applause", "applaud", "applauds", "applauding", "audience", "crowd"),
    "bell": ("bell", "bells", "chime", "chimes", "chiming", "toll", "tolls"),
    "bird": ("bird", "birds", "birdsong", "chirp", "chirps", "chirping", "tweet", "tweets", "tweeting"),
    "breathing": ("breath", "breaths", "breathe", "breathes", "breathing"),
    "gunshot": ("gun", "guns", "gunshot", "gunshots", "gunfire", "shot", "shots"),
    "hand clap": ("clap", "claps", "clapping", "handclap", "handclaps"),
    "helicopter": ("helicopter", "helicopters", "chopper"),
    "knocking": ("knock", "knocks", "knocking", "knocked"),
    "telephone": ("telephone", "telephones", "phone", "phones"),
    "waves": ("wave", "waves", "sea", "ocean", "surf", "shore", "beach", "seashore"),
}

# Connectors between consecutive phrases: (text, form of the phrase after it).
# Lists read "a, b and c": mostly commas inside, a word connector before the last.
_INNER: tuple[tuple[str, str], ...] = (
    (", ", "any"),
    (", ", "any"),
    (", ", "any"),
    (" and ", "any"),
    (" followed by ", "noun"),
    (" while ", "clause"),
    (" with ", "noun"),
    (" as ", "clause"),
)
_LAST: tuple[tuple[str, str], ...] = (
    (" and ", "any"),
    (" and ", "any"),
    (", and ", "any"),
    (" followed by ", "noun"),
    (" while ", "clause"),
    (", then ", "any"),
    (" then ", "clause"),
    (" as ", "clause"),
    (" with ", "noun"),
    (" along with ", "noun"),
    (" and then ", "clause"),
    (" over ", "noun"),
)
_PAIR: tuple[tuple[str, str], ...] = _LAST + ((", ", "any"),)
# Splitting pattern of the parser: longest connectors first; word boundaries so
# that "overhead" or "ashore" are not split.
_SPLIT = re.compile(
    r"\s*(?:,\s*and\s+then|,\s*and|,\s*then|,|;|\.(?=\s|$)|\band\s+then\b|\bfollowed\s+by\b|"
    r"\balong\s+with\b|\btogether\s+with\b|\baccompanied\s+by\b|\bin\s+the\s+background\s+of\b|"
    r"\bwhile\b|\bwhilst\b|\bthen\b|\bas\b|\bwith\b|\band\b|\bover\b|\bbefore\b|\bafter\b)\s*",
    re.IGNORECASE,
)
# Words that are not part of an entity: a leading connector word, and where the
# sound is, at either end ("In the distance, a dog barks" is one entity).
_PLACE = r"(?:in the background|in the distance|nearby)"
_FILLER = re.compile(rf"^(?:and|then|also|meanwhile)\s+|^{_PLACE}(?:\s+|$)|\s+{_PLACE}$", re.IGNORECASE)

Rng = np.random.Generator | torch.Generator | random.Random


def _randint(rng: Rng, n: int) -> int:
    """An integer in [0, n) from any of the generators the project uses."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    if isinstance(rng, torch.Generator):
        return int(torch.randint(n, (1,), generator=rng))
    return rng.randrange(n)


def _pick(rng: Rng, options: Sequence):
    return options[_randint(rng, len(options))]


def caption_for(labels: Sequence[str], rng: Rng) -> str:
    """A natural caption naming the sound events ``labels`` in order.

    ``rng`` is a numpy ``Generator``, a ``torch.Generator`` or ``random.Random``.
    Each class has several phrasings and the connectors vary, e.g.
    ``["bird", "telephone"]`` -> "A bird tweets while a telephone rings".
    """
    unknown = [lab for lab in labels if lab not in CLAUSES]
    if unknown or not labels:
        raise ValueError(f"caption_for needs 1+ sound-event labels from {sorted(CLAUSES)}, got {list(labels)}")
    parts: list[str] = []
    used: set[str] = set()
    for i, lab in enumerate(labels):
        if i == 0:
            form = "clause" if _randint(rng, 2) else "noun"
        else:
            options = _PAIR if len(labels) == 2 else _LAST if i == len(labels) - 1 else _INNER
            for _ in range(8):  # a word connector once per caption ("a and b and c" reads badly)
                text, form = _pick(rng, options)
                if text == ", " or text.strip(", ") not in used:
                    break
            used.add(text.strip(", "))
            parts.append(text)
        table = CLAUSES if form == "clause" or (form == "any" and _randint(rng, 2)) else NOUN_PHRASES
        parts.append(_pick(rng, table[lab]))
    caption = "".join(parts)
    caption = caption[0].upper() + caption[1:]
    return caption + ("." if _randint(rng, 3) == 0 else "")


def parse_caption(caption: str) -> list[str]:
    """Entity phrases of a caption, split on "followed by", " and ", ", ", " while ", ...

    E.g. "A bird tweets while a telephone rings." -> ["a bird tweets", "a
    telephone rings"]. Lower-cased, in caption order, fillers such as "in the
    background" removed at either end of a phrase (a phrase that is only a
    filler is dropped); an empty caption raises ``ValueError``.
    """
    if not caption or not caption.strip():
        raise ValueError("cannot parse an empty caption")
    phrases = []
    for part in _SPLIT.split(caption.strip()):
        part = part.strip(" \t\n.,;:!?").lower()
        prev = None
        while part and part != prev:
            prev, part = part, _FILLER.sub("", part).strip()
        if part:
            phrases.append(part)
    return phrases


def phrase_class(phrase: str) -> str | None:
    """The event class a phrase names (``None`` if none), by its first class keyword."""
    for word in re.findall(r"[a-z]+", phrase.lower()):
        for label, words in KEYWORDS.items():
            if word in words:
                return label
    return None


def caption_entities(caption: str, strict: bool = True) -> list[str]:
    """Class names of the entities of a caption, in caption order, e.g.
    "Applause followed by a gunshot and waves" -> ["applause", "gunshot", "waves"].

    A phrase that names no known class raises ``ValueError`` (with the phrase and
    caption) when ``strict``, else it is left out.
    """
    out = []
    for phrase in parse_caption(caption):
        label = phrase_class(phrase)
        if label is None:
            if strict:
                raise ValueError(
                    f"phrase {phrase!r} of caption {caption!r} names none of the classes {sorted(KEYWORDS)}"
                )
            continue
        out.append(label)
    return out


_ARTICLE = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s'-]")


def normalise_phrase(phrase: str) -> str:
    """A phrase as compared by :func:`parser_accuracy`: lower-cased, punctuation other
    than apostrophes and hyphens dropped, the articles "a", "an", "the" dropped and
    whitespace collapsed, e.g. "A loud, high-pitched  alarm." -> "loud high-pitched alarm"."""
    text = _ARTICLE.sub(" ", _PUNCTUATION.sub(" ", phrase.lower()))
    return " ".join(text.split())


def parser_accuracy(captions: Sequence[str], gold: Sequence[list[str]]) -> dict:
    """How well :func:`parse_caption` splits ``captions`` into the ``gold`` entity phrases.

    Returns ``n_captions``; ``count_accuracy``, the share of captions split into as
    many phrases as gold entities; ``exact_accuracy``, the share whose phrases equal
    the gold phrases in order after :func:`normalise_phrase`; and ``failures``, one
    ``(caption, parsed, gold)`` per caption that is not exact.
    """
    if len(captions) != len(gold):
        raise ValueError(
            f"parser_accuracy needs one gold list per caption, got {len(captions)} captions and {len(gold)} gold lists"
        )
    if not captions:
        raise ValueError("parser_accuracy needs at least one caption")
    counts = exact = 0
    failures = []
    for caption, entities in zip(captions, gold):
        parsed = parse_caption(caption)
        counts += len(parsed) == len(entities)
        if [normalise_phrase(p) for p in parsed] == [normalise_phrase(e) for e in entities]:
            exact += 1
        else:
            failures.append((caption, parsed, list(entities)))
    n = len(captions)
    return {"n_captions": n, "count_accuracy": counts / n, "exact_accuracy": exact / n, "failures": failures}


def template_accuracy(n_captions: int = 500, seed: int = 0, n_events: Sequence[int] = (1, 2, 3, 4)) -> dict:
    """The parser's accuracy on the captions :func:`caption_for` writes.

    Caption ``i`` names ``n_events[i % len(n_events)]`` distinct classes of
    ``EVENTS`` drawn at random (numpy ``default_rng(seed)``). Returns
    ``n_captions``; ``count_accuracy``, the share whose :func:`caption_entities`
    has as many entries as labels; ``exact_accuracy``, the share where it equals
    the labels in order; and ``failures``, ``(caption, entities, labels)`` of the rest.
    """
    labels_all = sorted(EVENTS)
    if n_captions < 1 or not n_events or not all(1 <= n <= len(labels_all) for n in n_events):
        raise ValueError(
            f"template_accuracy needs n_captions >= 1 and event counts in 1..{len(labels_all)}, "
            f"got n_captions={n_captions}, n_events={tuple(n_events)}"
        )
    rng = np.random.default_rng(seed)
    counts = exact = 0
    failures = []
    for i in range(n_captions):
        n = n_events[i % len(n_events)]
        labels = [labels_all[j] for j in rng.choice(len(labels_all), n, replace=False)]
        caption = caption_for(labels, rng)
        entities = caption_entities(caption, strict=False)
        counts += len(parse_caption(caption)) == n
        if entities == labels:
            exact += 1
        else:
            failures.append((caption, entities, labels))
    return {
        "n_captions": n_captions,
        "count_accuracy": counts / n_captions,
        "exact_accuracy": exact / n_captions,
        "failures": failures,
    }


def load_caption_benchmark(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Captions and their gold entity phrases from a CSV with columns ``caption,entities``.

    ``entities`` lists the phrases separated by " | " (quote a field that holds a
    comma). Returns ``(captions, gold)``; a missing column or an empty field raises
    ``ValueError`` naming the file and row.
    """
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"caption", "entities"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected the columns caption,entities, got {reader.fieldnames}")
        captions, gold = [], []
        for row_number, row in enumerate(reader, start=2):
            caption = (row["caption"] or "").strip()
            entities = [e.strip() for e in (row["entities"] or "").split("|")]
            if not caption or not all(entities):
                raise ValueError(
                    f"{path}, row {row_number}: expected a caption and non-empty entities separated by ' | ', got {row}"
                )
            captions.append(caption)
            gold.append(entities)
    return captions, gold


assert set(CLAUSES) == set(NOUN_PHRASES) == set(KEYWORDS) == set(EVENTS), "caption tables must cover EVENTS"
