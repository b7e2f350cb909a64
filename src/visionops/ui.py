"""``visionops ui``: the MLflow UI on this project's tracking store, with light settings.

``mlflow server`` with its defaults starts 4 uvicorn workers plus a job runner and huey consumers (about 3.3 GB
of memory); this starts 1 worker with job execution off (about 0.6 GB), on 127.0.0.1 unless told otherwise,
with the backend store of :func:`visionops.tracking.tracking_uri` (``<root>/mlruns/mlflow.db``) and uploads
through the UI stored under ``<root>/mlruns/artifacts``. Runs logged by the pipeline keep their absolute
artifact locations under ``mlruns/artifacts/<experiment>/`` and are read from there through the server.

The server runs in its own process group; Ctrl-C (or SIGTERM) stops the whole group and waits for it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
START_TIMEOUT_S = 90.0  # one worker answers /health in about 4 s on 2 cores; a cold first import takes longer


class UiError(RuntimeError):
    """The UI could not be started (port taken, store unusable, server exited)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_command(uri: str, host: str, port: int, artifacts: Path) -> tuple[list[str], dict[str, str]]:
    """``(argv, env)`` of the MLflow server: 1 worker, job execution off, artifacts under ``artifacts``."""
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
            "--port", str(port), "--workers", "1", "--serve-artifacts",
            "--artifacts-destination", artifacts.resolve().as_uri()]
    env = dict(os.environ)
    # The job runner and its huey consumers are what makes a default server heavy; the UI does not need them.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return argv, env


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as the server itself binds: a port left in TIME_WAIT by a stopped UI is free, a listening one is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def url_for(host: str, port: int) -> str:
    """Address to open in a browser (a wildcard bind is reached through 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


@dataclass
class UiServer:
    """A running MLflow UI: its address and process (stop it with :meth:`stop`)."""

    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM to the server's process group, SIGKILL after ``timeout`` s; returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def _wait_healthy(server: UiServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise UiError(f"the MLflow server exited with code {server.process.returncode} before answering "
                          "(its messages are above)")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    server.stop()
    raise UiError(f"the MLflow server did not answer {server.url}/health within {timeout:.0f} s")


def start_ui(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, root: Path | None = None,
             timeout: float = START_TIMEOUT_S, quiet: bool = False) -> UiServer:
    """Start the MLflow UI on the project store and wait until it answers; raises :class:`UiError`.

    The store and the experiments are created first (with absolute artifact locations), so a fresh clone shows
    the ``data``, ``sparse4d`` and ``detectnet_v2`` experiments instead of an empty page.
    """
    from visionops import tracking  # noqa: PLC0415

    uri = tracking.tracking_uri(root)
    if uri.startswith(("http://", "https://")):
        raise UiError(f"MLFLOW_TRACKING_URI points to a tracking server ({uri}): open it in the browser; "
                      "unset MLFLOW_TRACKING_URI to browse this repository's mlruns/ store")
    if not _port_free(host, port):
        raise UiError(f"port {port} on {host} is already in use (another MLflow UI?): pass --port")
    tracking.setup(root)
    artifacts = tracking.mlruns_dir(root) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv, env = server_command(uri, host, port, artifacts)
    output = subprocess.DEVNULL if quiet else None
    # Its own session: Ctrl-C in the terminal reaches only us, and we stop the server's whole group (uvicorn
    # worker included) ourselves, so no orphan keeps the port.
    process = subprocess.Popen(argv, env=env, start_new_session=True, stdout=output, stderr=output)
    server = UiServer(url_for(host, port), process)
    try:
        _wait_healthy(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_ui(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **kwargs) -> Iterator[UiServer]:
    """:func:`start_ui` as a context manager that always stops the server."""
    server = start_ui(host, port, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@click.command("ui")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. Anything but loopback exposes the UI (no authentication) to the network.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
def ui(host: str, port: int) -> None:
    """Open the MLflow UI on this project's runs (mlruns/mlflow.db); Ctrl-C stops it.

    One experiment per model family; each pipeline run holds the headline params and metrics, its stages are
    child runs. Tick two pipeline runs and press Compare to put two variants side by side.
    """
    if not is_loopback(host):
        click.secho(f"Warning: listening on {host}: the MLflow UI has no authentication, anyone who can reach "
                    f"port {port} can read and delete runs.", fg="yellow", err=True)
    from visionops import tracking  # noqa: PLC0415

    click.echo(f"Starting the MLflow UI on {tracking.tracking_uri()} ...")
    try:
        server = start_ui(host, port)
    except UiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"MLflow UI: {server.url}  (Ctrl-C stops it)")

    def _terminate(signum, frame):  # SIGTERM (e.g. from a supervisor) stops cleanly like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        click.echo("\nStopping the MLflow UI ...")
        server.stop()
        click.echo("Stopped.")
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    raise click.ClickException(f"the MLflow server exited with code {code}")
