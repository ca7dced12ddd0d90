"""Captions of sound-event mixtures and the rule-based entity parser."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from weaksep.data import EVENTS, caption_entities, caption_for, parse_caption
from weaksep.data.captions import (
    CLAUSES,
    KEYWORDS,
    NOUN_PHRASES,
    load_caption_benchmark,
    normalise_phrase,
    parser_accuracy,
    phrase_class,
    template_accuracy,
)

BENCHMARK = Path(__file__).parent / "data" / "audiocaps_style_captions.csv"

# (caption, phrases the parser must return, classes they name): >= 20 shapes.
SHAPES = [
    ("A bird tweets", ["a bird tweets"], ["bird"]),
    ("Applause.", ["applause"], ["applause"]),
    ("A bird tweets while a telephone rings", ["a bird tweets", "a telephone rings"], ["bird", "telephone"]),
    ("Applause followed by a gunshot and waves", ["applause", "a gunshot", "waves"], ["applause", "gunshot", "waves"]),
    (
        "A bell rings, then someone knocks on a door.",
        ["a bell rings", "someone knocks on a door"],
        ["bell", "knocking"],
    ),
    (
        "Waves crash on the shore as a helicopter flies overhead",
        ["waves crash on the shore", "a helicopter flies overhead"],
        ["waves", "helicopter"],
    ),
    ("Heavy breathing with birds chirping", ["heavy breathing", "birds chirping"], ["breathing", "bird"]),
    (
        "Gunfire, applause and a ringing phone",
        ["gunfire", "applause", "a ringing phone"],
        ["gunshot", "applause", "telephone"],
    ),
    (
        "Hand claps, bells chiming, ocean waves and a gunshot",
        ["hand claps", "bells chiming", "ocean waves", "a gunshot"],
        ["hand clap", "bell", "waves", "gunshot"],
    ),
    ("A phone is ringing and then a gun fires", ["a phone is ringing", "a gun fires"], ["telephone", "gunshot"]),
    (
        "a crowd applauds along with rhythmic clapping",
        ["a crowd applauds", "rhythmic clapping"],
        ["applause", "hand clap"],
    ),
    ("Birdsong over the surf", ["birdsong", "the surf"], ["bird", "waves"]),
    ("A helicopter hovers; a bell tolls", ["a helicopter hovers", "a bell tolls"], ["helicopter", "bell"]),
    (
        "Someone breathes heavily, and a telephone rings",
        ["someone breathes heavily", "a telephone rings"],
        ["breathing", "telephone"],
    ),
    ("Knocking, followed by a gunshot", ["knocking", "a gunshot"], ["knocking", "gunshot"]),
    ("Birds chirp in the background while waves crash", ["birds chirp", "waves crash"], ["bird", "waves"]),
    ("A gunshot rings out before applause", ["a gunshot rings out", "applause"], ["gunshot", "applause"]),
    ("Applause after a bell rings", ["applause", "a bell rings"], ["applause", "bell"]),
    ("A telephone rings then a person claps", ["a telephone rings", "a person claps"], ["telephone", "hand clap"]),
    (
        "THE SEA WASHES ONTO THE BEACH WHILST A BIRD IS SINGING",
        ["the sea washes onto the beach", "a bird is singing"],
        ["waves", "bird"],
    ),
    (
        "A bell ringing together with a helicopter flying overhead, accompanied by deep breaths",
        ["a bell ringing", "a helicopter flying overhead", "deep breaths"],
        ["bell", "helicopter", "breathing"],
    ),
    (
        "  Someone knocking on a door, then a phone rings nearby.  ",
        ["someone knocking on a door", "a phone rings"],
        ["knocking", "telephone"],
    ),
    (
        "An audience applauding, a gun firing, birdsong, and the toll of a bell",
        ["an audience applauding", "a gun firing", "birdsong", "the toll of a bell"],
        ["applause", "gunshot", "bird", "bell"],
    ),
]


def test_at_least_twenty_shapes():
    assert len(SHAPES) >= 20


@pytest.mark.parametrize("caption,phrases,classes", SHAPES)
def test_parse_caption_shapes(caption, phrases, classes):
    assert parse_caption(caption) == phrases
    assert caption_entities(caption) == classes


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_generated_captions_parse_back_to_their_labels(n):
    rng = np.random.default_rng(n)
    labels_all = sorted(EVENTS)
    seen = set()
    for _ in range(300):
        labels = [labels_all[i] for i in rng.choice(len(labels_all), n, replace=False)]
        caption = caption_for(labels, rng)
        assert caption[0].isupper()
        assert caption_entities(caption) == labels, caption
        assert len(parse_caption(caption)) == n
        seen.add(caption)
    assert len(seen) > 200 if n > 1 else len(seen) > 20  # varied, not one template


def test_caption_connectors_vary():
    rng = np.random.default_rng(0)
    captions = [caption_for(["bird", "telephone"], rng) for _ in range(400)]
    for connector in (" and ", ", ", " followed by ", " while ", " then ", " as ", " with "):
        assert any(connector in c for c in captions), connector


def test_caption_for_accepts_every_generator():
    labels = ["waves", "gunshot", "bell"]
    for rng in (np.random.default_rng(3), torch.Generator().manual_seed(3), random.Random(3)):
        assert caption_entities(caption_for(labels, rng)) == labels
    a = caption_for(labels, torch.Generator().manual_seed(5))
    assert a == caption_for(labels, torch.Generator().manual_seed(5))


def test_no_phrase_contains_a_connector_or_names_two_classes():
    for table in (CLAUSES, NOUN_PHRASES):
        for label, phrases in table.items():
            for phrase in phrases:
                assert parse_caption(phrase) == [phrase], phrase
                assert phrase_class(phrase) == label, phrase
                hits = {c for c, words in KEYWORDS.items() for w in phrase.split() if w in words}
                assert hits == {label}, (phrase, hits)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty caption"):
        parse_caption("   ")
    with pytest.raises(ValueError, match="'a dog barks'"):
        caption_entities("A bird tweets and a dog barks")
    assert caption_entities("A bird tweets and a dog barks", strict=False) == ["bird"]
    with pytest.raises(ValueError, match="violin"):
        caption_for(["violin"], np.random.default_rng(0))


# --- accuracy of the parser -----------------------------------------------------


def test_caption_benchmark_loads_with_varied_event_counts():
    captions, gold = load_caption_benchmark(BENCHMARK)
    assert len(captions) == len(gold) >= 50
    assert len(set(captions)) == len(captions)
    counts = [len(g) for g in gold]
    assert min(counts) == 1 and max(counts) == 4
    assert sum(c == 1 for c in counts) >= 10 and sum(c >= 3 for c in counts) >= 10
    assert all(p == p.strip().lower() and p for g in gold for p in g)


def test_load_caption_benchmark_names_the_file_and_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,entities\nA dog barks,a dog barks\n")
    with pytest.raises(ValueError, match="bad.csv.*caption,entities"):
        load_caption_benchmark(bad)
    bad.write_text('caption,entities\nA dog barks,a dog barks\n"Rain, wind",rain | \n')
    with pytest.raises(ValueError, match="row 3"):
        load_caption_benchmark(bad)


def test_normalise_phrase_drops_case_articles_punctuation_and_spaces():
    assert normalise_phrase("  A loud, high-pitched   Alarm. ") == "loud high-pitched alarm"
    assert normalise_phrase("The sound of an engine") == "sound of engine"
    assert normalise_phrase("a man's voice") == "man's voice"
    assert normalise_phrase("theatre announcer") == "theatre announcer"  # "the" only as a word


def test_parser_accuracy_on_a_hand_made_case():
    captions = [
        "A dog barks while a man speaks",  # exact
        "THE WIND BLOWS and rain falls",  # exact after normalisation
        "A man speaks and then laughs",  # right count, second phrase "laughs" differs
        "Rock and roll music plays",  # split in two: wrong count
    ]
    gold = [
        ["a dog barks", "a man speaks"],
        ["wind blows", "the rain falls"],
        ["a man speaks", "a man laughs"],
        ["rock and roll music plays"],
    ]
    acc = parser_accuracy(captions, gold)
    assert acc["n_captions"] == 4
    assert acc["count_accuracy"] == pytest.approx(3 / 4)
    assert acc["exact_accuracy"] == pytest.approx(2 / 4)
    assert [f[0] for f in acc["failures"]] == captions[2:]
    assert acc["failures"][1][1] == ["rock", "roll music plays"]
    with pytest.raises(ValueError, match="3 captions and 2 gold"):
        parser_accuracy(captions[:3], gold[:2])


def test_parser_is_exact_on_its_own_templates():
    acc = template_accuracy(n_captions=500, seed=0, n_events=(1, 2, 3, 4))
    assert acc["n_captions"] == 500
    assert acc["count_accuracy"] == 1.0 and acc["exact_accuracy"] == 1.0, acc["failures"][:5]
    assert template_accuracy(n_captions=60, seed=3, n_events=(4,))["exact_accuracy"] == 1.0
    with pytest.raises(ValueError, match="event counts in 1..10"):
        template_accuracy(n_events=(11,))


def test_parser_accuracy_on_audiocaps_style_captions():
    # Measured with 68 captions: 55 split into the right number of entities
    # (0.809), 51 into exactly the gold phrases (0.750). All misses are the list's
    # tricky rows: "and"/","/"over"/"with" inside one event ("rock and roll",
    # "a loud, high-pitched alarm", "flies over a field") and a subject shared by
    # two events ("a man speaks and then laughs"). The floors sit just below, so
    # one caption more parsed wrongly fails.
    captions, gold = load_caption_benchmark(BENCHMARK)
    acc = parser_accuracy(captions, gold)
    print(f"benchmark of {acc['n_captions']}: count {acc['count_accuracy']:.3f}, exact {acc['exact_accuracy']:.3f}")
    assert acc["count_accuracy"] >= 0.80
    assert acc["exact_accuracy"] >= 0.74
    assert acc["count_accuracy"] >= acc["exact_accuracy"]
