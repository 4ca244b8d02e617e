"""Import real video plus point-tracker output (CoTracker-style arrays) as clips.

A tracker gives, for a video of F frames, `tracks [F, N, 2]` in pixels and `visibility [F, N]`.
The video is cut into windows of `clip_length` frames; each window becomes a clip whose start
frame is the window's first frame and whose tracks are the tracks visible in that frame (a
track is queried by its start position, so it must be seen at the start). Tracks hidden in a
window's first frame are left out of that clip, and the count is recorded in the clip's
metadata (`tracks_not_visible_at_start`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from motion_prior.data.clips import Clip
from motion_prior.data.shards import ClipStore, shard_name, write_shard
from motion_prior.foundation.camera import MAX_ABS_COORD, pixels_to_normalized
from motion_prior.foundation.errors import InputError

IMPORTER_NAME = "motion_prior.tracker_import"  # the producer name existing clip directories carry
IMPORTER_VERSION = "1.0"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def clips_from_tracker(
    frames: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    fps: float,
    clip_length: int = 64,
    stride: int | None = None,
    pixel_origin: str = "center",
    min_tracks: int = 8,
    text: str | None = None,
    source: str = "",
) -> list[Clip]:
    """Cut a tracked video into clips.

    Args:
        frames: `uint8 [F, H, W, 3]` RGB video.
        tracks: `[F, N, 2]` tracker positions (u, v) in pixels.
        visibility: `[F, N]` bool, or float confidence in [0, 1] (visible where >= 0.5).
        fps: video frame rate.
        clip_length: T, frames per clip.
        stride: frames between window starts (default `clip_length`: no overlap).
        pixel_origin: "center" if the tracker puts pixel (0, 0)'s centre at (0, 0), as CoTracker
            does; "corner" if (0, 0) is the image's top-left corner (our convention).
        min_tracks: windows with fewer tracks visible in their first frame are skipped.
        text: description stored with every clip.
        source: name of the video, recorded in metadata and hashed into each clip's seed.

    Returns:
        Clips in window order; empty if the video is shorter than `clip_length`.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise InputError("frames", "uint8 [F, H, W, 3] RGB video", frames)
    num_frames, height, width = frames.shape[:3]
    tracks = np.asarray(tracks)
    if tracks.ndim != 3 or tracks.shape[0] != num_frames or tracks.shape[2] != 2:
        raise InputError("tracks", f"[F, N, 2] pixel positions with F = {num_frames}", tracks)
    if not np.all(np.isfinite(tracks)):
        raise InputError("tracks", "finite values", f"{int(np.sum(~np.isfinite(tracks)))} non-finite values")
    visibility = np.asarray(visibility)
    if visibility.shape != tracks.shape[:2]:
        raise InputError("visibility", f"shape {list(tracks.shape[:2])}", visibility)
    visibility = visibility >= 0.5 if visibility.dtype != np.bool_ else visibility
    if pixel_origin not in ("center", "corner"):
        raise InputError("pixel_origin", "'center' or 'corner'", pixel_origin)
    if clip_length < 2:
        raise InputError("clip_length", "at least 2 frames", clip_length)
    stride = clip_length if stride is None else stride
    if stride < 1:
        raise InputError("stride", "a positive number of frames", stride)
    if not (fps > 0 and np.isfinite(fps)):
        raise InputError("fps", "a positive frame rate", fps)

    pixels = tracks.astype(np.float64) + (0.5 if pixel_origin == "center" else 0.0)
    normalized = pixels_to_normalized(pixels, (height, width)).astype(np.float32)
    source_hash = int.from_bytes(hashlib.sha256(source.encode()).digest()[:4], "little")
    clips = []
    for start in range(0, num_frames - clip_length + 1, stride):
        window = slice(start, start + clip_length)
        keep = visibility[start] & np.all(np.abs(normalized[window]) <= MAX_ABS_COORD, axis=(0, 2))
        if keep.sum() < min_tracks:
            continue
        clips.append(
            Clip(
                frame=np.ascontiguousarray(frames[start]),
                tracks=np.ascontiguousarray(normalized[window][:, keep].transpose(1, 0, 2)),
                visibility=np.ascontiguousarray(visibility[window][:, keep].T),
                object_id=np.full(int(keep.sum()), -1, dtype=np.int32),
                fps=float(fps),
                text=text,
                # All windows of one video share a seed, hence a split: overlapping windows
                # must never straddle train and validation.
                seed=source_hash % 2**31,
                metadata={
                    "importer": IMPORTER_NAME,
                    "importer_version": IMPORTER_VERSION,
                    "source": source,
                    "start_frame": start,
                    "tracks_not_visible_at_start": int((~visibility[start]).sum()),
                    "tracks_out_of_range": int((visibility[start] & ~keep).sum()),
                },
            ).validate(f"{source or 'video'}, window starting at frame {start}")
        )
    return clips


def load_frames(path: str | Path) -> np.ndarray:
    """Read a video as `uint8 [F, H, W, 3]` from a .npy/.npz array or a folder of images
    (sorted by file name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError("frames", f"a folder with {'/'.join(IMAGE_SUFFIXES)} images", f"none in {path}")
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            key = "frames" if "frames" in archive else archive.files[0]
            return archive[key]
    raise InputError("frames", "a .npy/.npz file or a folder of images", str(path))


def import_tracker_files(
    frames_path: str | Path,
    tracks_path: str | Path,
    out: str | Path,
    fps: float,
    clip_length: int = 64,
    stride: int | None = None,
    pixel_origin: str = "center",
    min_tracks: int = 8,
    text: str | None = None,
    clips_per_shard: int = 64,
) -> ClipStore:
    """Convert a video file plus a tracker .npz (`tracks`, `visibility`) into a clip directory."""
    with np.load(tracks_path, allow_pickle=False) as archive:
        missing = {"tracks", "visibility"} - set(archive.files)
        if missing:
            raise InputError("tracks", "an .npz with arrays 'tracks' and 'visibility'", f"missing {sorted(missing)}")
        tracks, visibility = archive["tracks"], archive["visibility"]
    clips = clips_from_tracker(
        load_frames(frames_path), tracks, visibility, fps, clip_length, stride, pixel_origin, min_tracks, text,
        source=Path(frames_path).name,
    )
    if not clips:
        raise ValueError(f"{frames_path}: no window of {clip_length} frames with at least {min_tracks} visible tracks")
    store = ClipStore.create(out, {"name": IMPORTER_NAME, "version": IMPORTER_VERSION,
                                   "source": str(frames_path), "clip_length": clip_length, "stride": stride})
    for number, first in enumerate(range(0, len(clips), clips_per_shard)):
        store.add_shard(write_shard(Path(out) / shard_name(number), clips[first:first + clips_per_shard]))
    return store
