"""``python -m weaksep.data render --profile smoke --out DIR [--corpus instruments|events|all]``.

Renders the corpora of a profile (cached: a second run with the same settings
does nothing) and prints what is on disk: clips per split, seconds of audio,
soundfonts, bytes, time taken and the folder.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from ..profiles import PROFILES, get_profile
from .classes import CORPORA
from .corpus import SPLITS, corpus_dir, corpus_is_current, corpus_settings, read_corpus_manifest, render_corpus, settings_hash


def _summary(folder: Path, profile, seconds: float, was_cached: bool) -> str:
    rows = read_corpus_manifest(folder)
    per_split = Counter(r["split"] for r in rows)
    fonts = {s: Counter(r["soundfont"] for r in rows if r["split"] == s) for s in SPLITS}
    size = sum((folder / r["path"]).stat().st_size for r in rows)
    clip_s = profile.clip_samples / profile.sample_rate
    lines = [
        f"{folder}: {len(rows)} clips ({len(rows) * clip_s / 60:.1f} min of audio, {size / 1e6:.1f} MB), "
        + ("cached, nothing rendered" if was_cached else f"rendered in {seconds:.1f} s"),
        "  " + ", ".join(f"{s} {per_split[s]}" for s in SPLITS)
        + f" clips of {clip_s:.2f} s at {profile.sample_rate} Hz; {len({r['label'] for r in rows})} classes",
        "  soundfonts: " + "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in sorted(fonts[s].items()))
                                     for s in SPLITS),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weaksep.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render the corpora of a profile")
    render.add_argument("--profile", default=None, choices=sorted(PROFILES),
                        help="study profile (default: $WEAKSEP_PROFILE or quick)")
    render.add_argument("--out", required=True, type=Path, help="root folder of the rendered corpora")
    render.add_argument("--corpus", default="all", choices=[*CORPORA, "all"])
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
