"""Scenario files: the shipped ones load, bad ones are refused naming the file and the key."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from simulators.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    build_fleet,
    load_scenario,
    parse_scenario,
)

QUICK = SCENARIO_DIR / "quick.toml"


def _quick_data() -> dict[str, dict[str, object]]:
    with QUICK.open("rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("name", ["quick", "realistic-month", "stress"])
def test_shipped_scenarios_load_by_name_and_by_path(name):
    by_name = load_scenario(name)
    by_path = load_scenario(SCENARIO_DIR / f"{name}.toml")
    assert by_name == by_path
    assert by_name.name == name
    assert by_name.n_steps >= 1
    assert by_name.fleet.total > 0


def test_quick_scenario_values():
    s = load_scenario("quick")
    assert s.start_ms == int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
    assert (s.days, s.dt_s, s.batch_steps, s.seed) == (3.0, 900.0, 4, 7)
    assert (s.fleet.fridges, s.fleet.vending, s.fleet.vehicles) == (24, 12, 24)
    assert s.n_steps == 3 * 96
    assert s.end_ms == s.start_ms + 3 * 86_400_000
    assert s.restock.visit_days == (0, 1, 2, 3, 4)
    assert (s.restock.visit_start_h, s.restock.visit_end_h) == (8, 17)


def test_build_fleet_has_exactly_the_devices_per_kind_and_is_seeded():
    s = load_scenario("quick")
    fleet = build_fleet(s)
    assert len(fleet.fridges.devices) == 24
    assert len(fleet.vending.devices) == 12
    assert len(fleet.tyres.devices) == 24
    again = build_fleet(s)
    assert again.devices() == fleet.devices()
    ts = s.step_ms(1)
    a = fleet.step(ts, s.dt_s)
    b = again.step(ts, s.dt_s)
    for x, y in zip(a, b, strict=True):
        assert x.channels == y.channels
        assert (x.values == y.values)[~(x.values != x.values)].all()


def test_a_date_means_midnight_utc():
    data = _quick_data()
    data["scenario"]["start"] = dt.date(2026, 2, 1)
    s = parse_scenario(data, "x.toml")
    assert s.start_ms == int(dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("table", "key", "value", "needle"),
    [
        ("fleet", "fridges", -3, "[fleet] fridges"),
        ("fleet", "fridges", 2.5, "[fleet] fridges"),
        ("fleet", "vending", True, "[fleet] vending"),
        ("faults", "share", 1.5, "[faults] share"),
        ("faults", "share", "lots", "[faults] share"),
        ("scenario", "dt_s", 0, "[scenario] dt_s"),
        ("scenario", "days", float("nan"), "[scenario] days"),
        ("scenario", "days", 400, "[scenario] days"),
        ("scenario", "seed", -1, "[scenario] seed"),
        ("scenario", "batch_steps", 0, "[scenario] batch_steps"),
        ("scenario", "name", 7, "[scenario] name"),
        ("scenario", "start", "2026-01-05", "[scenario] start"),
        ("scenario", "start", dt.datetime(2026, 1, 5), "needs a UTC offset"),  # noqa: DTZ001
        ("restock", "delay_h", -1, "[restock] delay_h"),
        ("restock", "visit_days", ["mon", "funday"], "[restock] visit_days"),
        ("restock", "visit_days", [], "[restock] visit_days"),
        ("restock", "visit_hours", [17, 8], "[restock] visit_hours"),
        ("restock", "visit_hours", [8, 25], "[restock] visit_hours"),
        ("restock", "route", "fortnightly", "[restock] route: must be one of on-demand, weekly"),
        ("restock", "route", 1, "[restock] route"),
        ("customers", "email_share", -0.1, "[customers] email_share"),
        ("fleet", "vending_demand_scale", 0, "[fleet] vending_demand_scale"),
        ("fleet", "fridge_variants", {"household": 1, "igloo": 1}, "unknown variant 'igloo'"),
        ("fleet", "fridge_variants", {"household": -1}, "[fleet] fridge_variants.household"),
        ("fleet", "fridge_variants", {"freezer": 0}, "positive sum"),
        ("fleet", "fridge_variants", [0.5, 0.5], "[fleet] fridge_variants"),
        ("faults", "weights", {"gremlins": 1}, "[faults] weights: unknown fault 'gremlins'"),
        ("faults", "weights", {"slow_leak": -2}, "[faults] weights.slow_leak"),
        ("faults", "weights", {}, "[faults] weights"),
    ],
)
def test_bad_values_name_the_file_and_the_key(table, key, value, needle):
    data = _quick_data()
    data[table][key] = value
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "bad.toml")
    assert str(err.value).startswith("bad.toml: ")
    assert needle in str(err.value)


def test_unknown_keys_and_tables_are_refused():
    data = _quick_data()
    data["fleet"]["fridgez"] = 3
    with pytest.raises(ScenarioError, match=r"bad\.toml: \[fleet\] unknown key 'fridgez'"):
        parse_scenario(data, "bad.toml")
    data = _quick_data()
    data["weather"] = {"rain": True}
    with pytest.raises(ScenarioError, match=r"unknown table \[weather\]"):
        parse_scenario(data, "bad.toml")
    data = _quick_data()
    data["fleet"] = 12
    with pytest.raises(ScenarioError, match=r"\[fleet\] must be a table"):
        parse_scenario(data, "bad.toml")


def test_missing_required_keys_and_empty_fleets_are_refused():
    data = _quick_data()
    del data["scenario"]["seed"]
    with pytest.raises(ScenarioError, match=r"\[scenario\] seed: missing"):
        parse_scenario(data, "bad.toml")
    data = _quick_data()
    data["fleet"] = {"fridges": 0}
    with pytest.raises(ScenarioError, match="no devices"):
        parse_scenario(data, "bad.toml")


def test_files_that_cannot_be_read(tmp_path: Path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.toml: not valid TOML"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match=r"no such scenario file \(shipped scenarios: quick"):
        load_scenario(tmp_path / "absent.toml")
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario("no-such-scenario")
    typo = tmp_path / "typo.toml"
    typo.write_text(QUICK.read_text(encoding="utf-8").replace("share =", "shares ="))
    with pytest.raises(ScenarioError, match=r"typo\.toml: \[faults\] unknown key 'shares'"):
        load_scenario(typo)


def test_fault_weights_and_fridge_variants_reach_the_fleet():
    data = _quick_data()
    data["faults"] = {"share": 1.0, "weights": {"refrigerant_leak": 1.0, "slow_leak": 2.0}}
    data["fleet"]["fridge_variants"] = {"freezer": 1.0}
    s = parse_scenario(data, "weights.toml")
    assert s.fault_weights == (("refrigerant_leak", 1.0), ("slow_leak", 2.0))
    assert s.fleet.fridge_variants == (0.0, 0.0, 1.0)
    fleet = build_fleet(s)
    assert fleet.fridges.book.has("refrigerant_leak").all()
    assert fleet.tyres.book.has("slow_leak").all()
    assert (fleet.vending.book.fault < 0).all()  # no vending fault has a weight: none planned
    assert {d.attributes["variant"] for d in fleet.fridges.devices} == {"freezer"}
