"""Damaged videos fail with VideoDecodeError naming the file and the frame (and never hang)."""

import pickle
import struct

import av
import numpy as np
import pytest

from visionops.data import video
from visionops.data.video import VideoDecodeError

FRAMES = 30


def _frames(width: int = 320, height: int = 240, count: int = FRAMES) -> list[np.ndarray]:
    """Smooth moving pattern with mild noise: H.264 frames of a few hundred bytes, like real scenes."""
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        lum = 127 + 90 * np.sin(xx / 19.0 + 0.3 * i) * np.cos(yy / 13.0 - 0.2 * i)
        rgb = np.stack([lum, 0.9 * lum + 10, 0.75 * lum + 20], -1) + rng.normal(0, 3, (height, width, 3))
        out.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def good_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "Camera.mp4"
    with video.VideoWriter(path, 320, 240, fps=30) as writer:
        for rgb in _frames():
            writer.write(rgb)
    return path


def _mdat_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the mp4 ``mdat`` payload: the compressed frames."""
    at = data.find(b"mdat")
    size = struct.unpack(">I", data[at - 4:at])[0]
    return at + 4, at - 4 + size


def _assert_names(exc: VideoDecodeError, path, frame: int | None = None) -> None:
    assert exc.path == path
    assert str(path) in str(exc) and f"frame {exc.frame}" in str(exc)
    assert "re-download" in str(exc) and "download stage" in str(exc)
    if frame is not None:
        assert exc.frame == frame


def test_truncated_to_half_fails_at_open(good_video, tmp_path):
    # VideoWriter puts the index (moov) after the frames: half a file has no index and cannot be opened.
    path = tmp_path / "Camera.mp4"
    data = good_video.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError) as info:
        list(video.iter_frames(path))
    _assert_names(info.value, path, frame=0)
    assert "moov" in info.value.reason  # FFmpeg's own explanation travels with the error
    with pytest.raises(VideoDecodeError):
        video.probe(path)


def test_truncated_faststart_file_is_caught_by_check_complete(tmp_path):
    # With the index first (+faststart, as web downloads often are), half a file opens and decodes its first
    # frames without any FFmpeg error: only the header's frame count tells that the rest is missing.
    path = tmp_path / "Camera.mp4"
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "18", "x264-params": "bframes=0", "threads": "1"}
        for rgb in _frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    path.write_bytes(data[: len(data) // 2])
    decoded = len(list(video.iter_frames(path)))
    assert 0 < decoded < FRAMES  # silently short without the check
    with pytest.raises(VideoDecodeError, match=f"{decoded} of the {FRAMES} frames") as info:
        list(video.iter_frames(path, check_complete=True))
    _assert_names(info.value, path, frame=decoded)
    # reaching ``stop`` before the damage is not an error
    assert len(list(video.iter_frames(path, stop=decoded, check_complete=True))) == decoded


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7])
def test_garbage_in_the_frames_names_the_frame(good_video, tmp_path, where):
    data = bytearray(good_video.read_bytes())
    start, end = _mdat_span(bytes(data))
    at = start + int((end - start - 4096) * where)
    data[at:at + 4096] = np.random.default_rng(int(where * 10)).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path = tmp_path / "Camera.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError) as info:
        list(video.iter_frames(path, check_complete=True))
    _assert_names(info.value, path)
    assert 0 < info.value.frame < FRAMES  # the first frames, before the garbage, decode


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50], ids=["empty", "text"])
def test_empty_or_not_a_video_fails_at_open(tmp_path, content):
    path = tmp_path / "Camera.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError) as info:
        list(video.iter_frames(path))
    _assert_names(info.value, path, frame=0)
    for call in (video.probe, video.count_frames):
        with pytest.raises(VideoDecodeError):
            call(path)


def test_error_survives_pickling(tmp_path):
    error = pickle.loads(pickle.dumps(VideoDecodeError(tmp_path / "a.mp4", 7, "boom")))  # process pools do this
    assert (error.path, error.frame, error.reason) == (tmp_path / "a.mp4", 7, "boom")
    assert "frame 7: boom" in str(error)


def test_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(video.iter_frames(tmp_path / "nope.mp4"))


def test_good_video_is_complete(good_video):
    assert [i for i, _ in video.iter_frames(good_video, check_complete=True)] == list(range(FRAMES))
    some = video.iter_frames(good_video, start=4, stop=20, step=5, check_complete=True)
    assert [i for i, _ in some] == [4, 9, 14, 19]


@pytest.mark.timeout(120)
def test_stopping_early_while_holding_frames_does_not_hang(good_video):
    # PyAV 18 deadlocked here (codec freed with the GIL held while a frame thread waited for it to log).
    for stop in (1, 3, 7, 12, 25):
        for _ in range(3):
            frames = list(video.iter_av_frames(good_video, stop=stop))
            assert len(frames) == stop
    assert video.read_frame(good_video, 5).shape == (240, 320, 3)
