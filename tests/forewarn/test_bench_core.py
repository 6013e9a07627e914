"""``forewarn bench core``: its figures and its two baselines, run at a tiny size."""

from __future__ import annotations

import json
import sys

import pytest

from cloud.errors import ConfigError
from forewarn.bench.core import RIVER_MODEL, run_core_bench
from forewarn.cli import main

DEVICES, STEPS, LOOP_SAMPLE, RIVER_SAMPLE = 300, 4, 12, 3


def _bench(baseline: str) -> dict[str, object]:
    return run_core_bench(
        DEVICES, STEPS, LOOP_SAMPLE, 1, baseline=baseline, river_devices=RIVER_SAMPLE
    )


def test_both_baselines_report_river_first_and_the_loop_beside_it() -> None:
    result = _bench("both")
    assert result["readings_per_s"] > 0  # type: ignore[operator]
    assert result["state_bytes_per_device"] == 160.0
    assert result["baseline"] == RIVER_MODEL
    assert result["baseline_devices"] == result["river_baseline_devices"] == RIVER_SAMPLE
    assert result["baseline_readings_per_s"] == result["river_baseline_readings_per_s"]
    assert result["speedup"] == result["speedup_vs_river"]
    # every sampled reading (one dict of 8 channels per fridge and step) got a score from trees
    # that had finished their first window: HalfSpaceTrees scores 0 until then
    assert result["river_scored_rows"] == RIVER_SAMPLE * STEPS
    assert 0.0 < result["river_max_score"] <= 1.0  # type: ignore[operator]
    assert result["river_state_bytes_per_device"] > 10_000  # type: ignore[operator]
    assert result["loop_baseline_devices"] == LOOP_SAMPLE
    assert result["loop_baseline_readings_per_s"] > 0  # type: ignore[operator]
    assert result["loop_baseline_speedup"] > 0  # type: ignore[operator]
    assert result["loop_baseline_same_verdicts"] is True
    assert result["loop_baseline_max_score_diff"] < 1e-5  # type: ignore[operator]


def test_the_loop_alone_is_the_baseline_and_river_is_not_run() -> None:
    result = _bench("loop")
    assert result["baseline"] == result["loop_baseline"]
    assert result["baseline_devices"] == LOOP_SAMPLE
    assert result["speedup"] == result["loop_baseline_speedup"]
    assert result["baseline_readings_per_s"] == result["loop_baseline_readings_per_s"]
    assert not [key for key in result if key.startswith("river")]
    assert "speedup_vs_river" not in result


def test_river_alone_runs_no_loop() -> None:
    result = _bench("river")
    assert result["baseline"] == RIVER_MODEL
    assert result["river_scored_rows"] == RIVER_SAMPLE * STEPS
    assert not [key for key in result if key.startswith("loop")]


def test_samples_larger_than_the_fleet_are_cut_to_it() -> None:
    result = run_core_bench(5, 2, 50, 3, baseline="both", river_devices=9)
    assert result["river_baseline_devices"] == 5
    assert result["loop_baseline_devices"] == 5
    assert result["river_scored_rows"] == 5 * 2


def test_an_unknown_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="loop, river, both"):
        run_core_bench(10, 1, 1, 1, baseline="htm")


def test_without_river_both_falls_back_to_the_loop_and_river_alone_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "river", None)  # makes ``import river`` fail
    result = _bench("both")
    assert "not installed" in result["river_baseline_skipped"]  # type: ignore[operator]
    assert result["baseline"] == result["loop_baseline"]
    with pytest.raises(ConfigError, match="--baseline loop"):
        _bench("river")


def test_the_command_prints_the_figures_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "core", "--json", "--devices", "50", "--steps", "2"]
    argv += ["--baseline", "loop", "--baseline-devices", "4"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["devices"] == 50
    assert result["loop_baseline_devices"] == 4
    with pytest.raises(SystemExit):
        main(["bench", "core", "--baseline", "numpy"])
