"""Fitting the vending demand model: figures from a small sales file, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.calibration import CalibrationError, fit, main, read_sales

HEADER = "Location,Machine,Category,TransDate,Type,RCoil,RPrice,RQty\n"


def write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def sale(day: str, coil: str = "110", qty: int = 1, kind: str = "Credit") -> str:
    return f'GuttenPlans,M1,Food,"{day}",{kind},{coil},1.5,{qty}'


def test_fit_counts_rates_zero_days_and_weekdays(tmp_path: Path) -> None:
    # Two weeks, Monday 3 to Sunday 16 January 2022; coil 110 sells every Monday, coil 111 once.
    rows = [sale("Monday, January 3, 2022"), sale("Monday, January 10, 2022", qty=2)]
    rows += [sale("Sunday, January 16, 2022", coil="111", kind="Cash")]
    figures = fit(read_sales(write(tmp_path / "s.csv", rows)))
    assert figures["source"] == {
        "rows": 3, "items": 4, "machines": 1, "slots": 2,
        "first_day": "2022-01-03", "last_day": "2022-01-16",
    }  # fmt: skip
    assert figures["slot_rate_per_day"]["mean"] == pytest.approx((3 / 14 + 1 / 14) / 2, abs=1e-4)
    assert figures["zero_day_share"]["mean"] == pytest.approx((12 / 14 + 13 / 14) / 2, abs=1e-4)
    office = figures["weekday_profile"]["office"]
    assert office[0] == pytest.approx(3 / (4 / 7), abs=1e-3)  # Mondays: 3 items in 2 Mondays
    assert office[1:6] == [0.0] * 5
    assert figures["card_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["price_levels_cents"] == {"150": 1.0}
    assert figures["hour_profile"] is None


def test_bad_files_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("Machine\nx\n")
    with pytest.raises(CalibrationError, match="missing column"):
        read_sales(tmp_path / "a.csv")
    with pytest.raises(CalibrationError, match=r"b.csv:2: bad TransDate 'yesterday'"):
        read_sales(write(tmp_path / "b.csv", [sale("yesterday")]))
    bad_qty = 'GuttenPlans,M1,Food,"Monday, January 3, 2022",Cash,110,1.5,many'
    with pytest.raises(CalibrationError, match=r"c.csv:2: bad RQty 'many'"):
        read_sales(write(tmp_path / "c.csv", [bad_qty]))
    with pytest.raises(CalibrationError, match="no sales rows"):
        read_sales(write(tmp_path / "d.csv", []))
    with pytest.raises(CalibrationError, match="cannot read"):
        read_sales(tmp_path / "absent.csv")


def test_command_line_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "s.csv", [sale("Monday, January 3, 2022")])
    out = tmp_path / "fit.json"
    assert main([str(source), "--write", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weekday profile office: mon 7.00" in printed
    assert '"slot_rate_per_day"' in out.read_text(encoding="utf-8")
    assert main([str(tmp_path / "absent.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
