"""AI City track files: strict parser errors, permissive fixes, writer round trip, GT from ground_truth.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.evaluation import aicity_format as fmt
from visionops.evaluation.aicity_format import (
    TrackFileError,
    format_tracks,
    gt_rows_from_json,
    gt_rows_from_scene,
    load_tracks,
    parse_tracks,
)

GOOD = [
    "17 0 1 0 1.5 2.0 0.9 0.5 0.6 1.8 0.3",
    "17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2",
    "17 1 1 1 10.0 3.0 1.1 1.2 2.5 2.2 3.1",
]


def text_of(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def test_parse_clean_file():
    rows, notes = parse_tracks(text_of(GOOD), "t.txt")
    assert notes == []
    assert rows.shape == (3, 11)
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(rows[1], [17, 0, 2, 0, 4.0, -2.5, 0.9, 0.5, 0.6, 1.8, -1.2])


def test_empty_file_has_no_rows():
    rows, notes = parse_tracks("", "t.txt")
    assert rows.shape == (0, 11)
    assert notes == []


def test_last_line_without_newline():
    rows, _ = parse_tracks("\n".join(GOOD), "t.txt")
    assert len(rows) == 3


# (line 2 replaced by, expected field, words in the message)
VIOLATIONS = [
    ("17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8", None, "expected 11 fields"),
    ("17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2 7", None, "expected 11 fields"),
    ("17 0 2 0 4.0  -2.5 0.9 0.5 0.6 1.8 -1.2", None, "two spaces in a row"),
    ("17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2 ", None, "leading or trailing space"),
    (" 17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", None, "leading or trailing space"),
    ("17 0 2 0 4.0\t-2.5 0.9 0.5 0.6 1.8 -1.2", None, "tab"),
    ("", None, "blank line"),
    ("17.0 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "scene_id", "expected an integer"),
    ("17 x 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "class_id", "expected an integer"),
    ("17 0 2.5 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "object_id", "expected an integer"),
    ("17 0 2 1_0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "frame_id", "expected an integer"),
    ("17 0 2 0 four -2.5 0.9 0.5 0.6 1.8 -1.2", "x", "expected a number"),
    ("17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 nan", "yaw", "not a finite number"),
    ("17 0 2 0 4.0 -2.5 0.9 inf 0.6 1.8 -1.2", "width", "not a finite number"),
    ("21 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "scene_id", "unknown scene id 21"),
    ("17 6 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "class_id", "unknown class id 6"),
    ("17 -1 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "class_id", "unknown class id -1"),
    ("17 0 2 -3 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2", "frame_id", "frame ids start at 0"),
    ("17 0 1 0 9.0 9.0 0.9 0.5 0.6 1.8 0.0", "object_id", "appears twice in frame 0 (also on line 1)"),
]


@pytest.mark.parametrize(("line", "field", "words"), VIOLATIONS)
def test_strict_violation_names_file_line_and_field(tmp_path, line, field, words):
    path = tmp_path / "pred.txt"
    path.write_text(text_of([GOOD[0], line, GOOD[2]]))
    with pytest.raises(TrackFileError) as info:
        load_tracks(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.line == 2
    assert err.field == field
    message = str(err)
    assert str(path) in message
    assert "line 2" in message
    if field is not None:
        assert f"field {field!r}" in message
    assert words in message


def test_byte_order_mark_is_strict_error_and_permissive_fix():
    text = "\ufeff" + text_of(GOOD)
    with pytest.raises(TrackFileError, match="byte-order mark"):
        parse_tracks(text, "t.txt")
    rows, notes = parse_tracks(text, "t.txt", permissive=True)
    assert len(rows) == 3
    assert any("byte-order mark" in n for n in notes)


def test_windows_line_endings_are_read_like_the_official_parser():
    # The official parser's float() accepts the trailing "\r"; strict mode does the same, silently.
    text = "\r\n".join(GOOD) + "\r\n"
    rows, notes = parse_tracks(text, "t.txt")
    np.testing.assert_array_equal(rows, parse_tracks(text_of(GOOD), "t.txt")[0])
    assert notes == []
    _, notes = parse_tracks(text, "t.txt", permissive=True)
    assert any("Windows line ending" in n for n in notes)


def test_permissive_fixes_whitespace_blank_lines_and_float_ints_and_says_so():
    messy = [
        "17  0 1 0 1.5 2.0 0.9 0.5 0.6 1.8 0.3   ",
        "",
        "   ",
        "17\t0\t2\t0\t4.0\t-2.5\t0.9\t0.5\t0.6\t1.8\t-1.2",
        "17 1 1 1.0 10.0 3.0 1.1 1.2 2.5 2.2 3.1",
    ]
    rows, notes = parse_tracks(text_of(messy), "messy.txt", permissive=True)
    np.testing.assert_array_equal(rows, parse_tracks(text_of(GOOD), "t.txt")[0])
    joined = "\n".join(notes)
    assert "normalised whitespace" in joined and "(1, 4)" in joined
    assert "skipped a blank line on 2 line(s) (2, 3)" in joined
    assert "integer written as a float in frame_id on 1 line(s) (5)" in joined
    assert all(n.startswith("messy.txt: ") for n in notes)


@pytest.mark.parametrize(
    "line",
    [
        "17 0 2 0 four -2.5 0.9 0.5 0.6 1.8 -1.2",
        "17 0 2.5 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2",
        "17 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8",
        "21 0 2 0 4.0 -2.5 0.9 0.5 0.6 1.8 -1.2",
    ],
)
def test_permissive_still_rejects_what_it_cannot_fix(line):
    with pytest.raises(TrackFileError) as info:
        parse_tracks(text_of([GOOD[0], line]), "t.txt", permissive=True)
    assert info.value.line == 2


def test_note_lists_at_most_five_lines():
    lines = [GOOD[0].replace(" ", "  ", 1).replace("17  0 1", f"17  0 {i}") for i in range(1, 9)]
    _, notes = parse_tracks(text_of(lines), "t.txt", permissive=True)
    assert notes == [
        "t.txt: normalised whitespace (tabs, repeated, leading or trailing spaces) on 8 line(s) "
        "(1, 2, 3, 4, 5 and 3 more)"
    ]


_row = st.tuples(
    st.sampled_from(sorted(fmt.KNOWN_SCENE_IDS)),
    st.integers(0, 5),
    st.integers(0, 10**6),
    st.integers(0, 20000),
    *[st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, allow_subnormal=True)] * 7,
)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(rows=st.lists(_row, min_size=1, max_size=30, unique_by=lambda r: r[:4]))
def test_format_parse_round_trip_and_fast_path_agrees_with_slow_path(rows):
    rows = np.array(rows, dtype=np.float64)
    text = format_tracks(rows)
    fast = fmt._parse_fast(text)
    slow, notes = fmt._parse_slow(text, "t.txt", permissive=False)
    assert fast is not None
    np.testing.assert_array_equal(fast, rows)
    np.testing.assert_array_equal(slow, rows)
    assert notes == []


# ------------------------------------------------------------------------------------------------
# ground_truth.json -> rows
# ------------------------------------------------------------------------------------------------


def obj(kind="Person", oid=1, loc=(1.0, 2.0, 0.9), scale=(0.5, 0.6, 1.8), rot=(0.0, 0.0, 0.3), spaced=True):
    keys = ("object type", "object id", "3d location", "3d bounding box scale", "3d bounding box rotation")
    if not spaced:
        keys = tuple(k.replace(" ", "_") for k in keys)
    return dict(zip(keys, (kind, oid, list(loc), list(scale), list(rot)), strict=True))


def test_gt_rows_from_json_reads_both_key_spellings_and_sorts():
    data = {
        "10": [obj("Forklift", 3, rot=(0.1, 0.2, 1.5), spaced=False), obj("Person", 7)],
        "2": [obj("AgilityDigit", 1, loc=(5, 6, 0.8), scale=(0.6, 0.5, 1.75), rot=(0, 0, -2.0))],
    }
    rows = gt_rows_from_json(data, 22)
    np.testing.assert_array_equal(
        rows,
        [
            [22, 5, 1, 2, 5, 6, 0.8, 0.6, 0.5, 1.75, -2.0],
            [22, 0, 7, 10, 1.0, 2.0, 0.9, 0.5, 0.6, 1.8, 0.3],
            [22, 1, 3, 10, 1.0, 2.0, 0.9, 0.5, 0.6, 1.8, 1.5],  # yaw is the third rotation entry
        ],
    )


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"0": [obj("PalletTruck")]}, "unknown object type 'PalletTruck'"),
        ({"0": [{"object type": "Person", "object id": 1}]}, "missing key '3d location'"),
        ({"0": [obj(oid="x")]}, "key 'object id': not an integer"),
        ({"0": [obj(loc=(1, 2))]}, "key '3d location': expected 3 numbers"),
        ({"-1": [obj()]}, "frame key '-1'"),
        ({"0": [obj(), obj()]}, "frame 0, key 'object id': (Person, 1) appears twice"),
    ],
)
def test_gt_rows_from_json_errors_say_where(data, words):
    with pytest.raises(ValueError, match=None) as info:
        gt_rows_from_json(data, 17, "gt.json")
    assert words in str(info.value)
    assert "gt.json" in str(info.value)


def test_gt_rows_from_scene_scene_id_from_folder_name(tmp_path):
    scene = tmp_path / "Hospital_000"
    scene.mkdir()
    (scene / "ground_truth.json").write_text(json.dumps({"0": [obj()]}))
    assert gt_rows_from_scene(scene)[0, 0] == 23
    assert gt_rows_from_scene(scene, 5)[0, 0] == 5

    other = tmp_path / "my_scene"
    other.mkdir()
    (other / "ground_truth.json").write_text(json.dumps({"0": [obj()]}))
    with pytest.raises(ValueError, match="--scene-id"):
        gt_rows_from_scene(other)
    with pytest.raises(ValueError, match="unknown scene id 21"):
        gt_rows_from_scene(other, 21)
    with pytest.raises(FileNotFoundError):
        gt_rows_from_scene(tmp_path)


def test_scene_table():
    assert fmt.scene_id_from_name("Warehouse_000") == 0
    assert fmt.scene_id_from_name("Warehouse_020") == 20
    assert fmt.scene_id_from_name("Lab_000") == 22
    assert fmt.scene_id_from_name("Warehouse_021") is None
    assert fmt.CLASS_NAMES.index("AgilityDigit") == 5
