"""Pictures of point tracks: trails over the start frame (PNG) and animations (GIF).

Every function takes tracks in normalised image coordinates (docs/design.md §3) and returns or
writes images upscaled by an integer factor so that 128 px frames stay readable.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from motion_prior.foundation.camera import normalized_to_pixels
from motion_prior.foundation.errors import InputError


def track_colours(start_points: np.ndarray) -> np.ndarray:
    """`uint8 [N, 3]` colours that vary smoothly with each track's start position `[N, 2]`,
    so points that move together look alike."""
    start_points = np.asarray(start_points, dtype=np.float64)
    hue = (np.arctan2(start_points[:, 1], start_points[:, 0]) / (2 * np.pi)) % 1.0
    value = 0.65 + 0.35 * np.clip(np.linalg.norm(start_points, axis=1), 0, 1)
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, v)] for h, v in zip(hue, value)], dtype=np.uint8)


def _check(frame: np.ndarray, tracks: np.ndarray, visibility: np.ndarray | None):
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError("frame", "uint8 [H, W, 3]", frame)
    tracks = np.asarray(tracks, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[2] != 2:
        raise InputError("tracks", "[N, T, 2] normalised (x, y)", tracks)
    if visibility is None:
        visibility = np.ones(tracks.shape[:2], dtype=bool)
    visibility = np.asarray(visibility, dtype=bool)
    if visibility.shape != tracks.shape[:2]:
        raise InputError("visibility", f"bool {list(tracks.shape[:2])}", visibility)
    return frame, tracks, visibility


def draw_tracks(
    frame: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray | None = None,
    pokes: np.ndarray | None = None,
    upto: int | None = None,
    scale: int = 4,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Draw tracks as trails over a frame.

    Args:
        frame: `uint8 [H, W, 3]` background.
        tracks: `[N, T, 2]` normalised (x, y).
        visibility: `bool [N, T]`; hidden parts of a trail are drawn thin and faint.
        pokes: `[P, 5]` (x0, y0, x1, y1, end_time), drawn as white arrows.
        upto: draw time steps 0..upto (inclusive) only, with a dot at the current position.
        scale: integer upscaling of the frame.
        reference: optional `[N, T, 2]` tracks drawn in white underneath (e.g. ground truth
            under a reconstruction).

    Returns:
        `uint8 [H * scale, W * scale, 3]` image.
    """
    frame, tracks, visibility = _check(frame, tracks, visibility)
    height, width = frame.shape[:2]
    size = (height * scale, width * scale)
    last = tracks.shape[1] - 1 if upto is None else int(np.clip(upto, 0, tracks.shape[1] - 1))
    canvas = Image.fromarray(frame).resize((size[1], size[0]), Image.NEAREST).convert("RGBA")
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    if reference is not None:
        for track in normalized_to_pixels(np.asarray(reference, dtype=np.float64)[:, : last + 1], size):
            draw.line([tuple(p) for p in track], fill=(255, 255, 255, 150), width=max(1, scale // 2))
    pixels = normalized_to_pixels(tracks[:, : last + 1], size)
    colours = track_colours(tracks[:, 0])
    for track, vis, colour in zip(pixels, visibility[:, : last + 1], colours):
        for t in range(1, len(track)):
            seen = vis[t] and vis[t - 1]
            draw.line([tuple(track[t - 1]), tuple(track[t])], fill=(*colour, 230 if seen else 90),
                      width=max(1, scale // 2) if seen else 1)
        r = max(2, scale // 2 + 1)
        x, y = track[-1]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(*colour, 255 if vis[-1] else 110),
                     outline=(0, 0, 0, 255 if vis[-1] else 110))
    if pokes is not None:
        ends = normalized_to_pixels(np.asarray(pokes, dtype=np.float64)[:, :4].reshape(-1, 2, 2), size)
        for start, end in ends:
            _arrow(draw, start, end, width=max(2, scale // 2 + 1))
    return np.asarray(Image.alpha_composite(canvas, overlay).convert("RGB"))


def _arrow(draw: ImageDraw.ImageDraw, start, end, width: int) -> None:
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    draw.line([tuple(start), tuple(end)], fill=(255, 255, 255, 255), width=width)
    direction = end - start
    length = np.linalg.norm(direction)
    if length < 1e-6:
        return
    direction /= length
    normal = np.array([-direction[1], direction[0]])
    head = 3.0 * width
    tip = [tuple(end), tuple(end - head * direction + 0.6 * head * normal), tuple(end - head * direction - 0.6 * head * normal)]
    draw.polygon(tip, fill=(255, 255, 255, 255))
    r = width
    draw.ellipse([start[0] - r, start[1] - r, start[0] + r, start[1] + r], outline=(255, 255, 255, 255), width=2)


def captioned_panels(panels: list[tuple[np.ndarray, str]], gap: int = 8, band: int = 20) -> np.ndarray:
    """Panels `uint8 [H, W_i, 3]` (same H) side by side, `gap` white pixels apart, each under a
    white band of `band` pixels with its caption in black: `uint8 [band + H, sum W_i + gaps, 3]`.
    A caption wider than its panel is cut at the panel's edge."""
    height = panels[0][0].shape[0]
    widths = [image.shape[1] for image, _ in panels]
    canvas = Image.new("RGB", (sum(widths) + gap * (len(panels) - 1), band + height), (255, 255, 255))
    font = ImageFont.load_default(size=band - 6)
    x = 0
    for (image, caption), width in zip(panels, widths):
        canvas.paste(Image.fromarray(image), (x, band))
        label = Image.new("RGB", (width, band), (255, 255, 255))
        ImageDraw.Draw(label).text((4, 2), caption, fill=(0, 0, 0), font=font)
        canvas.paste(label, (x, 0))
        x += width + gap
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write `uint8 [H, W, 3]` to a PNG file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def save_gif(
    path: str | Path,
    frame: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray | None = None,
    pokes: np.ndarray | None = None,
    frames: np.ndarray | None = None,
    frame_indices: np.ndarray | None = None,
    fps: float = 16.0,
    scale: int = 4,
) -> Path:
    """Animate tracks over time as a GIF, one GIF frame per time step (Pillow merges identical
    consecutive frames into one longer frame, so a still clip plays as one image for T steps).

    The background is the latest stored frame at or before each time step (`frames
    [F, H, W, 3]` at `frame_indices [F]`), else the start frame.
    """
    frame, tracks, visibility = _check(frame, tracks, visibility)
    backgrounds = [frame] * tracks.shape[1]
    if frames is not None:
        for stored, index in zip(frames, frame_indices):
            backgrounds[int(index):] = [stored] * (tracks.shape[1] - int(index))
    images = [
        Image.fromarray(draw_tracks(backgrounds[t], tracks, visibility, pokes, upto=t, scale=scale))
        for t in range(tracks.shape[1])
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
