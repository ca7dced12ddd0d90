"""`weaksep gpu-check` at the smoke size on the CPU: the figures a GPU machine will report, kept runnable."""

import json
import math

from weaksep.cli import main


def test_gpu_check_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert main(["gpu-check", "--profile", "smoke", "--steps", "2", "--warmup", "1", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["profile"] == "smoke" and figures["device"].startswith("CPU")
    assert figures["precision"] == "float32" and figures["steps_timed"] == 2
    for key in ("step_time_s", "samples_per_s", "peak_memory_gb", "validation_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert 0 <= figures["data_wait_share"] < 1
    assert figures["step_time_min_s"] <= figures["step_time_s"] <= figures["step_time_max_s"]
    assert figures["samples_per_s"] == figures["batch_size"] / figures["step_time_s"]
    assert math.isclose(figures["estimated_hours_for_profile_steps"], 20 * figures["step_time_s"] / 3600)


def test_gpu_check_with_accumulation_and_the_semi_regime(tmp_path):
    out = tmp_path / "semi.json"
    args = [
        "--profile",
        "smoke",
        "--regime",
        "semi",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--accumulate",
        "2",
        "--batch-size",
        "8",
    ]
    assert main(["gpu-check", *args, "--val-mixtures", "2", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["accumulate"] == 2 and figures["validation_mixtures"] == 2
