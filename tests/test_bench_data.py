"""make bench-data at a tiny size: every figure it reports is there and plausible."""

import json

from weaksep.cli import main


def test_bench_data_reports_every_layout_and_size(tmp_path):
    out = tmp_path / "bench_data.json"
    args = ["--work", str(tmp_path / "work"), "--music-files", "11", "--music-seconds", "8"]
    args += ["--vggsound-clips", "40", "--scale", "2", "--profile", "smoke", "--batches", "4", "--out", str(out)]
    assert main(["bench-data", *args]) == 0
    written = json.loads(out.read_text())
    assert written["finished"] and written["command"].startswith("weaksep bench-data")
    rows = written["rows"]
    assert [(r["layout"], r["copies"]) for r in rows] == [("music", 1), ("vggsound", 1), ("music", 2), ("vggsound", 2)]
    for r in rows:
        assert r["prepare_s"] > 0 and r["train_files"] > 0
        for w in (0, 2):
            assert r[f"batches_per_s_workers{w}"] > 0 and r[f"peak_rss_mb_workers{w}"] > 100
        assert 0 < r["crop_coverage"] <= 1
    music = {r["copies"]: r for r in rows if r["layout"] == "music"}
    assert music[2]["train_files"] > music[1]["train_files"]  # the links are files like any other
    assert not (tmp_path / "work").exists()  # the generated data are removed
