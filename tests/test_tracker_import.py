"""Importing video + point-tracker output as clips (motion_prior.data.tracker_import, `data import`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from motion_prior.cli import main
from motion_prior.data.shards import ClipStore
from motion_prior.data.tracker_import import clips_from_tracker, load_frames
from motion_prior.foundation.errors import InputError

F, H, W, N, T = 150, 32, 48, 12, 64


def _video(num_frames=F, n=N, seed=0):
    """Frames `uint8 [F, H, W, 3]`, CoTracker-style tracks `[F, N, 2]` (pixel (0, 0)'s centre at
    (0, 0)) of points moving linearly, and visibility `[F, N]` bool."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (num_frames, H, W, 3), dtype=np.uint8)
    start = rng.uniform([2, 2], [W - 3, H - 3], (n, 2))
    velocity = rng.uniform(-0.05, 0.05, (n, 2))
    tracks = start[None] + np.arange(num_frames)[:, None, None] * velocity[None]
    visibility = np.ones((num_frames, n), dtype=bool)
    visibility[0, [1, 4]] = False  # hidden in the first window's start frame
    if num_frames > 64:
        visibility[64, 7] = False  # hidden in the second window's start frame
    visibility[10:20, 3] = False  # hidden mid-window: kept, with visibility False there
    return frames, tracks.astype(np.float32), visibility


def _expected_normalized(tracks_px, offset=0.5):
    return ((tracks_px + offset) / np.array([W, H]) * 2.0 - 1.0).astype(np.float32)


def test_windows_count_and_start_frames():
    frames, tracks, visibility = _video()
    clips = clips_from_tracker(frames, tracks, visibility, fps=30.0)
    assert len(clips) == (F - T) // T + 1 == 2
    for stride in (1, 20, 43):
        clips = clips_from_tracker(frames, tracks, visibility, fps=30.0, stride=stride)
        assert len(clips) == (F - T) // stride + 1
        assert [c.metadata["start_frame"] for c in clips] == list(range(0, F - T + 1, stride))
        assert all(c.num_frames == T for c in clips)
    assert clips_from_tracker(frames[:T - 1], tracks[:T - 1], visibility[:T - 1], fps=30.0) == []


def test_tracks_are_normalised_with_the_pixel_centre_convention():
    frames, tracks, visibility = _video()
    visibility[:] = True
    clips = clips_from_tracker(frames, tracks, visibility, fps=30.0, stride=43)
    for clip in clips:
        start = clip.metadata["start_frame"]
        expected = _expected_normalized(tracks[start:start + T]).transpose(1, 0, 2)
        assert clip.tracks.dtype == np.float32 and clip.tracks.shape == (N, T, 2)
        np.testing.assert_allclose(clip.tracks, expected, atol=1e-6)
        np.testing.assert_array_equal(clip.frame, frames[start])
        assert clip.image_size == (H, W)
    # The centre of pixel (0, 0) in CoTracker's convention is (-1 + 1/W, -1 + 1/H) in ours.
    corner = np.zeros((T, 8, 2), np.float32)
    clip = clips_from_tracker(frames[:T], corner, np.ones((T, 8), bool), fps=30.0)[0]
    np.testing.assert_allclose(clip.tracks[:, 0], [[-1 + 1 / W, -1 + 1 / H]] * 8, atol=1e-6)


def test_corner_origin_is_not_shifted():
    frames, tracks, visibility = _video()
    visibility[:] = True
    clip = clips_from_tracker(frames, tracks, visibility, fps=30.0, pixel_origin="corner")[0]
    np.testing.assert_allclose(clip.tracks, _expected_normalized(tracks[:T], 0.0).transpose(1, 0, 2), atol=1e-6)


def test_tracks_hidden_at_a_window_start_are_left_out_and_counted():
    frames, tracks, visibility = _video()
    first, second = clips_from_tracker(frames, tracks, visibility, fps=30.0)
    kept_first = [i for i in range(N) if i not in (1, 4)]
    assert first.num_tracks == N - 2 and first.metadata["tracks_not_visible_at_start"] == 2
    np.testing.assert_allclose(first.tracks, _expected_normalized(tracks[:T, kept_first]).transpose(1, 0, 2),
                               atol=1e-6)
    np.testing.assert_array_equal(first.visibility, visibility[:T, kept_first].T)
    assert not first.visibility[kept_first.index(3), 10:20].any()  # hidden mid-window: kept
    kept_second = [i for i in range(N) if i != 7]
    assert second.num_tracks == N - 1 and second.metadata["tracks_not_visible_at_start"] == 1
    np.testing.assert_allclose(second.tracks, _expected_normalized(tracks[T:2 * T, kept_second]).transpose(1, 0, 2),
                               atol=1e-6)
    assert first.visibility.dtype == np.bool_ and first.visibility.shape == (N - 2, T)


def test_clips_carry_fps_text_unknown_object_ids_and_one_split_per_video():
    frames, tracks, visibility = _video()
    clips = clips_from_tracker(frames, tracks, visibility, fps=25.0, stride=16, text="a hand opens a drawer",
                               source="drawer.mp4")
    for clip in clips:
        assert clip.fps == 25.0 and clip.text == "a hand opens a drawer"
        assert clip.object_id.dtype == np.int32 and np.all(clip.object_id == -1)
        assert clip.metadata["source"] == "drawer.mp4"
        clip.validate()
    # Overlapping windows of one video share a seed, so they can never straddle two splits.
    assert len({c.seed for c in clips}) == 1
    other = clips_from_tracker(frames, tracks, visibility, fps=25.0, stride=16, source="other.mp4")
    assert other[0].seed != clips[0].seed
    assert [c.metadata["start_frame"] for c in clips] == list(range(0, 16 * len(clips), 16))


def test_float_confidences_are_thresholded_at_one_half():
    frames, tracks, _ = _video()
    confidence = np.full((F, N), 0.9, dtype=np.float32)
    confidence[0, 0] = 0.49  # hidden at start -> left out
    confidence[0, 1] = 0.5  # visible
    confidence[5, 2] = 0.2  # hidden at frame 5
    clip = clips_from_tracker(frames, tracks, confidence, fps=30.0)[0]
    assert clip.visibility.dtype == np.bool_
    assert clip.num_tracks == N - 1 and clip.metadata["tracks_not_visible_at_start"] == 1
    np.testing.assert_allclose(clip.tracks[0], _expected_normalized(tracks[:T, 1]), atol=1e-6)
    assert not clip.visibility[1, 5] and clip.visibility[1].sum() == T - 1


def test_windows_with_too_few_visible_tracks_are_skipped():
    frames, tracks, visibility = _video()
    visibility[T, :] = False  # nothing visible where the second window starts
    clips = clips_from_tracker(frames, tracks, visibility, fps=30.0)
    assert [c.metadata["start_frame"] for c in clips] == [0]
    assert clips_from_tracker(frames, tracks, visibility, fps=30.0, min_tracks=N - 1) == []


def test_tracks_far_off_screen_are_left_out_and_counted():
    frames, tracks, visibility = _video()
    visibility[:] = True
    tracks[30, 5] = [1e5, 10.0]  # a tracker blow-up
    clip = clips_from_tracker(frames, tracks, visibility, fps=30.0)[0]
    assert clip.num_tracks == N - 1 and clip.metadata["tracks_out_of_range"] == 1


@pytest.mark.parametrize(
    "change, argument",
    [
        (lambda f, t, v: (f.astype(np.float32), t, v), "frames"),
        (lambda f, t, v: (f[..., 0], t, v), "frames"),
        (lambda f, t, v: (f, t[:-1], v), "tracks"),
        (lambda f, t, v: (f, t[..., :1], v), "tracks"),
        (lambda f, t, v: (f, np.where(np.arange(F)[:, None, None] == 3, np.nan, t), v), "tracks"),
        (lambda f, t, v: (f, t, v[:, :-1]), "visibility"),
        (lambda f, t, v: (f, t, v.T), "visibility"),
    ],
)
def test_bad_inputs_raise_input_error_naming_the_argument(change, argument):
    frames, tracks, visibility = change(*_video())
    with pytest.raises(InputError, match=f"^{argument}:") as info:
        clips_from_tracker(frames, tracks, visibility, fps=30.0)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"fps": 0.0}, "fps"), ({"fps": float("nan")}, "fps"), ({"clip_length": 1}, "clip_length"),
     ({"stride": 0}, "stride"), ({"pixel_origin": "topleft"}, "pixel_origin")],
)
def test_bad_options_raise_input_error(kwargs, argument):
    frames, tracks, visibility = _video()
    options = {"fps": 30.0, **kwargs}
    with pytest.raises(InputError, match=f"^{argument}:"):
        clips_from_tracker(frames, tracks, visibility, **options)


# --- files and the CLI -----------------------------------------------------------------------


def _write_tracks(path, tracks, visibility):
    np.savez(path, tracks=tracks, visibility=visibility)
    return path


def test_cli_import_from_npy_frames(tmp_path, capsys):
    frames, tracks, visibility = _video()
    np.save(tmp_path / "video.npy", frames)
    _write_tracks(tmp_path / "tracks.npz", tracks, visibility)
    out = tmp_path / "clips"
    code = main(["data", "import", "--frames", str(tmp_path / "video.npy"), "--tracks", str(tmp_path / "tracks.npz"),
                 "--out", str(out), "--fps", "30", "--stride", "32", "--text", "pouring"])
    assert code == 0
    assert f"wrote 3 clips to {out}" in capsys.readouterr().out
    store = ClipStore.open(out)
    assert store.num_clips == (F - T) // 32 + 1 == 3
    assert store.verify() == []
    expected = clips_from_tracker(frames, tracks, visibility, fps=30.0, stride=32, source="video.npy")
    for index, clip in enumerate(expected):
        read = store.read_clip(index)
        np.testing.assert_array_equal(read.tracks, clip.tracks)
        np.testing.assert_array_equal(read.visibility, clip.visibility)
        np.testing.assert_array_equal(read.frame, clip.frame)
        assert read.text == "pouring" and read.fps == 30.0 and read.seed == clip.seed
        assert read.metadata == clip.metadata
    assert store.producer["name"] == "motion_prior.tracker_import"


def test_cli_import_from_a_folder_of_png_images(tmp_path):
    frames, tracks, visibility = _video(num_frames=40)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    (folder / "notes.txt").write_text("not an image")
    np.testing.assert_array_equal(load_frames(folder), frames)
    confidence = np.full(visibility.shape, 0.8, dtype=np.float32)
    _write_tracks(tmp_path / "tracks.npz", tracks, confidence)
    out = tmp_path / "clips"
    code = main(["data", "import", "--frames", str(folder), "--tracks", str(tmp_path / "tracks.npz"),
                 "--out", str(out), "--fps", "10", "--clip-length", "16", "--stride", "12", "--min-tracks", "4"])
    assert code == 0
    store = ClipStore.open(out)
    assert store.num_clips == (40 - 16) // 12 + 1 == 3
    clip = store.read_clip(1)
    np.testing.assert_array_equal(clip.frame, frames[12])
    assert clip.num_frames == 16 and clip.fps == 10.0
    np.testing.assert_allclose(clip.tracks, _expected_normalized(tracks[12:28]).transpose(1, 0, 2), atol=1e-6)


def test_cli_import_reports_a_tracks_file_without_visibility(tmp_path, capsys):
    frames, tracks, _ = _video(num_frames=70)
    np.save(tmp_path / "video.npy", frames)
    np.savez(tmp_path / "tracks.npz", tracks=tracks)
    code = main(["data", "import", "--frames", str(tmp_path / "video.npy"), "--tracks", str(tmp_path / "tracks.npz"),
                 "--out", str(tmp_path / "clips"), "--fps", "30"])
    assert code == 2
    assert "visibility" in capsys.readouterr().err
    assert not (tmp_path / "clips").exists()


def test_cli_import_of_a_video_shorter_than_a_clip_fails_clearly(tmp_path, capsys):
    frames, tracks, visibility = _video(num_frames=20)
    np.save(tmp_path / "video.npy", frames)
    _write_tracks(tmp_path / "tracks.npz", tracks, visibility)
    code = main(["data", "import", "--frames", str(tmp_path / "video.npy"), "--tracks", str(tmp_path / "tracks.npz"),
                 "--out", str(tmp_path / "clips"), "--fps", "30"])
    assert code == 2
    assert "no window of 64 frames" in capsys.readouterr().err


def test_load_frames_rejects_unknown_files_and_empty_folders(tmp_path):
    (tmp_path / "video.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="^frames:"):
        load_frames(tmp_path / "video.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="^frames:.*none in"):
        load_frames(tmp_path / "empty")
