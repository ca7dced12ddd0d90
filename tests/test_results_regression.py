"""The committed result tables are what the package computes from the committed per-query rows.

Every table of ``results/`` (the quick study) and of ``results/converged/`` (the headline) is written again, into a temporary folder, by the
same :class:`~weaksep.reproduce.study.Study` methods the notebooks call
(:meth:`~weaksep.reproduce.study.Study.write_table`, :meth:`~weaksep.reproduce.study.Study.write_ablation`)
from ``results/queries/<table>.csv`` and ``results/configs/<table>.json``, and
``summary.csv`` by :func:`weaksep.reproduce.summary.compare_to_paper` from the rows written beside them.
Every numeric cell must agree within 1e-6 and every other cell exactly. No model
is loaded: a change to how tables are summarised fails here, naming the table and
the column, until the results are made again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from weaksep.reproduce.summary import TABLE_FILES

RESULTS = Path(__file__).resolve().parent.parent / "results"
TOLERANCE = 1e-6
# The tables committed with the quick study: the test must find at least these.
EXPECTED = {
    "01_two_source.csv",
    "02_three_source.csv",
    "03_four_source.csv",
    "04_semi_supervised.csv",
    *(f"07_ablations_{s}.csv" for s in ("loss", "weight", "weight_test", "clap", "text", "fraction", "length")),
    "summary.csv",
}
ROOTS = {"quick": RESULTS, "converged": RESULTS / "converged"}
# numpy warns computing the spread of a column holding +inf (the mixture's SAR): the table keeps NaN there.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")


def _tables(root: Path) -> tuple[list[str], list[str], list[str]]:
    """The study tables, the ablation tables and every table (with summary.csv) committed in ``root``."""
    study = sorted(f for f in TABLE_FILES.values() if (root / f).is_file())
    ablations = sorted(p.name for p in root.glob("07_ablations_*.csv"))
    return study, ablations, [*study, *ablations, *(["summary.csv"] if (root / "summary.csv").is_file() else [])]


STUDY_TABLES, ABLATION_TABLES, ALL_TABLES = _tables(RESULTS)
CASES = [(profile, name) for profile, root in ROOTS.items() for name in _tables(root)[2]]


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def _inputs(root: Path, name: str) -> tuple[pd.DataFrame, dict]:
    stem = Path(name).stem
    return _read_csv(root / "queries" / f"{stem}.csv"), json.loads((root / "configs" / f"{stem}.json").read_text())


def _study(config: dict, out: Path):
    """A study of the config's profile writing into ``out``; its CLAP is never loaded."""
    from weaksep.reproduce.study import Study

    study = Study(
        config["profile"]["name"], data_root=out / "cache", results_dir=out, clap_backend="proxy", progress=False
    )
    study.clap_info = lambda: dict(config.get("clap", {}))  # the config written beside the table: as committed
    return study


def _recompute_study_table(root: Path, name: str, out: Path) -> Path:
    table = {f: t for t, f in TABLE_FILES.items()}.get(name)
    assert table is not None, f"{name} is not in weaksep.reproduce.summary.TABLE_FILES {TABLE_FILES}"
    rows, config = _inputs(root, name)
    _study(config, out).write_table(Path(name).stem, table, rows)
    return out / name


def _recompute_ablation(root: Path, name: str, out: Path) -> Path:
    rows, config = _inputs(root, name)
    section = Path(name).stem.removeprefix("07_ablations_")
    values = config.get("values")
    if values is None:
        # Configs written before they recorded each setting's number: take it from the
        # committed table (the `value` column is then the only one not recomputed).
        committed = _read_csv(root / name)
        values = committed.dropna(subset=["value"]).drop_duplicates("setting").set_index("setting")["value"].to_dict()
    _study(config, out).write_ablation(section, rows, reference=config["reference"], values=values)
    return out / name


def _recompute_summary(root: Path, out: Path) -> Path:
    from weaksep.reproduce.summary import compare_to_paper

    for name in _tables(root)[0]:  # writes the tables and, beside them, the per-query rows the claims use
        _recompute_study_table(root, name, out)
    path = out / "summary.csv"
    path.write_text(compare_to_paper(out).to_csv(index=False))  # as weaksep.reproduce.plots.redraw_all writes it
    return path


def _mismatches(committed: pd.DataFrame, recomputed: pd.DataFrame) -> list[str]:
    """One line per column of both tables that differs: its name, how many cells, and the first one."""
    out = []
    for col in [c for c in committed.columns if c in recomputed.columns]:
        a, b = committed[col], recomputed[col]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(a):
            x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
            bad = ~np.isclose(x, y, rtol=0.0, atol=TOLERANCE, equal_nan=True)
            bad &= ~((x == y) | (np.isnan(x) & np.isnan(y)))  # equal infinities
        else:
            bad = (a.fillna("<NA>").astype(str) != b.fillna("<NA>").astype(str)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            out.append(
                f"column {col!r}: {int(bad.sum())} of {len(a)} cells differ, first at row {i}: "
                f"committed {a.iloc[i]!r}, recomputed {b.iloc[i]!r}"
            )
    return out


def test_the_committed_tables_are_found_with_their_rows_and_configs():
    missing = sorted(EXPECTED - set(ALL_TABLES))
    assert not missing, f"results/ lacks {missing}"
    for name in [*STUDY_TABLES, *ABLATION_TABLES]:
        stem = Path(name).stem
        assert (RESULTS / "queries" / f"{stem}.csv").is_file(), f"results/queries/{stem}.csv is missing"
        assert (RESULTS / "configs" / f"{stem}.json").is_file(), f"results/configs/{stem}.json is missing"


@pytest.mark.parametrize(("profile", "name"), CASES)
def test_a_committed_table_is_recomputed_from_its_rows(profile, name, tmp_path):
    root = ROOTS[profile]
    if name == "summary.csv":
        path = _recompute_summary(root, tmp_path)
    elif name.startswith("07_ablations_"):
        path = _recompute_ablation(root, name, tmp_path)
    else:
        path = _recompute_study_table(root, name, tmp_path)
    committed, recomputed = _read_csv(root / name), _read_csv(path)
    name = str((root / name).relative_to(RESULTS.parent))
    assert len(committed) > 0, f"{name} is empty"
    assert committed.select_dtypes("number").shape[1] >= 3, f"{name} has almost no numeric column to compare"
    added = [c for c in recomputed.columns if c not in committed.columns]
    dropped = [c for c in committed.columns if c not in recomputed.columns]
    schema = f"the package now adds the columns {added} and drops {dropped}: make the results again"
    assert len(recomputed) == len(committed), (
        f"{name}: {len(recomputed)} rows recomputed, {len(committed)} committed"
        + (f"; {schema}" if added or dropped else "")
    )
    problems = _mismatches(committed, recomputed)
    if added or dropped:  # after the shared columns, so a failure says whether their numbers still agree
        problems.append(schema)
    assert not problems, f"{name} differs from its recomputation:\n" + "\n".join(problems)
