"""Track pictures and animations (motion_prior.foundation.visualize)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from motion_prior.foundation.camera import normalized_to_pixels
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.visualize import draw_tracks, save_gif, save_png, track_colours

H, W, T = 12, 16, 10
BACKGROUND = 40


def _frame(value=BACKGROUND) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def _horizontal_track(y=0.0, x0=-0.6, x1=0.6, t=T) -> np.ndarray:
    """`[1, T, 2]`: one point moving left to right along row y."""
    track = np.zeros((1, t, 2), np.float32)
    track[0, :, 0] = np.linspace(x0, x1, t)
    track[0, :, 1] = y
    return track


def _at(image, point, scale):
    """The pixel of an upscaled image at a normalised point."""
    u, v = normalized_to_pixels(np.asarray(point, np.float64), (H * scale, W * scale))
    return image[int(v), int(u)]


@pytest.mark.parametrize("scale", [1, 3, 4])
def test_draw_tracks_returns_an_upscaled_rgb_image(scale):
    image = draw_tracks(_frame(), _horizontal_track(), scale=scale)
    assert image.dtype == np.uint8 and image.shape == (H * scale, W * scale, 3)


def test_the_background_is_the_upscaled_frame_and_the_trail_differs_from_it():
    frame = _frame()
    frame[0, 0] = [200, 10, 10]
    image = draw_tracks(frame, _horizontal_track(y=0.3), scale=4)
    np.testing.assert_array_equal(image[:4, :4], np.broadcast_to([200, 10, 10], (4, 4, 3)))  # nearest upscaling
    np.testing.assert_array_equal(image[-2:, -2:], np.full((2, 2, 3), BACKGROUND))  # far from the track
    for x in (-0.4, -0.1, 0.2, 0.5):
        assert np.abs(_at(image, [x, 0.3], 4).astype(int) - BACKGROUND).max() > 30, x
    # Nothing is drawn along another row.
    assert np.all(_at(image, [0.0, -0.7], 4) == BACKGROUND)


def test_upto_draws_only_the_first_time_steps():
    track = _horizontal_track(y=0.0, x0=-0.8, x1=0.8)
    early = draw_tracks(_frame(), track, upto=2, scale=4)
    full = draw_tracks(_frame(), track, scale=4)
    late_point = [0.6, 0.0]
    assert np.all(_at(early, late_point, 4) == BACKGROUND)
    assert not np.all(_at(full, late_point, 4) == BACKGROUND)


def test_pokes_are_drawn_as_white_arrows():
    track = _horizontal_track(y=-0.7)
    pokes = np.array([[-0.5, 0.4, 0.5, 0.4, 1.0]], np.float32)
    without = draw_tracks(_frame(), track, scale=4)
    with_pokes = draw_tracks(_frame(), track, pokes=pokes, scale=4)
    assert np.all(_at(without, [0.0, 0.4], 4) == BACKGROUND)
    np.testing.assert_array_equal(_at(with_pokes, [0.0, 0.4], 4), [255, 255, 255])
    np.testing.assert_array_equal(with_pokes[: H * 2], without[: H * 2])  # the track half is unchanged


def test_hidden_parts_of_a_trail_are_drawn_fainter():
    track = _horizontal_track(y=0.0, x0=-0.8, x1=0.8)
    hidden = np.ones((1, T), bool)
    hidden[0, :6] = False
    seen = draw_tracks(_frame(), track, scale=4)
    faint = draw_tracks(_frame(), track, hidden, scale=4)
    point = [-0.5, 0.0]
    seen_contrast = np.abs(_at(seen, point, 4).astype(int) - BACKGROUND).max()
    faint_contrast = np.abs(_at(faint, point, 4).astype(int) - BACKGROUND).max()
    assert 0 < faint_contrast < seen_contrast


def test_track_colours_depend_on_start_position():
    colours = track_colours(np.array([[0.5, 0.0], [0.0, 0.5], [0.5, 0.01]]))
    assert colours.dtype == np.uint8 and colours.shape == (3, 3)
    assert not np.array_equal(colours[0], colours[1])
    assert np.abs(colours[0].astype(int) - colours[2]).max() < 20


def test_save_png_round_trip(tmp_path):
    image = draw_tracks(_frame(), _horizontal_track(), scale=2)
    path = save_png(image, tmp_path / "sub" / "clip.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), image)


def test_save_gif_writes_one_frame_per_time_step(tmp_path):
    path = save_gif(tmp_path / "clip.gif", _frame(), _horizontal_track(), fps=10.0, scale=2)
    with Image.open(path) as gif:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
        assert gif.info["duration"] == 100
    assert len(frames) == T
    assert all(frame.size == (W * 2, H * 2) for frame in frames)
    assert not np.array_equal(np.asarray(frames[0]), np.asarray(frames[-1]))


def test_save_gif_of_a_still_clip_plays_for_the_whole_horizon(tmp_path):
    tracks = np.zeros((2, T, 2), np.float32)
    tracks[1] = 0.5
    path = save_gif(tmp_path / "still.gif", _frame(), tracks, fps=10.0, scale=2)
    with Image.open(path) as gif:
        total = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
    assert total == T * 100


def test_save_gif_switches_to_later_stored_frames(tmp_path):
    later = np.stack([_frame(200), _frame(120)])
    path = save_gif(tmp_path / "clip.gif", _frame(), _horizontal_track(y=0.8), frames=later,
                    frame_indices=np.array([4, 7]), scale=1)
    with Image.open(path) as gif:
        corners = [tuple(np.asarray(f.convert("RGB"))[0, 0]) for f in ImageSequence.Iterator(gif)]
    assert corners == [(BACKGROUND,) * 3] * 4 + [(200,) * 3] * 3 + [(120,) * 3] * 3


@pytest.mark.parametrize(
    "frame, tracks, visibility, argument",
    [
        (np.zeros((H, W), np.uint8), _horizontal_track(), None, "frame"),
        (np.zeros((H, W, 4), np.uint8), _horizontal_track(), None, "frame"),
        (np.zeros((H, W, 3), np.float32), _horizontal_track(), None, "frame"),
        (_frame(), np.zeros((T, 2)), None, "tracks"),
        (_frame(), np.zeros((1, T, 3)), None, "tracks"),
        (_frame(), _horizontal_track(), np.ones((T, 1), bool), "visibility"),
        (_frame(), _horizontal_track(), np.ones((1, T - 1), bool), "visibility"),
    ],
)
def test_wrong_shapes_raise_input_error_naming_the_argument(tmp_path, frame, tracks, visibility, argument):
    with pytest.raises(InputError, match=f"^{argument}:") as info:
        draw_tracks(frame, tracks, visibility)
    assert info.value.argument == argument
    with pytest.raises(InputError, match=f"^{argument}:"):
        save_gif(tmp_path / "x.gif", frame, tracks, visibility)
    assert not (tmp_path / "x.gif").exists()
