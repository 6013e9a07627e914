"""The command line: edge with a simulated source into a real cloud, and start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud.config import load_settings
from cloud.errors import ConfigError
from cloud.service import CloudService
from forewarn.broker import MosquittoProcess

REPO = Path(__file__).resolve().parents[2]


def test_edge_with_a_simulated_source_feeds_the_cloud(broker, tmp_path):
    service = CloudService(load_settings(data_dir=tmp_path / "cloud", mqtt_url=broker.url))
    service.start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forewarn", "edge", "--kind", "tyres",
             "--device-id", "ty-424242", "--broker", broker.url, "--source", "sim:11",
             "--speed", "100000", "--outbox", str(tmp_path / "ty.db")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while service.pipeline.counters.readings_stored < 500 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "0 left in the outbox" in out
        readings = int(out.split("): ")[1].split(" readings")[0])
        assert service.wait_idle(timeout_s=30, quiet_s=1.0)
        assert service.pipeline.counters.readings_stored == readings
        assert sum(service.pipeline.counters.rejects_by_reason.values()) == 0
        info = service.directory.get("ty-424242")
        assert info is not None
        assert info.attributes["placard_kpa"]  # the birth carried the simulated vehicle
    finally:
        service.stop()


def test_an_unknown_sim_source_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "forewarn", "edge", "--kind", "fridge", "--device-id",
         "fr-000001", "--source", "sim:abc"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "sim:SEED" in proc.stderr


def test_a_missing_broker_binary_says_how_to_install_it():
    with pytest.raises(ConfigError, match="apt-get install mosquitto"):
        MosquittoProcess(binary="/nonexistent/mosquitto")


def test_demo_with_bad_options_exits_with_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "forewarn", "demo", "--devices", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "positive integer" in proc.stderr


def test_demo_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "forewarn", "demo", "--devices", "3", "--port", str(port),
             "--data-dir", str(tmp_path / "demo")],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 2
    assert f"port {port}" in proc.stderr
    assert "--headless" in proc.stderr


def test_cloud_says_so_when_the_broker_cannot_be_reached(tmp_path):
    from forewarn.broker import free_port

    env = {
        **os.environ,
        "FOREWARN_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "FOREWARN_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "forewarn", "cloud"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "cannot reach the MQTT broker" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_stops_the_interactive_demo_and_its_broker(tmp_path):
    from forewarn.broker import free_port

    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "forewarn", "demo", "--devices", "6", "--sim-days", "1",
         "--port", str(free_port()), "--data-dir", str(data)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "Ctrl-C stops" in line or not line:
                break
        assert any("Ctrl-C stops" in ln for ln in lines), "".join(lines)
        broker_conf = str(data / "broker" / "mosquitto.conf")
        assert _running(broker_conf)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert "readings_stored" in out  # the summary was printed when the simulation ended
        assert not _running(broker_conf)
    finally:
        if proc.poll() is None:
            proc.kill()


def _running(needle: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle.encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def test_every_registered_command_and_bench_parses_its_help():
    from forewarn.cli import BENCHES, COMMANDS, main

    for argv in [[name, "--help"] for name in COMMANDS] + [
        ["bench", name, "--help"] for name in BENCHES
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0, argv


def test_an_unknown_bench_target_is_a_usage_error(capsys):
    from forewarn.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "no-such-target"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_parsing_the_command_line_imports_no_heavy_library():
    """``forewarn --help`` must work on the base install (paho-mqtt only)."""
    code = (
        "import sys, forewarn.cli; forewarn.cli._parser(); "
        "print(','.join(m for m in ('numpy', 'scipy', 'fastapi', 'sqlalchemy', 'jinja2') "
        "if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    assert proc.stdout.strip() == ""
