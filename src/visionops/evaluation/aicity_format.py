"""AI City 2025 Track 1 track files: strict reader, writer, and GT rows from a raw scene folder.

A track file (submission or GT) has one detection per line, 11 fields separated by single spaces::

    scene_id class_id object_id frame_id x y z w l h yaw

ints for the first four, floats (metres, radians) for the rest. In memory a file is a float64 array of
shape (N, 11) in that column order ("rows"); ids and frames are exact in float64.

The strict reader rejects what the official evaluator rejects (wrong field count from ``split(" ")``,
hence double or trailing spaces; non-numeric fields; unknown scene or class ids) plus what would make it
crash or score garbage (non-finite numbers, negative frames, the same object twice in one frame). The
permissive reader also accepts any whitespace, blank lines and integer fields written as ``3.0``, and
says what it fixed.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from visionops.data.schema import CLASS_NAMES_2025

NUM_FIELDS = 11
COLUMNS: tuple[str, ...] = (
    "scene_id",
    "class_id",
    "object_id",
    "frame_id",
    "x",
    "y",
    "z",
    "width",
    "length",
    "height",
    "yaw",
)
COL_SCENE, COL_CLASS, COL_ID, COL_FRAME = 0, 1, 2, 3
BOX_COLUMNS = slice(4, 11)
"""Columns of the box ``[x, y, z, w, l, h, yaw]`` in a row."""

CLASS_NAMES: tuple[str, ...] = CLASS_NAMES_2025
"""The 2025 classes; the index is the class id."""
CLASS_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

SCENE_IDS: dict[str, int] = {f"Warehouse_{i:03d}": i for i in range(21)} | {"Lab_000": 22, "Hospital_000": 23}
"""Scene folder name -> scene id of the 2025 dataset (train 0-14, val 15, 16, 22, 23, test 17-20)."""
KNOWN_SCENE_IDS: frozenset[int] = frozenset(SCENE_IDS.values())

NUM_FRAMES = 9000
"""Frames per scene that the official evaluator scores: frame ids in [0, NUM_FRAMES)."""

_MAX_NOTE_LINES = 5  # line numbers listed per kind of fix before "..."
_INT_PATTERN = re.compile(r"[+-]?\d+")


class TrackFileError(ValueError):
    """A track file (or array of rows) breaks the AI City format.

    Attributes:
        source: file name (or a label for in-memory data).
        line: 1-based line number, or None when the problem is not one line.
        field: name of the offending field, or None.
    """

    def __init__(self, source: str, line: int | None, field: str | None, message: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = source if line is None else f"{source}, line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


def _parse_int(text: str, permissive: bool) -> tuple[int | None, bool]:
    """Parse an integer field. Returns (value or None, whether a permissive fix was needed)."""
    # Python's int() also accepts "1_000" and surrounding whitespace; the format does not.
    if _INT_PATTERN.fullmatch(text):
        return int(text), False
    if permissive:
        try:
            value = float(text)
        except ValueError:
            return None, False
        if math.isfinite(value) and value.is_integer():
            return int(value), True
    return None, False


class _Notes:
    """Collects permissive-mode fixes as (kind -> line numbers) and renders them as sentences."""

    def __init__(self) -> None:
        self.lines: dict[str, list[int]] = {}

    def add(self, kind: str, line: int) -> None:
        self.lines.setdefault(kind, []).append(line)

    def render(self, source: str) -> list[str]:
        out = []
        for kind, lines in self.lines.items():
            shown = ", ".join(str(n) for n in lines[:_MAX_NOTE_LINES])
            more = f" and {len(lines) - _MAX_NOTE_LINES} more" if len(lines) > _MAX_NOTE_LINES else ""
            out.append(f"{source}: {kind} on {len(lines)} line(s) ({shown}{more})")
        return out


def parse_tracks(text: str, source: str = "<tracks>", permissive: bool = False) -> tuple[np.ndarray, list[str]]:
    """Parse the text of an AI City track file.

    Args:
        text: file content.
        source: name used in error messages and notes.
        permissive: accept any whitespace, blank lines and integer fields written as floats.

    Returns:
        rows (N, 11) float64 in file order, and the permissive fixes as human-readable notes
        (always empty in strict mode).

    Raises:
        TrackFileError: naming the source, line and field of the first violation.
    """
    rows = _parse_fast(text)
    if rows is not None:
        validate_rows(rows, source, known_scenes=True)
        return rows, []
    return _parse_slow(text, source, permissive)


_LEADING_INTS = re.compile(r"\d+ \d+ \d+ \d+ ", re.ASCII)


def _parse_fast(text: str) -> np.ndarray | None:
    """Vectorised parse of a clean file (about 3x faster than :func:`_parse_slow`), or None.

    Accepts only text that the line-by-line parser accepts with the same values and no notes: exactly
    10 single spaces per line and none at either end, ASCII digits in the four integer fields, numbers
    that numpy's C parser reads. Anything else returns None, and the slow parser then finds the error or
    applies the fixes.
    """
    # Substring tests, not a multiline regex: a regex anchored with ^ or $ is tried at every character.
    if not text or "\r" in text or "  " in text or "\n " in text or " \n" in text:
        return None
    if text[0] in " \ufeff" or text.rstrip("\n").endswith(" "):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if any(line.count(" ") != NUM_FIELDS - 1 for line in lines) or not all(map(_LEADING_INTS.match, lines)):
        return None
    try:
        # comments=None: "#" must be an error, not a comment.
        return np.loadtxt(io.StringIO(text), delimiter=" ", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None


def _parse_slow(text: str, source: str, permissive: bool) -> tuple[np.ndarray, list[str]]:
    """Line-by-line parse with exact error locations and the permissive fixes; see :func:`parse_tracks`."""
    notes = _Notes()
    if text.startswith("\ufeff"):
        if not permissive:
            raise TrackFileError(source, 1, None, "starts with a UTF-8 byte-order mark (use --permissive)")
        text = text[1:]
        notes.add("removed a UTF-8 byte-order mark", 1)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line

    values: list[list[float]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            if permissive:
                notes.add("removed a Windows line ending (CR)", number)
            line = line[:-1]
        if not line.strip():
            if not permissive:
                raise TrackFileError(source, number, None, "blank line (use --permissive to skip blank lines)")
            notes.add("skipped a blank line", number)
            continue
        parts = line.split(" ")
        if len(parts) != NUM_FIELDS or "" in parts:
            if not permissive:
                raise _field_count_error(source, number, line, parts)
            fixed = line.split()
            if len(fixed) != NUM_FIELDS:
                raise TrackFileError(
                    source, number, None, f"expected {NUM_FIELDS} fields ({' '.join(COLUMNS)}), got {len(fixed)}"
                )
            notes.add("normalised whitespace (tabs, repeated, leading or trailing spaces)", number)
            parts = fixed
        row: list[float] = []
        for col, part in enumerate(parts):
            if col < 4:
                value, fixed_int = _parse_int(part, permissive)
                if value is None:
                    raise TrackFileError(source, number, COLUMNS[col], f"expected an integer, got {part!r}")
                if fixed_int:
                    notes.add(f"read an integer written as a float in {COLUMNS[col]}", number)
                row.append(float(value))
            else:
                try:
                    row.append(float(part))
                except ValueError:
                    raise TrackFileError(source, number, COLUMNS[col], f"expected a number, got {part!r}") from None
        values.append(row)
        line_numbers.append(number)

    rows = np.asarray(values, dtype=np.float64).reshape(-1, NUM_FIELDS)
    validate_rows(rows, source, line_numbers=np.asarray(line_numbers, dtype=np.int64), known_scenes=True)
    return rows, notes.render(source)


def _field_count_error(source: str, number: int, line: str, parts: list[str]) -> TrackFileError:
    """Explain why ``line.split(" ")`` did not give exactly 11 non-empty fields."""
    if "\t" in line:
        reason = "contains a tab; fields must be separated by single spaces"
    elif line != line.strip(" "):
        reason = "has a leading or trailing space"
    elif "" in parts:
        reason = "has two spaces in a row; fields must be separated by single spaces"
    else:
        reason = f"expected {NUM_FIELDS} fields ({' '.join(COLUMNS)}), got {len(parts)}"
    if "\t" in line or "" in parts:
        reason += " (use --permissive to normalise whitespace)"
    return TrackFileError(source, number, None, reason)


def validate_rows(
    rows: np.ndarray,
    source: str = "<rows>",
    line_numbers: np.ndarray | None = None,
    known_scenes: bool = False,
) -> np.ndarray:
    """Check an (N, 11) array of rows; return it as float64.

    Checks: shape; finite numbers; integral ids and frames; class ids 0..5; frame >= 0; no object twice
    in one frame of a (scene, class); with ``known_scenes``, scene ids of the 2025 table only.

    Args:
        rows: (N, 11) rows.
        source: name used in error messages.
        line_numbers: (N,) line number of each row, for messages; row index + 1 when None.
        known_scenes: also require scene ids from :data:`KNOWN_SCENE_IDS`.

    Raises:
        TrackFileError: for the first offending row.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return rows.reshape(0, NUM_FIELDS)
    if rows.ndim != 2 or rows.shape[1] != NUM_FIELDS:
        raise TrackFileError(source, None, None, f"expected an (N, {NUM_FIELDS}) array, got shape {rows.shape}")
    if line_numbers is None:
        line_numbers = np.arange(1, len(rows) + 1)

    def fail(mask: np.ndarray, col: int, message: str) -> None:
        bad = np.nonzero(mask)[0]
        if len(bad):
            i = bad[0]
            raise TrackFileError(source, int(line_numbers[i]), COLUMNS[col], message.format(v=rows[i, col]))

    finite = np.isfinite(rows)
    if not finite.all():
        i, col = np.argwhere(~finite)[0]
        raise TrackFileError(source, int(line_numbers[i]), COLUMNS[col], f"not a finite number: {rows[i, col]}")
    for col in range(4):
        fail(rows[:, col] != np.round(rows[:, col]), col, "expected an integer, got {v}")
    fail(
        (rows[:, COL_CLASS] < 0) | (rows[:, COL_CLASS] >= len(CLASS_NAMES)),
        COL_CLASS,
        f"unknown class id {{v:.0f}}; the 2025 class ids are 0..{len(CLASS_NAMES) - 1} ({', '.join(CLASS_NAMES)})",
    )
    fail(rows[:, COL_FRAME] < 0, COL_FRAME, "frame ids start at 0, got {v:.0f}")
    if known_scenes:
        known = np.isin(rows[:, COL_SCENE], sorted(KNOWN_SCENE_IDS))
        fail(~known, COL_SCENE, f"unknown scene id {{v:.0f}}; known ids are {sorted(KNOWN_SCENE_IDS)}")

    # The same (scene, class, object, frame) twice would make trackeval fail (ids must be unique per
    # timestep), so report it here with both line numbers.
    keys = rows[:, :4]
    order = np.lexsort(keys.T[::-1])
    same = np.all(keys[order[1:]] == keys[order[:-1]], axis=1)
    if same.any():
        k = np.nonzero(same)[0][0]
        first, second = sorted((int(line_numbers[order[k]]), int(line_numbers[order[k + 1]])))
        s, c, o, f = (int(v) for v in keys[order[k]])
        raise TrackFileError(
            source,
            second,
            "object_id",
            f"object {o} of class {c} in scene {s} appears twice in frame {f} (also on line {first})",
        )
    return rows


def load_tracks(path: str | os.PathLike, permissive: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read an AI City track file.

    Args:
        path: the file.
        permissive: accept any whitespace, blank lines and integer fields written as floats.

    Returns:
        rows (N, 11) float64 and the list of permissive fixes (human-readable; empty in strict mode).

    Raises:
        TrackFileError: naming the file, line and field of the first violation.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrackFileError(str(path), None, None, f"not UTF-8 text ({exc})") from None
    return parse_tracks(text, str(path), permissive=permissive)


def format_tracks(rows: np.ndarray) -> str:
    """Rows (N, 11) -> file text: single spaces, ints for ids/frames, shortest exact floats, final newline."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, NUM_FIELDS)
    ints = rows[:, :4].astype(np.int64).tolist()
    floats = rows[:, 4:].tolist()
    return "".join(
        " ".join([*(str(v) for v in i), *(repr(v) for v in f)]) + "\n" for i, f in zip(ints, floats, strict=True)
    )


def write_tracks(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write rows (N, 11) as an AI City track file, atomically."""
    from visionops.atomic import write_text

    return write_text(path, format_tracks(rows))


# --------------------------------------------------------------------------------------------------
# Ground truth from a raw scene folder
# --------------------------------------------------------------------------------------------------

def scene_id_from_name(name: str) -> int | None:
    """Scene id of a 2025 scene folder name (``Warehouse_017`` -> 17), or None if unknown."""
    return SCENE_IDS.get(name)


def gt_rows_from_json(data: Any, scene_id: int, source: str = "ground_truth.json") -> np.ndarray:
    """GT rows from a parsed ``ground_truth.json`` (parsed by :mod:`visionops.data.schema`).

    Args:
        data: ``{"<frame>": [object, ...]}`` with frame ids as decimal strings; each object has
            ``"object type"``, ``"object id"``, ``"3d location"`` [x, y, z], ``"3d bounding box scale"``
            [w, l, h] and ``"3d bounding box rotation"`` [pitch, roll, yaw] (underscore spelling accepted).
        scene_id: written in column 0.
        source: name used in error messages.

    Returns:
        (N, 11) rows sorted by frame, class and object id.

    Raises:
        ValueError: naming the frame, object and key that is malformed.
    """
    from visionops.data.schema import ground_truth_from_json

    rows: list[list[float]] = []
    for frame, objects in ground_truth_from_json(data, source).items():
        for index, obj in enumerate(objects):
            if obj.object_type not in CLASS_IDS:
                raise ValueError(
                    f"{source}, frame {frame}, object #{index}: unknown object type {obj.object_type!r}; "
                    f"2025 classes: {', '.join(CLASS_NAMES)}"
                )
            rows.append([scene_id, CLASS_IDS[obj.object_type], obj.object_id, frame,
                         *obj.location, *obj.scale, obj.yaw])
    out = np.asarray(rows, dtype=np.float64).reshape(-1, NUM_FIELDS)
    out = out[np.lexsort((out[:, COL_ID], out[:, COL_CLASS], out[:, COL_FRAME]))]
    validate_rows(out, source)
    return out


def gt_rows_from_scene(scene_dir: str | os.PathLike, scene_id: int | None = None) -> np.ndarray:
    """GT rows (N, 11) of a raw scene folder, from its ``ground_truth.json``.

    Args:
        scene_dir: folder holding ``ground_truth.json``.
        scene_id: scene id for column 0; None looks the folder name up in :data:`SCENE_IDS`.

    Raises:
        FileNotFoundError: no ``ground_truth.json`` (test scenes ship without one).
        ValueError: unknown scene name without ``scene_id``, unknown scene id, or malformed GT.
    """
    scene_dir = Path(scene_dir)
    path = scene_dir / "ground_truth.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (test scenes ship without ground truth)")
    if scene_id is None:
        scene_id = scene_id_from_name(scene_dir.resolve().name)
        if scene_id is None:
            raise ValueError(
                f"cannot tell the scene id of folder {scene_dir.resolve().name!r}: it is not one of the 2025 scene "
                "names (Warehouse_000..Warehouse_020, Lab_000, Hospital_000); pass --scene-id"
            )
    if scene_id not in KNOWN_SCENE_IDS:
        raise ValueError(f"unknown scene id {scene_id}; known ids are {sorted(KNOWN_SCENE_IDS)}")
    with path.open(encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc})") from None
    return gt_rows_from_json(data, scene_id, str(path))
