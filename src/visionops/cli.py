"""The ``visionops`` command line.

Every heavy library (torch, lightning, mlflow, h5py, av) is imported inside the command that needs it,
so ``visionops --help`` answers instantly. Global options apply to every command::

    visionops [--params params.yaml] [-S key.path=value ...] COMMAND ...
"""

from __future__ import annotations

import importlib
import json
import shlex
import sys
from pathlib import Path

import click

LAZY_COMMANDS = {
    # name -> "module:attribute" of a click command defined in a light module
    "evaluate": "visionops.evaluation.commands:evaluate",
    "detectnet": "visionops.pipeline.detectnet_commands:detectnet",
    "infer": "visionops.inference.commands:infer",
    "export": "visionops.export.commands:export",
    "profile": "visionops.profiling.commands:profile",
    "sweep": "visionops.sweep.commands:sweep",
    "ui": "visionops.ui:ui",
}


class LazyGroup(click.Group):
    """A click group whose extra subcommands are imported only when used (or listed by --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module_name, attr = LAZY_COMMANDS[name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and module_name.startswith(exc.name):
                    return None  # that part of visionops is not installed in this build
                raise
            self.add_command(getattr(module, attr), name)
        return super().get_command(ctx, name)


def _load_params(ctx: click.Context):
    """Params of the current invocation, with -S overrides; ConfigError -> a clean CLI error."""
    from visionops.config import ConfigError, load_params  # noqa: PLC0415

    obj = ctx.find_root().obj
    try:
        return load_params(obj["params_file"], obj["overrides"])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--params", "params_file", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="Parameters file (the single source of truth of the pipeline).")
@click.option("-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a parameter by dotted key, as `dvc exp run -S` (value parsed as YAML). Repeatable.")
@click.version_option(package_name="visionops")
@click.pass_context
def main(ctx: click.Context, params_file: str, overrides: tuple[str, ...]) -> None:
    """visionops: reproducible training, pruning, export and evaluation of Sparse4D and DetectNet_v2.

    The pipeline itself runs with `dvc repro` (see dvc.yaml); these commands run single steps, inspect
    data and parameters, and manage experiments. Results are tracked in MLflow (mlruns/mlflow.db).
    """
    ctx.ensure_object(dict)
    ctx.obj.update(params_file=params_file, overrides=list(overrides))


# --------------------------------------------------------------------------------------------------
# params
# --------------------------------------------------------------------------------------------------


@main.group()
def params() -> None:
    """Inspect and check parameters."""


@params.command("show")
@click.argument("section", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.pass_context
def params_show(ctx: click.Context, section: str | None, as_json: bool) -> None:
    """Print the effective parameters (file + -S overrides + defaults), or one SECTION (dotted)."""
    import yaml  # noqa: PLC0415

    data = _load_params(ctx).model_dump(mode="json")
    if section:
        for part in section.split("."):
            if not isinstance(data, dict) or part not in data:
                allowed = ", ".join(data) if isinstance(data, dict) else "(a value)"
                raise click.ClickException(f"no section {section!r}; allowed at this level: {allowed}")
            data = data[part]
    click.echo(json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False).rstrip())


@params.command("check")
@click.pass_context
def params_check(ctx: click.Context) -> None:
    """Validate the parameters file; exit 1 with every bad key if it is invalid."""
    from visionops.config import digest  # noqa: PLC0415

    loaded = _load_params(ctx)
    click.echo(f"{ctx.find_root().obj['params_file']}: OK (digest {digest(loaded)})")


@params.command("preset")
@click.argument("name", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the presets and exit.")
@click.option("--print-overrides", is_flag=True,
              help="Print the preset as -S arguments (for `dvc exp run`) instead of writing the params file.")
@click.pass_context
def params_preset(ctx: click.Context, name: str | None, list_only: bool, print_overrides: bool) -> None:
    """Switch to a named preset (e.g. dashcamnet) by rewriting its keys in the params file.

    Comments and order are kept and only the preset's keys change, so `dvc repro` then re-runs just the
    stages that read them. Run it as an experiment instead, leaving params.yaml as it is:

        dvc exp run $(visionops params preset dashcamnet --print-overrides)
    """
    from visionops.config import ConfigError  # noqa: PLC0415
    from visionops.config.presets import PRESETS, apply_preset, preset_overrides  # noqa: PLC0415

    if list_only or not name:
        for key, preset in PRESETS.items():
            click.echo(f"{key:14s} {preset.description}")
        return
    try:
        if print_overrides:
            click.echo(" ".join(f"-S {shlex.quote(item)}" for item in preset_overrides(name)))
            return
        params_file = ctx.find_root().obj["params_file"]
        changes = apply_preset(name, params_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not changes:
        click.echo(f"{params_file}: already at preset {name}")
    for key, (old, new) in changes.items():
        click.echo(f"{key}: {old!r} -> {new!r}")


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Raw MTMC 2025 data: render the synthetic warehouse, download, validate, convert, inspect OVPKL."""


@data.command("synth")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: data.raw_dir). Written atomically; replaced if it exists.")
@click.pass_context
def data_synth(ctx: click.Context, out_dir: str | None) -> None:
    """Render the synthetic warehouse scenes of data.synthetic into OUT/<split>/<Scene>/ (no MLflow run).

    Example: visionops -S data.synthetic.frames=60 -S data.synthetic.cameras=6 data synth --out /tmp/wh
    """
    from visionops.data.download import run_download  # noqa: PLC0415

    loaded = _load_params(ctx)
    synthetic_only = loaded.data.model_copy(update={"source": "synthetic"})
    target = Path(out_dir or loaded.data.raw_dir)
    manifest = run_download(synthetic_only, target, progress=lambda m: click.echo(f"[synth] {m}"))
    _echo_manifest(manifest, target)


@data.command("download")
@click.pass_context
def data_download(ctx: click.Context) -> None:
    """Run the download stage for data.source (synthetic | huggingface | local), tracked in MLflow.

    This is what `dvc repro download` runs. For the real dataset:
    visionops -S data.source=huggingface -S 'data.huggingface.scenes=[Warehouse_000]' data download
    """
    from visionops.data.download import DownloadError  # noqa: PLC0415
    from visionops.pipeline import download  # noqa: PLC0415

    try:
        download.run(_load_params(ctx), echo=click.echo)
    except DownloadError as exc:
        raise click.ClickException(str(exc)) from None


@data.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--decode", is_flag=True, help="Decode every video frame (catches corrupt streams; slow).")
@click.option("--require-gt/--no-require-gt", default=None,
              help="Treat a missing ground_truth.json as an error (default: yes for train/ and val/ scenes).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the reports as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only print problems and the summary.")
def data_validate(paths: tuple[str, ...], decode: bool, require_gt: bool | None, json_out: str | None,
                  quiet: bool) -> None:
    """Check raw scene folders: every camera has video, calibration (and depth); frame counts agree;
    GT cameras exist; cameraMatrix == K @ extrinsic. PATHS may be scenes or roots holding <split>/<Scene>.

    Exits 1 if any scene has errors; each error names the file, key and frame.
    """
    from visionops import atomic  # noqa: PLC0415
    from visionops.data.raw import find_scenes  # noqa: PLC0415
    from visionops.data.validate import validate_scene  # noqa: PLC0415

    scenes = [scene for path in paths for scene in find_scenes(path)]
    if not scenes:
        raise click.ClickException(f"no scene folders (with videos/ or calibration.json) under {', '.join(paths)}")
    reports = []
    for scene in scenes:
        needs_gt = require_gt if require_gt is not None else scene.parent.name in ("train", "val")
        report = validate_scene(scene, decode=decode, require_gt=needs_gt)
        reports.append(report)
        status = click.style("OK", fg="green") if report.ok else click.style("FAILED", fg="red")
        if not quiet or not report.ok:
            click.echo(f"{status} {scene} ({len(report.cameras)} cameras, {report.frames} frames, "
                       f"{report.gt_objects} GT rows)")
        for finding in report.findings:
            if not quiet or finding.severity == "error":
                click.echo(f"  {finding}")
    if json_out:
        atomic.write_json(json_out, [r.to_dict() for r in reports])
    failed = sum(not r.ok for r in reports)
    click.echo(f"{len(reports) - failed} of {len(reports)} scenes valid")
    if failed:
        sys.exit(1)


@data.command("convert")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs).")
@click.pass_context
def data_convert(ctx: click.Context, no_progress: bool) -> None:
    """Run the convert stage: data.raw_dir -> data/frames (HDF5), data/ovpkl, data/kitti, data/anchors.

    This is what `dvc repro convert` runs, tracked in MLflow (experiment `data`). Outputs are replaced
    only when the whole conversion succeeds. Example, 10 fps frames at half size:
    visionops -S convert.fps=10 -S 'convert.resize=[480, 270]' data convert
    """
    from visionops.data.convert import ConversionError  # noqa: PLC0415
    from visionops.pipeline import convert  # noqa: PLC0415

    try:
        convert.run(_load_params(ctx), echo=click.echo, show_progress=not no_progress)
    except ConversionError as exc:
        raise click.ClickException(str(exc)) from None


@data.command("ovpkl")
@click.argument("path", type=click.Path(exists=True))
@click.option("--frame", type=int, default=None, help="Also print the info of this frame_idx.")
def data_ovpkl(path: str, frame: int | None) -> None:
    """Summarise an OVPKL file (or a folder of them): metadata, frames, cameras, boxes per class.

    Loads through the restricted unpickler: a pickle holding anything but numpy arrays and builtin
    containers is refused.
    """
    from collections import Counter  # noqa: PLC0415

    from visionops.data.ovpkl import load_ovpkl  # noqa: PLC0415

    files = sorted(Path(path).glob("**/*.pkl")) if Path(path).is_dir() else [Path(path)]
    if not files:
        raise click.ClickException(f"{path}: no *.pkl files")
    for file in files:
        try:
            content = load_ovpkl(file)
        except Exception as exc:  # noqa: BLE001 - every load failure is reported the same way
            raise click.ClickException(str(exc)) from None
        meta, infos = content["metadata"], content["infos"]
        classes = Counter(str(n) for info in infos for n in info.get("gt_names", []))
        cams = sorted({c for info in infos for c in info["cams"]})
        click.echo(f"{file}: split {meta.get('split_type')}, version {meta.get('version')}, "
                   f"{len(infos)} frames, {len(cams)} cameras, origin {meta.get('bev_origin')}")
        click.echo(f"  boxes: {sum(classes.values())} ({', '.join(f'{k} {v}' for k, v in sorted(classes.items()))})")
        if frame is not None:
            for info in infos:
                if info["frame_idx"] == frame:
                    for key, value in info.items():
                        shown = list(value) if key == "cams" else value
                        click.echo(f"  {key}: {shown}")


def _echo_manifest(manifest: dict, target: Path) -> None:
    for scene in manifest["scenes"]:
        click.echo(f"  {scene['split']}/{scene['name']}: {len(scene['cameras'])} cameras x {scene['frames']} frames, "
                   f"{scene['gt_objects']} GT rows")
    click.echo(f"{len(manifest['scenes'])} scenes, {manifest['bytes'] / 1e6:.1f} MB -> {target}")


if __name__ == "__main__":  # pragma: no cover
    main()
