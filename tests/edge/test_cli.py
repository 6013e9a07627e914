"""``forewarn edge``: argument errors, input errors, and a full replay against the broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.cli import EXIT_NOT_DRAINED, EXIT_OK, EXIT_USAGE, main
from forewarn.broker import MosquittoProcess, free_port

from .conftest import Observer, seqs, validate


def csv_file(tmp_path: Path, rows: int = 30, extra: str = "") -> Path:
    lines = ["ts_ms,cabinet_c,compressor_on" + extra]
    lines += [f"{1_000_000 + i * 60_000},{4 + i / 100},0.5" for i in range(rows)]
    path = tmp_path / "fridge.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def base_args(tmp_path: Path, source: Path, broker_url: str) -> list[str]:
    return [
        "--kind",
        "fridge",
        "--device-id",
        "fr-0007",
        "--broker",
        broker_url,
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
        "--source",
        f"csv:{source}",
    ]


@pytest.mark.integration
def test_a_csv_is_replayed_to_the_broker_and_summarised(
    broker: MosquittoProcess,
    observe: Callable[..., Observer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    observer = observe()
    args = base_args(tmp_path, csv_file(tmp_path), broker.url)
    assert main([*args, "--speed", "6000", "--batch-rows", "8"]) == EXIT_OK
    telemetry = observer.wait_count("telemetry", 4)
    assert seqs(telemetry) == [0, 1, 2, 3]  # 8 + 8 + 8 + 6 rows
    assert sum(len(m.payload["ts_ms"]) for m in telemetry) == 30
    for message in telemetry:
        validate("telemetry", message.payload)
    # The shutdown status follows the last telemetry: wait for it rather than race it.
    statuses = observer.wait_for("status", lambda found: any("reason" in m.payload for m in found))
    assert statuses[-1].payload["reason"] == "shutdown"
    summary = capsys.readouterr().out
    assert "30 readings" in summary
    assert "4 acknowledged" in summary
    assert "0 left in the outbox" in summary


def test_an_unreachable_broker_leaves_the_messages_in_the_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = base_args(tmp_path, csv_file(tmp_path, rows=3), f"mqtt://127.0.0.1:{free_port()}")
    assert main([*args, "--speed", "6000", "--drain-timeout", "0.2"]) == EXIT_NOT_DRAINED
    assert "1 left in the outbox" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ts_ms,cabinet_c\n1000,warm\n", "line 2, column 'cabinet_c': 'warm' is not a number"),
        ("ts_ms,fl.pressure_kpa\n1000,240\n", "'fl.pressure_kpa' is not a fridge channel"),
        ("when,cabinet_c\n1000,4\n", "no time column"),
    ],
)
def test_bad_input_files_stop_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(content, encoding="utf-8")
    assert main(base_args(tmp_path, source, "mqtt://127.0.0.1:1")) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-rows", "0"], "must be 1..720"),
        (["--batch-rows", "many"], "is not an integer"),
        (["--speed", "-2"], "must be a positive number"),
        (["--rate", "fast"], "is not a number"),
        (["--kind", "toaster"], "invalid choice"),
        (["--device-id", "NO"], "must match"),
        (["--source", "kafka:topic"], "unknown source"),
        (["--source", "nocolon"], "looks like csv:FILE"),
    ],
)
def test_bad_arguments_exit_with_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = base_args(tmp_path, csv_file(tmp_path), "mqtt://127.0.0.1:1883")
    with pytest.raises(SystemExit) as caught:
        main([*args, *extra])
    assert caught.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://example.com", "mqtt://", "mqtt://host:notaport"])
def test_a_bad_broker_url_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert main(base_args(tmp_path, csv_file(tmp_path), url)) == EXIT_USAGE
    assert "--broker" in capsys.readouterr().err
