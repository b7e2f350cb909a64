"""Fixtures of the sweep tests: micro data for both models, micro params, and a real PostgreSQL server.

Training runs single-threaded (see tests/training/conftest.py: OpenMP threads competing on the shared 2-core
machine made tiny ops far slower); worker processes get one thread each from the runner.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def kitti_root(tmp_path) -> Path:
    """A repository root with the toy KITTI set in data/kitti/{train,val} (4 + 2 images)."""
    from detectnet_factories import toy_kitti  # noqa: PLC0415

    toy_kitti(tmp_path / "data" / "kitti" / "train", count=4, seed=0)
    toy_kitti(tmp_path / "data" / "kitti" / "val", count=2, seed=1)
    return tmp_path


@pytest.fixture(scope="session")
def _sparse4d_data(tmp_path_factory) -> Path:
    """data/{frames,ovpkl,anchors} of one train (6 frames) and one val (4 frames) micro scene, converted once."""
    from convert_factories import convert_params, run_conversion  # noqa: PLC0415
    from factories import make_scene  # noqa: PLC0415

    root = tmp_path_factory.mktemp("sweep_s4d")
    make_scene(root / "raw" / "train" / "Warehouse_000", frames=6)
    make_scene(root / "raw" / "val" / "Warehouse_001", frames=4)
    run_conversion(root / "raw", root / "converted", convert_params(bev_groups={"mode": "all"}), num_anchor=8)
    return root / "converted" / "data"


@pytest.fixture
def sparse4d_root(_sparse4d_data, tmp_path) -> Path:
    """A fresh repository root whose data/ links to the shared converted micro data (read-only for trials)."""
    (tmp_path / "data").symlink_to(_sparse4d_data, target_is_directory=True)
    return tmp_path


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    """Folder holding initdb and pg_ctl: Debian's /usr/lib/postgresql/<version>/bin (newest), else PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").is_file():
        return Path(found).parent
    return None


def _as_user() -> tuple[list[str], str | None]:
    """Command prefix that drops root (initdb refuses to run as root) and the user it switches to."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            if shutil.which("runuser"):
                return ["runuser", "-u", name, "--"], name
            return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"], name
    pytest.fail("running as root without a 'postgres' or 'nobody' user to start PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 (trust auth, fsync off) with an empty database ``optuna``;
    yields its SQLAlchemy URL (``postgresql+psycopg2://``)."""
    import psycopg2  # noqa: PLC0415

    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
                    "install Debian's postgresql package (.ci/system-deps.sh does)")
    prefix, user = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="visionops-pg-"))  # not pytest's tmp: that one is private to root
    if user:
        shutil.chown(folder, user=user)
    data, port = folder / "data", _free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"], **run)
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                        "-w", "-t", "60", "-o", options, "start"], **run)
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE optuna")
        connection.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    except subprocess.CalledProcessError as exc:
        log = (folder / "server.log").read_text() if (folder / "server.log").is_file() else ""
        pytest.fail(f"starting PostgreSQL failed: {exc.cmd}\n{exc.stdout}\n{exc.stderr}\n{log}")
    finally:
        if (data / "postmaster.pid").is_file():
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
