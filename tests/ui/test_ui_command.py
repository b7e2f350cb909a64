"""`visionops ui` without a browser: the server command line, addresses and the clear errors."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from visionops import ui
from visionops.cli import main


def test_server_command_uses_the_light_settings_and_our_store(tmp_path):
    argv, env = ui.server_command("sqlite:///x/mlruns/mlflow.db", "127.0.0.1", 5123, tmp_path / "artifacts")
    assert argv[1:4] == ["-m", "mlflow", "server"]
    options = dict(zip(argv[4::2], argv[5::2], strict=False))
    assert options["--backend-store-uri"] == "sqlite:///x/mlruns/mlflow.db"
    assert options["--host"] == "127.0.0.1" and options["--port"] == "5123" and options["--workers"] == "1"
    assert "--serve-artifacts" in argv
    assert argv[argv.index("--artifacts-destination") + 1] == (tmp_path / "artifacts").resolve().as_uri()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_loopback_and_browser_address():
    assert ui.is_loopback("127.0.0.1") and ui.is_loopback("localhost") and ui.is_loopback("::1")
    assert not ui.is_loopback("0.0.0.0") and not ui.is_loopback("192.168.1.5") and not ui.is_loopback("myhost")
    assert ui.url_for("127.0.0.1", 5000) == "http://127.0.0.1:5000"
    assert ui.url_for("0.0.0.0", 5000) == "http://127.0.0.1:5000"
    assert ui.url_for("::1", 5000) == "http://[::1]:5000"


def test_busy_port_is_a_clear_error_and_a_public_host_warns():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["ui", "--host", "0.0.0.0", "--port", str(port)])
    assert result.exit_code == 1
    assert "no authentication" in result.output
    assert f"port {port} on 0.0.0.0 is already in use" in result.output and "--port" in result.output


def test_a_remote_tracking_server_is_not_served_again(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    result = CliRunner().invoke(main, ["ui", "--port", "5999"])
    assert result.exit_code == 1
    assert "points to a tracking server (http://mlflow.example:5000)" in result.output
