"""Which recorded files of which Debian packages make the ``recorded`` corpus, and their classes.

Every decision about the recorded corpus's content is here, as data: the packages,
their licences, what of each is used and what is left out (and why), and the rules
that give a file its class and its *recording group*. :mod:`weaksep.data.recorded`
applies them.

A rule matches a regular expression (case-insensitive, searched) against a file's
*name within its source*: the path under ``Source.root`` (posix), except for Hydrogen
drum kits, whose files are named ``<kit>/<instrument name in drumkit.xml>/<file>``
because the kit file, not the sample's file name, says what a sample is. The first
matching rule wins; a file no rule matches is not used.

``group`` is a second expression whose first capture group is the recording group:
files of one group are variants of one recording (the velocity layers of one drum,
every drum of one kit, numbered takes of one prompt, one speaker's words) and always
land in the same split. Where a package cuts one long recording into numbered clips
we cannot tell apart, each clip is its own group (``FILE``): stated per rule below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One Debian package: where its audio sits once unpacked, and what of it is not used."""

    package: str
    licence: str
    root: str  # folder of the audio inside the unpacked package
    archive: str | None = None  # a zip under ``root`` that holds the audio (0 A.D. ships one)
    left_out: str = ""


@dataclass(frozen=True)
class Rule:
    package: str
    pattern: str  # regular expression on the file's name within its source
    label: str  # the class, used as the query text
    group: str  # regular expression whose first capture is the recording group


FILE = r"^(.*)$"  # every file is its own recording
TAKES = r"^(.*?)[ _-]*\d*\.\w+$"  # numbered takes of one name are one recording
KIT = r"^([^/]+)/"  # a drum kit: every sample of one kit is one group
VOICE = r"^([^/_]+)"  # a voice pack and its translations (Default, Default_es, ...) are one speaker

SOURCES: tuple[Source, ...] = (
    Source(
        "0ad-data",
        "CC-BY-SA-3.0",
        "usr/share/games/0ad/mods/public",
        archive="public.zip",
        left_out="music (composed scores), interface sounds (synthetic), spoken unit orders (acted lines in "
        "several languages), ship, siege, fire and gathering sounds (layered or few recordings per kind)",
    ),
    Source(
        "hydrogen-drumkits",
        "GPL-2+, CC-BY-SA-3.0 or CC0 per kit (the package's copyright file)",
        "usr/share/hydrogen/data/drumkits",
        left_out="ElectricEmpireKit, HardElectro1 and VariBreaks (synthetic kits), Audiophob (single hits "
        "gathered from many sources, some synthetic: 8-bit snare, noise toms), instruments other than kick, "
        "snare, hi-hat, tom, crash and ride (sticks, cowbells, claps, loops), kits whose samples Debian removed",
    ),
    Source(
        "hydrogen-drumkits-effects",
        "CC-BY-3.0",
        "usr/share/hydrogen/data/drumkits",
        left_out="nothing of belofilms_GuitarStrums",
    ),
    Source(
        "sonic-pi-samples",
        "CC0",
        "usr/share/sonic-pi/samples",
        left_out="everything but the tabla strokes (electronic, bass, glitch, loops and ambient pads are "
        "synthetic or too few per kind)",
    ),
    Source(
        "ktuberling-data",
        "GPL-2+",
        "usr/share/ktuberling/sounds",
        left_out="nothing of the spoken words",
    ),
    Source(
        "hedgewars-data",
        "GFDL-1.3",
        "usr/share/games/hedgewars/Data/Sounds/voices",
        left_out="the Robot voice (processed), every line but laughing and coughing (acted phrases)",
    ),
    Source(
        "wesnoth-1.16-data",
        "GPL-2+",
        "usr/share/games/wesnoth/1.16/data/core/sounds",
        left_out="everything but the wolf (drakes, gryphons and bats are not real animals' recordings; the rest "
        "has too few recordings per kind)",
    ),
)

_ACOUSTIC_KITS = (
    r"^(BJA_Pacific|ColomboAcousticDrumkit|ForzeeStereo|Millo-Drums_v\.1|Millo_MultiLayered[23]|rumpf_kit_z01_h2)/"
)
_0AD = "0ad-data"

RULES: tuple[Rule, ...] = (
    # 0 A.D.: separate takes, each its own file; numbered clips of one kind may come from one
    # session, which we cannot tell apart from the files: each file is its own group.
    Rule(_0AD, r"^audio/actor/singlesteps/fs_", "footsteps", FILE),
    Rule(_0AD, r"^audio/attack/impact/arrow", "arrow hitting a target", FILE),
    Rule(_0AD, r"^audio/attack/impact/shield_", "blow on a shield", FILE),
    Rule(_0AD, r"^audio/attack/weapon/(sword_attack|swordhit)", "sword clash", FILE),
    Rule(_0AD, r"^audio/attack/weapon/bow_attack", "bow shot", FILE),
    Rule(_0AD, r"^audio/resource/construction/con_saw", "sawing wood", FILE),
    Rule(_0AD, r"^audio/resource/construction/con_wood", "hammering wood", FILE),
    Rule(_0AD, r"^audio/resource/lumbering/lumber_tree_\d", "axe chopping wood", FILE),
    Rule(_0AD, r"^audio/resource/mining/mine_(stone|metal)_\d", "pickaxe striking rock", FILE),
    Rule(_0AD, r"^audio/resource/farming/hoe_", "hoe digging soil", FILE),
    Rule(_0AD, r"^audio/resource/foraging/leaves_", "rustling leaves", FILE),
    Rule(_0AD, r"^audio/actor/fauna/death/goat_", "goat bleating", FILE),
    Rule(_0AD, r"^audio/actor/fauna/animal/cattle_", "cattle mooing", FILE),
    Rule(_0AD, r"^audio/actor/fauna/animal/chicken_", "chicken clucking", FILE),
    Rule(_0AD, r"^audio/actor/human/death/male_death", "man screaming", FILE),
    Rule(_0AD, r"^audio/actor/human/death/female_death", "woman screaming", FILE),
    Rule(_0AD, r"^audio/actor/mounted/movement/mstep", "horse galloping", FILE),
    Rule(_0AD, r"^audio/ambient/water/", "flowing water", FILE),
    Rule(_0AD, r"^audio/ambient/weather/wind", "wind", FILE),
    # Hydrogen: velocity layers of one drum and every drum of one kit stay together.
    Rule("hydrogen-drumkits", _ACOUSTIC_KITS + r"[^/]*(kick|bass ?drum)[^/]*/", "kick drum", KIT),
    Rule("hydrogen-drumkits", _ACOUSTIC_KITS + r"[^/]*snare[^/]*/", "snare drum", KIT),
    Rule("hydrogen-drumkits", _ACOUSTIC_KITS + r"[^/]*(hi[- ]?hat|hh)[^/]*/", "hi-hat", KIT),
    Rule("hydrogen-drumkits", _ACOUSTIC_KITS + r"[^/]*tom[^/]*/", "tom drum", KIT),
    Rule("hydrogen-drumkits", _ACOUSTIC_KITS + r"[^/]*crash[^/]*/", "crash cymbal", KIT),
    Rule("hydrogen-drumkits", _ACOUSTIC_KITS + r"[^/]*ride[^/]*/", "ride cymbal", KIT),
    # One chord's strums (up, down, numbered) are one group.
    Rule(
        "hydrogen-drumkits-effects",
        r"^belofilms_GuitarStrums/[^/]+/[^/]+\.flac$",
        "acoustic guitar strum",
        r"^belofilms_GuitarStrums/[^/]+/([^_/]+)",
    ),
    Rule("sonic-pi-samples", r"^tabla_", "tabla", r"^(tabla_[a-z]+(?:_[a-z]+)*?)_?\d*\.flac$"),
    # One language's words were recorded by one volunteer: a language (sr, sr@latin, ...) is a group.
    Rule("ktuberling-data", r"^[^/]+/[^/]+\.(ogg|wav|flac)$", "a spoken word", r"^([^/@]+)"),
    Rule("hedgewars-data", r"^(?!Robot/)[^/]+/Laugh\.ogg$", "laughing", VOICE),
    Rule("hedgewars-data", r"^(?!Robot/)[^/]+/PoisonCough\.ogg$", "coughing", VOICE),
    Rule("wesnoth-1.16-data", r"^wolf-", "wolf growling", FILE),
)

# Shares of a class's recording groups per split (at least one group each; the rest trains).
SPLIT_SHARES: dict[str, float] = {"test": 0.15, "val": 0.10, "clap": 0.20}
SPLITS: tuple[str, ...] = ("train", "val", "test", "clap")
