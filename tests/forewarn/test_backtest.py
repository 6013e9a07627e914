"""``forewarn backtest``: the quick scenario end to end, its JSON, its report, and bad input."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from forewarn.backtest.metrics import DAYS_PER_MONTH, DAYS_PER_YEAR
from forewarn.cli import main
from simulators.scenario import SCENARIO_DIR

TOP_KEYS = [
    "scenario", "seed", "days", "dt_s", "devices", "faults", "tickets", "tickets_by_family",
    "false_tickets", "false_tickets_by_family", "false_tickets_on_faulty_devices", "device_years",
    "false_tickets_per_100_device_years", "eta_interval_coverage", "eta_intervals_scored",
    "stockouts", "baseline_stockouts", "stockouts_prevented_pct", "stockout_slot_hours",
    "baseline_stockout_slot_hours", "restock_orders",
    "restock_visits", "baseline_restock_visits", "customers", "customers_with_email", "emails",
    "emails_per_customer_month",
]  # fmt: skip
FAULT_KEYS = [
    "kind", "family", "injected", "failed", "detected", "detected_before_failure",
    "detected_before_failure_pct", "median_lead_days", "p10_lead_days",
]  # fmt: skip


def _toml(data: dict[str, dict[str, Any]]) -> str:
    lines = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            if hasattr(value, "isoformat"):
                text = value.isoformat().replace("+00:00", "Z")
            else:
                text = json.dumps(value)
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _scenario(tmp_path: Path, name: str, **changes: dict[str, Any]) -> Path:
    with (SCENARIO_DIR / "quick.toml").open("rb") as f:
        data = tomllib.load(f)
    for table, values in changes.items():
        data[table].update(values)
    path = tmp_path / f"{name}.toml"
    path.write_text(_toml(data), encoding="utf-8")
    return path


def _backtest_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, dict[str, Any]]:
    assert main(["backtest", "--json", "--no-progress", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line
    return out, json.loads(out)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The quick scenario once, with a report, shared by the tests that only read it."""
    out_dir = tmp_path_factory.mktemp("report")
    json_path = out_dir / "scores.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["backtest", "--scenario", "quick", "--json", "--no-progress",
                     "--report", str(out_dir)])  # fmt: skip
    assert code == 0
    json_path.write_text(buf.getvalue(), encoding="utf-8")
    return json.loads(buf.getvalue()), out_dir


def test_json_has_exactly_the_documented_keys(quick_report):
    scores, _ = quick_report
    assert list(scores) == TOP_KEYS
    assert scores["faults"]
    for fault in scores["faults"].values():
        assert list(fault) == FAULT_KEYS
    assert scores["devices"] == {"fridge": 24, "vending": 12, "tyres": 24}


def test_quick_scenario_detects_faults_and_its_figures_agree(quick_report):
    s, _ = quick_report
    faults = s["faults"].values()
    assert sum(f["detected"] for f in faults) > 0
    for f in faults:
        assert 0 <= f["detected_before_failure"] <= f["detected"] <= f["injected"]
        assert f["detected_before_failure"] <= f["failed"] <= f["injected"]
        if f["failed"]:
            pct = 100 * f["detected_before_failure"] / f["failed"]
            assert f["detected_before_failure_pct"] == pytest.approx(pct, abs=0.05)
        else:
            assert f["detected_before_failure_pct"] is None
        if f["detected_before_failure"]:
            assert 0 <= f["p10_lead_days"] <= f["median_lead_days"]
        else:
            assert f["median_lead_days"] is None
            assert f["p10_lead_days"] is None
    assert s["false_tickets"] <= s["tickets"] == sum(s["tickets_by_family"].values())
    assert sum(s["false_tickets_by_family"].values()) == s["false_tickets"]
    assert 0 <= s["false_tickets_on_faulty_devices"] <= s["false_tickets"]
    device_years = 60 * 3 / DAYS_PER_YEAR
    assert s["device_years"] == pytest.approx(device_years, abs=1e-3)
    assert s["false_tickets_per_100_device_years"] == pytest.approx(
        100 * s["false_tickets"] / device_years, abs=0.01
    )
    # Vending: both restock arms ran and were counted.
    assert s["restock_visits"] > 0
    assert s["baseline_restock_visits"] > 0
    assert s["restock_orders"] > 0
    assert s["baseline_stockouts"] > 0
    prevented = 100 * (s["baseline_stockouts"] - s["stockouts"]) / s["baseline_stockouts"]
    assert s["stockouts_prevented_pct"] == pytest.approx(prevented, abs=0.05)
    assert s["baseline_stockout_slot_hours"] > 0
    assert 0 <= s["stockout_slot_hours"] <= s["stockouts"] * 3 * 24
    # Emails: at most one per ticket, only to customers with an address.
    assert 0 < s["customers_with_email"] < s["customers"]
    assert s["emails"] <= s["tickets"]
    per_month = s["emails"] / (s["customers"] * 3 / DAYS_PER_MONTH)
    assert s["emails_per_customer_month"] == pytest.approx(per_month, abs=1e-4)
    cov = s["eta_interval_coverage"]
    assert (cov is None) == (s["eta_intervals_scored"] == 0)
    assert cov is None or 0.0 <= cov <= 1.0


def test_seeded_runs_give_identical_json(quick_report, capsys):
    scores, out_dir = quick_report
    again, _ = _backtest_json(capsys, "--scenario", "quick")
    assert again == (out_dir / "scores.json").read_text(encoding="utf-8")
    assert json.loads(again) == scores


def test_the_seed_can_be_overridden(tmp_path, capsys):
    path = _scenario(tmp_path, "tiny", scenario={"days": 1},
                     fleet={"fridges": 6, "vending": 4, "vehicles": 6})  # fmt: skip
    _, seven = _backtest_json(capsys, "--scenario", str(path))
    _, eight = _backtest_json(capsys, "--scenario", str(path), "--seed", "8")
    assert (seven["seed"], eight["seed"]) == (7, 8)
    del seven["seed"], eight["seed"]
    assert seven != eight  # another fleet, other demand: other figures


def test_a_fleet_without_faults_has_no_detections_and_counts_every_ticket_as_false(
    tmp_path, capsys
):
    path = _scenario(tmp_path, "healthy", faults={"share": 0.0}, scenario={"days": 2})
    _, s = _backtest_json(capsys, "--scenario", str(path))
    assert s["faults"] == {}
    assert s["false_tickets"] == s["tickets"]
    assert s["false_tickets_on_faulty_devices"] == 0
    assert s["false_tickets_per_100_device_years"] == pytest.approx(
        100 * s["tickets"] / s["device_years"], abs=0.01
    )
    assert s["eta_interval_coverage"] is None
    assert s["eta_intervals_scored"] == 0
    # Stock-outs are not faults: the restock comparison still runs on a healthy fleet.
    assert s["baseline_restock_visits"] > 0


def test_report_has_readable_plots_and_an_escaped_page(quick_report):
    scores, out_dir = quick_report
    pngs = [
        "timelines.png",
        "lead_times.png",
        "precision_recall.png",
        "threshold.png",
        "restock.png",
    ]
    for name in pngs:
        path = out_dir / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            width, height = img.size
            assert width >= 600
            assert height >= 300
    page = (out_dir / "index.html").read_text(encoding="utf-8")
    for name in pngs:
        assert f'src="{name}"' in page
    for key in ("false_tickets_per_100_device_years", "stockouts_prevented_pct",
                "emails_per_customer_month", "eta_interval_coverage"):  # fmt: skip
        assert key in page
    for fault in scores["faults"]:
        assert f"<td>{fault}</td>" in page


def test_report_escapes_what_the_scenario_says(tmp_path, capsys):
    path = _scenario(
        tmp_path,
        "tiny",
        scenario={"description": "<script>alert(1)</script>", "days": 1},
        fleet={"fridges": 4, "vending": 2, "vehicles": 4},
    )
    out_dir = tmp_path / "report"
    assert main(["backtest", "--scenario", str(path), "--no-progress",
                 "--report", str(out_dir)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "false_tickets_per_100_device_years" in text
    page = (out_dir / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_bad_scenarios_exit_2_naming_the_key(tmp_path, capsys):
    bad = _scenario(tmp_path, "bad", fleet={"fridges": -1})
    assert main(["backtest", "--scenario", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "bad.toml: [fleet] fridges" in err
    assert main(["backtest", "--scenario", str(tmp_path / "nope.toml")]) == 2
    assert "no such scenario file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["backtest"])
    assert exited.value.code == 2


def test_an_unusable_report_directory_fails_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a directory", encoding="utf-8")
    code = main(["backtest", "--scenario", "realistic-month", "--report", str(blocker / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot create the report directory" in err
    assert "backtest realistic-month" not in err  # refused at once: no run, no progress


def test_a_fleet_without_vending_machines_has_no_restock_figures(tmp_path, capsys):
    path = _scenario(tmp_path, "fridges", scenario={"days": 1},
                     fleet={"fridges": 6, "vending": 0, "vehicles": 0})  # fmt: skip
    _, s = _backtest_json(capsys, "--scenario", str(path))
    assert s["devices"] == {"fridge": 6, "vending": 0, "tyres": 0}
    assert (s["stockouts"], s["baseline_stockouts"]) == (0, 0)
    assert s["stockouts_prevented_pct"] is None
    assert (s["restock_orders"], s["restock_visits"], s["baseline_restock_visits"]) == (0, 0, 0)
    assert all(f["kind"] == "fridge" for f in s["faults"].values())


def test_weekly_plus_keeps_the_route_and_orders_extra_visits_between_its_rounds(tmp_path, capsys):
    scenario = {"days": 4}
    fleet = {"fridges": 0, "vending": 12, "vehicles": 0, "vending_demand_scale": 4.0}
    path = _scenario(tmp_path, "plus", scenario=scenario, fleet=fleet,
                     restock={"route": "weekly-plus"})  # fmt: skip
    _, plus = _backtest_json(capsys, "--scenario", str(path))
    # Every round of the weekly route happens in the decision copy too, and the orders add to it.
    assert plus["restock_visits"] > plus["baseline_restock_visits"] > 0
    assert plus["restock_orders"] > 0
    assert plus["stockouts"] < plus["baseline_stockouts"]
    on_demand = _scenario(tmp_path, "demand", scenario=scenario, fleet=fleet)
    _, alone = _backtest_json(capsys, "--scenario", str(on_demand))
    assert alone["restock_visits"] <= alone["baseline_restock_visits"]


def test_seeds_are_scored_each_and_pooled(tmp_path, capsys):
    path = _scenario(tmp_path, "tiny", scenario={"days": 1},
                     fleet={"fridges": 6, "vending": 4, "vehicles": 6})  # fmt: skip
    _, both = _backtest_json(capsys, "--scenario", str(path), "--seeds", "8,9")
    _, eight = _backtest_json(capsys, "--scenario", str(path), "--seed", "8")
    _, nine = _backtest_json(capsys, "--scenario", str(path), "--seed", "9")
    assert both["runs"] == [eight, nine]  # each seed as if run alone
    pooled = both["pooled"]
    assert list(pooled) == [("seeds" if k == "seed" else k) for k in TOP_KEYS]
    assert pooled["seeds"] == [8, 9]
    for key in ("tickets", "false_tickets", "stockouts", "baseline_stockouts", "restock_orders",
                "restock_visits", "baseline_restock_visits", "customers", "emails"):  # fmt: skip
        assert pooled[key] == eight[key] + nine[key], key
    assert pooled["device_years"] == pytest.approx(eight["device_years"] + nine["device_years"])
    assert pooled["devices"] == eight["devices"]
    for name, fault in pooled["faults"].items():
        for key in ("injected", "failed", "detected", "detected_before_failure"):
            alone = [run["faults"].get(name, {}).get(key, 0) for run in (eight, nine)]
            assert fault[key] == sum(alone), (name, key)
    # shares of the pooled counts, not means of the runs' shares
    if pooled["baseline_stockouts"]:
        base = pooled["baseline_stockouts"]
        expected = round(100 * (base - pooled["stockouts"]) / base, 1)
        assert pooled["stockouts_prevented_pct"] == expected
    assert main(["backtest", "--scenario", str(path), "--seeds", "8,9", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["seed", "false_tickets", "eta_interval_coverage"]
    assert "pooled over the seeds" in text
    assert "(seeds 8, 9, 1 days" in text


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("8", "give two seeds or more"),
        ("8,x", "seeds are integers separated by commas"),
        ("8,8", "each seed once"),
    ],
)
def test_bad_seed_lists_exit_2_saying_why(seeds, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--scenario", "quick", "--seeds", seeds])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_seeds_refuse_a_seed_and_a_report(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--scenario", "quick", "--seed", "1", "--seeds", "2,3"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    code = main(["backtest", "--scenario", "quick", "--seeds", "2,3", "--report", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--report draws one run" in err
    assert "backtest quick" not in err  # refused before any run
    assert main(["backtest", "--scenario", "quick", "--seeds", f"1,{2**63}"]) == 2
    assert "seeds must be within [0, 2**63)" in capsys.readouterr().err


def test_pooled_scores_need_runs_of_one_scenario_each_seed_once():
    from dataclasses import replace

    from forewarn.backtest.metrics import pooled_score
    from forewarn.backtest.runner import run_backtest
    from simulators.scenario import load_scenario

    tiny = replace(load_scenario("quick"), days=0.25)
    run = run_backtest(tiny)
    with pytest.raises(ValueError, match="no run"):
        pooled_score([])
    with pytest.raises(ValueError, match="each seed once"):
        pooled_score([run, run])
    other = run_backtest(replace(tiny, seed=tiny.seed + 1, name="other"))
    with pytest.raises(ValueError, match="one scenario"):
        pooled_score([run, other])
