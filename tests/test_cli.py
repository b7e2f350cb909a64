import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from visionops.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_commands_without_importing_heavy_libraries():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from visionops.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "heavy = ('torch', 'lightning', 'mlflow', 'h5py', 'av', 'trackeval', 'numpy')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "data" in out and "params" in out
    assert "HEAVY []" in out


def test_data_help_names_subcommands():
    result = CliRunner().invoke(main, ["data", "--help"])
    assert result.exit_code == 0
    for name in ("synth", "download", "validate"):
        assert name in result.output


def test_params_show_with_override(monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["-S", "data.synthetic.frames=42", "params", "show", "data.synthetic"])
    assert result.exit_code == 0, result.output
    assert "frames: 42" in result.output


def test_params_check_reports_bad_override(monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["-S", "data.synthetic.framez=3", "params", "check"])
    assert result.exit_code == 1
    assert "unknown key data.synthetic.framez" in result.output


def test_params_show_unknown_section(monkeypatch):
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["params", "show", "data.nope"])
    assert result.exit_code == 1 and "allowed at this level" in result.output
