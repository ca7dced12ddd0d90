"""``weaksep data``: render corpora, prepare a dataset's manifests, build the recorded corpus, write a fixture dataset.

``data render --profile smoke --out DIR [--corpus instruments|events|all]``
    renders the corpora of a profile (cached: a second run with the same
    settings does nothing) and prints what is on disk: clips per split,
    seconds of audio, soundfonts, bytes, time taken and the folder.
``data prepare [--layout music|vggsound|audiocaps] --root DIR --out MANIFESTS [--skip-bad] [--decode --profile P]``
    writes ``MANIFESTS/train.csv``, ``val.csv``, ``test.csv`` for a MUSIC,
    VGGSound or AudioCaps download (layout detected when not given) and prints
    one summary line; a bad row or corrupt audio file stops it unless
    ``--skip-bad``. ``--decode`` then decodes every file once into the stores a
    study of profile P reads (``weaksep/data/store.py``), in parallel, resumably.
``data recorded [--cache DIR] [--fixture]``
    builds the recorded corpus (real recordings from Debian packages, fetched with
    ``apt-get download`` once; ``weaksep/data/recorded_rules.py`` says which files and
    classes) into ``<cache>/recorded`` and prints its size; ``--fixture`` builds the
    tiny stand-in the tests use into ``<cache>/recorded-fixture`` instead.
``data fixture --layout music|vggsound|audiocaps --out DIR [--seed N]``
    writes a tiny dataset in that public layout from rendered audio, with a few
    missing files and one corrupt file (see ``weaksep/data/fixtures.py``).

Bad input: one line ``weaksep: error: ...`` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from pathlib import Path

from ..data.classes import CORPORA
from ..data.corpus import (
    SPLITS,
    corpus_dir,
    corpus_is_current,
    corpus_settings,
    read_corpus_manifest,
    render_corpus,
    settings_hash,
)
from ..data.layouts import DATASET_LAYOUTS, prepare_data
from ..data.manifest import ManifestError
from ..data.recorded import RecordedCorpusError
from ..profiles import PROFILES, get_profile
from .common import CliError


def _summary(folder: Path, profile, seconds: float, was_cached: bool) -> str:
    rows = read_corpus_manifest(folder)
    per_split = Counter(r["split"] for r in rows)
    fonts = {s: Counter(r["soundfont"] for r in rows if r["split"] == s) for s in SPLITS}
    size = sum((folder / r["path"]).stat().st_size for r in rows)
    clip_s = profile.clip_samples / profile.sample_rate
    lines = [
        f"{folder}: {len(rows)} clips ({len(rows) * clip_s / 60:.1f} min of audio, {size / 1e6:.1f} MB), "
        + ("cached, nothing rendered" if was_cached else f"rendered in {seconds:.1f} s"),
        "  "
        + ", ".join(f"{s} {per_split[s]}" for s in SPLITS)
        + f" clips of {clip_s:.2f} s at {profile.sample_rate} Hz; {len({r['label'] for r in rows})} classes",
        "  soundfonts: "
        + "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in sorted(fonts[s].items())) for s in SPLITS),
    ]
    return "\n".join(lines)


def _render(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpora = CORPORA if args.corpus == "all" else (args.corpus,)
        for corpus in corpora:
            folder = corpus_dir(args.out, profile, corpus)
            cached = corpus_is_current(folder, settings_hash(corpus_settings(profile, corpus)))
            start = time.perf_counter()
            render_corpus(profile, args.out, corpus)
            print(_summary(folder, profile, time.perf_counter() - start, cached), flush=True)
    for note in dict.fromkeys(str(w.message) for w in caught):  # each note once
        print(f"note: {note}", flush=True)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = prepare_data(
            args.root, args.out, args.layout, skip_bad=args.skip_bad, echo=lambda line: print(line, flush=True)
        )
    for note in dict.fromkeys(str(w.message) for w in caught):
        print(f"note: {note}", flush=True)
    if folder == args.root:
        print(f"{folder} already holds manifests (train.csv, test.csv): use it as it is", flush=True)
    if args.decode:
        from ..data.store import prepare_store, store_dir
        from ..paths import default_cache

        profile = get_profile(args.profile)
        cache = args.cache or default_cache()
        for split in ("train", "val", "test"):
            manifest = Path(folder) / f"{split}.csv"
            if manifest.is_file():
                store = store_dir(cache, manifest, profile.sample_rate)
                report = prepare_store(manifest, store, profile.sample_rate, profile.clip_samples, args.workers)
                print(report.summary(), flush=True)
    return 0


def _fixture(args: argparse.Namespace) -> int:
    from ..data.fixtures import write_fixture  # imports the renderer: only this subcommand needs it

    r = write_fixture(args.layout, args.out, seed=args.seed)
    kept = ", ".join(f"{s} {n}" for s, n in r.kept.items())
    print(
        f"{r.layout} fixture in {r.root}: {kept} clips with audio; {sum(r.missing.values())} listed without "
        f"a file; 1 corrupt file {r.corrupt} ({r.corrupt_metadata} line {r.corrupt_line}); "
        f"prepare it with --skip-bad",
        flush=True,
    )
    return 0


def _recorded(args: argparse.Namespace) -> int:
    from ..data.recorded import recorded_corpus

    folder = recorded_corpus(args.cache, fixture=args.fixture)
    print(f"recorded corpus: {folder} (DATA={folder} for make reproduce; classes.csv lists its classes)")
    return 0


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    data = verbs.add_parser(
        "data",
        help="render corpora, prepare a dataset's manifests, build the recorded corpus, write a fixture",
        description="Render corpora, prepare a dataset's manifests, build the recorded corpus, write a fixture "
        "dataset.",
    )
    sub = data.add_subparsers(
        dest="data_command", metavar="ACTION", required=True, help="render | prepare | recorded | fixture"
    )

    render = sub.add_parser("render", help="render the corpora of a profile")
    render.add_argument(
        "--profile", default=None, choices=sorted(PROFILES), help="study profile (default: $WEAKSEP_PROFILE or quick)"
    )
    render.add_argument("--out", required=True, type=Path, help="root folder of the rendered corpora")
    render.add_argument("--corpus", default="all", choices=[*CORPORA, "all"], help="which corpus (default: all)")
    render.set_defaults(run=_errors_in_one_line(_render))

    prepare = sub.add_parser("prepare", help="write train/val/test manifests for a MUSIC, VGGSound or AudioCaps root")
    prepare.add_argument(
        "--layout",
        default=None,
        choices=DATASET_LAYOUTS,
        help="the dataset's layout (default: detected from its metadata files)",
    )
    prepare.add_argument("--root", required=True, type=Path, help="dataset root: metadata and downloaded audio")
    prepare.add_argument("--out", required=True, type=Path, help="folder to write train.csv, val.csv, test.csv into")
    prepare.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out bad rows and corrupt audio files (listed) instead of stopping at the first",
    )
    prepare.add_argument(
        "--decode",
        action="store_true",
        help="also decode every file once, at the profile's rate, into the stores a study reads "
        "(<cache>/stores; resumable, bad files skipped and listed)",
    )
    prepare.add_argument(
        "--profile", default=None, choices=sorted(PROFILES), help="with --decode: whose sample rate and clip length"
    )
    prepare.add_argument(
        "--cache", default=None, type=Path, help="with --decode: the cache (default: $WEAKSEP_CACHE or ./.cache)"
    )
    prepare.add_argument("--workers", default=None, type=int, help="with --decode: decoding processes (default: CPUs)")
    prepare.set_defaults(run=_errors_in_one_line(_prepare))

    recorded = sub.add_parser("recorded", help="build the recorded corpus from Debian packages (apt-get download)")
    recorded.add_argument("--cache", default=None, type=Path, help="the cache (default: $WEAKSEP_CACHE or ./.cache)")
    recorded.add_argument("--fixture", action="store_true", help="the tiny stand-in packages the tests build instead")
    recorded.set_defaults(run=_errors_in_one_line(_recorded))

    fixture = sub.add_parser("fixture", help="write a tiny dataset in a public layout, from rendered audio")
    fixture.add_argument("--layout", required=True, choices=DATASET_LAYOUTS, help="which dataset's layout")
    fixture.add_argument("--out", required=True, type=Path, help="new or empty folder to write it into")
    fixture.add_argument("--seed", default=0, type=int, help="seed of ids, clips and captions (default 0)")
    fixture.set_defaults(run=_errors_in_one_line(_fixture))


def _errors_in_one_line(run):
    """``run`` with a bad dataset, a missing or denied file or a failed download as a one-line error."""

    def checked(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (ManifestError, OSError, RecordedCorpusError) as e:  # LayoutError is a ManifestError
            raise CliError(str(e)) from e

    return checked
