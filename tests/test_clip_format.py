"""The clip format: Clip.validate, safetensors shards + index, and the torch datasets."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from motion_prior.data.clips import ARRAY_FIELDS, SCALAR_FIELDS
from motion_prior.data.datasets import ACTION_POKES, ClipDataset, ClipStream, split_of
from motion_prior.data.shards import INDEX_FILE, ClipStore, ShardReader, shard_name, write_shard
from motion_prior.foundation.errors import ClipFormatError, CorruptShardError, InputError


def _assert_same_clip(read, written):
    for name in ARRAY_FIELDS:
        expected, actual = getattr(written, name), getattr(read, name)
        if expected is None:
            assert actual is None, name
            continue
        assert isinstance(actual, np.ndarray), name
        assert actual.dtype == expected.dtype, name
        assert actual.shape == expected.shape, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    for name in SCALAR_FIELDS:
        assert getattr(read, name) == getattr(written, name), name
        assert type(getattr(read, name)) is type(getattr(written, name)), name


def _files(root: Path) -> list[str]:
    return sorted(os.listdir(root))


# --- round trip ------------------------------------------------------------------------------


def test_shard_round_trip_with_every_optional_field(tmp_path, make_clip):
    clips = [make_clip(3, full=True), make_clip(4, n=5, t=8, full=True)]
    info = write_shard(tmp_path / shard_name(0), clips)
    reader = ShardReader(tmp_path / shard_name(0), info)
    assert len(reader) == 2
    for i, clip in enumerate(clips):
        _assert_same_clip(reader.read(i), clip)


def test_shard_round_trip_with_optional_fields_absent(tmp_path, make_clip):
    clip = make_clip(9)
    assert clip.pokes is None and clip.frames is None and clip.text is None and clip.intrinsics is None
    info = write_shard(tmp_path / "s.safetensors", [clip])
    _assert_same_clip(ShardReader(tmp_path / "s.safetensors", info).read(0), clip)


def test_store_round_trip_across_shards(tmp_path, make_clip):
    root = tmp_path / "clips"
    store = ClipStore.create(root, {"name": "test"})
    written = [[make_clip(10, full=True), make_clip(11)], [make_clip(12), make_clip(13, full=True), make_clip(14)]]
    for number, clips in enumerate(written):
        store.add_shard(write_shard(root / shard_name(number), clips))
    reopened = ClipStore.open(root)
    assert reopened.num_clips == 5
    assert reopened.seeds() == [10, 11, 12, 13, 14]
    flat = [c for clips in written for c in clips]
    for index, clip in enumerate(flat):
        _assert_same_clip(reopened.read_clip(index), clip)
    assert reopened.locate(3)[0].file == shard_name(1) and reopened.locate(3)[1] == 1
    with pytest.raises(IndexError):
        reopened.read_clip(5)


def test_index_records_counts_shapes_seeds_and_checksums(tmp_path, make_clip):
    root = tmp_path / "clips"
    producer = {"name": "test", "version": "1", "config": {"size": [12, 16]}}
    store = ClipStore.create(root, producer)
    store.add_shard(write_shard(root / shard_name(0), [make_clip(5, n=7, t=9), make_clip(6, n=7, t=9)],
                                producer_info={"scenes": [5, 6]}))
    store.add_shard(write_shard(root / shard_name(1), [make_clip(8, n=7, t=9)]))
    index = json.loads((root / INDEX_FILE).read_text())
    assert index["format"] == "motion_prior.clips"  # what existing clip directories carry: never renamed
    assert index["num_clips"] == 3
    assert index["producer"] == producer
    entries = index["shards"]
    assert [e["file"] for e in entries] == [shard_name(0), shard_name(1)]
    assert [e["num_clips"] for e in entries] == [2, 1]
    assert [e["seeds"] for e in entries] == [[5, 6], [8]]
    assert entries[0]["frame_shape"] == [12, 16, 3] and entries[0]["tracks_shape"] == [7, 9, 2]
    assert entries[0]["producer_info"] == {"scenes": [5, 6]}
    for entry in entries:
        data = (root / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)


def test_numpy_integer_seed_is_stored_as_a_plain_int(tmp_path, make_clip):
    clip = make_clip(2, full=True)
    clip.seed = np.int64(2**40 + 3)
    write_shard(tmp_path / "s.safetensors", [clip])
    read = ShardReader(tmp_path / "s.safetensors").read(0)
    assert read.seed == 2**40 + 3 and type(read.seed) is int


# --- corruption ------------------------------------------------------------------------------


def _store_with_two_shards(make_clip_dir) -> Path:
    return make_clip_dir([[1, 2, 3], [4, 5]])


def test_flipped_bytes_raise_corrupt_shard_error_naming_file_and_checksum(make_clip_dir):
    root = _store_with_two_shards(make_clip_dir)
    path = root / shard_name(1)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    path.write_bytes(bytes(data))
    store = ClipStore.open(root)
    assert store.read_clip(0).seed == 1  # the intact shard still reads
    with pytest.raises(CorruptShardError) as info:
        store.read_clip(3)
    message = str(info.value)
    assert shard_name(1) in message and "SHA-256" in message
    assert store.shards[1].sha256[:12] in message
    assert info.value.shard.endswith(shard_name(1))


def test_truncated_shard_raises_corrupt_shard_error_mentioning_the_size(make_clip_dir):
    root = _store_with_two_shards(make_clip_dir)
    path = root / shard_name(0)
    expected = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptShardError, match=rf"{shard_name(0)}.*size {expected - 100} bytes, index says {expected}"):
        ClipStore.open(root).read_clip(0)


def test_missing_shard_is_reported(make_clip_dir):
    root = _store_with_two_shards(make_clip_dir)
    (root / shard_name(1)).unlink()
    store = ClipStore.open(root)
    assert not store.has_shard(shard_name(1)) and store.has_shard(shard_name(0))
    with pytest.raises(CorruptShardError, match=rf"{shard_name(1)}.*missing"):
        store.read_clip(4)
    problems = store.verify()
    assert len(problems) == 1 and "missing" in str(problems[0])


def test_verify_returns_the_problems_instead_of_raising(make_clip_dir):
    root = make_clip_dir([[1, 2], [3], [4, 5]])
    assert ClipStore.open(root).verify() == []
    path = root / shard_name(2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    problems = ClipStore.open(root).verify()
    assert len(problems) == 1
    assert isinstance(problems[0], CorruptShardError) and shard_name(2) in str(problems[0])


def test_foreign_safetensors_file_is_not_accepted(tmp_path):
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CorruptShardError, match="not a motion_prior.clips shard"):
        ShardReader(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptShardError, match="junk.safetensors"):
        ShardReader(tmp_path / "junk.safetensors")


def test_open_without_index_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.json"):
        ClipStore.open(tmp_path)


# --- Clip.validate ---------------------------------------------------------------------------


def _nan_tracks(make_clip):
    clip = make_clip(0)
    clip.tracks[2, 3, 1] = np.nan
    return clip


@pytest.mark.parametrize(
    "mutate, field, shown",
    [
        (lambda c: _nan_tracks(c), "tracks", "1 non-finite"),
        (lambda c: c(0, tracks=c(0).tracks.astype(np.float64)), "tracks", "float64"),
        (lambda c: c(0, tracks=c(0).tracks * 40.0), "tracks", "values in"),
        (lambda c: c(0, frame=c(0).frame.astype(np.float32)), "frame", "float32"),
        (lambda c: c(0, visibility=np.ones((6, 7), bool)), "visibility", "[6, 7]"),
        (lambda c: c(0, visibility=np.ones((6, 8), np.uint8)), "visibility", "uint8"),
        (lambda c: c(0, object_id=np.full(6, 2, np.int32)), "object_id", "range [2, 2]"),
        (lambda c: c(0, object_id=np.full(6, -2, np.int32)), "object_id", "range [-2, -2]"),
        (lambda c: c(0, object_id=np.zeros(6, np.int64)), "object_id", "int64"),
        (lambda c: c(0, fps=0.0), "fps", "0.0"),
        (lambda c: c(0, full=True, pokes=np.array([[0, 0, 0.1, 0.1, 0.0]], np.float32)), "pokes", "end_time"),
        (lambda c: c(0, full=True, pokes=np.array([[0, 0, 0.1, 0.1, 1.5]], np.float32)), "pokes", "end_time"),
        (lambda c: c(0, full=True, frame_indices=np.array([5, 5], np.int32)), "frame_indices", "strictly"),
        (lambda c: c(0, full=True, frame_indices=np.array([2, 8], np.int32)), "frame_indices", "[0, 8)"),
        (lambda c: c(0, full=True, frame_indices=None), "frame_indices", "only one"),
        (lambda c: c(0, full=True, action_times=np.array([0, 0.5, 1.2], np.float32)), "action_times", "values in"),
        (lambda c: c(0, full=True, intrinsics=np.eye(3, dtype=np.float32)), "intrinsics", "float32"),
        (lambda c: c(0, text=3), "text", "3"),
        (lambda c: c(0, metadata={"a": object()}), "metadata", "JSON"),
    ],
)
def test_validate_names_the_bad_field(make_clip, mutate, field, shown):
    clip = mutate(make_clip)
    with pytest.raises(ClipFormatError) as info:
        clip.validate("shard-00007.safetensors, clip 3")
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith("shard-00007.safetensors, clip 3: ") and f"field '{field}'" in message
    assert shown in message


def test_validate_accepts_valid_clips_including_off_image_tracks(make_clip):
    clip = make_clip(1, full=True)
    clip.tracks[0, -1] = [3.0, -5.0]  # points may leave the image
    assert clip.validate() is clip
    assert make_clip(2, object_id=np.full(6, -1, np.int32), object_names=[]).validate()


def test_write_shard_refuses_invalid_clips_and_writes_nothing(tmp_path, make_clip):
    with pytest.raises(ClipFormatError, match=r"shard-00000.safetensors, clip 1 \(being written\).*'tracks'"):
        write_shard(tmp_path / shard_name(0), [make_clip(0), _nan_tracks(make_clip)])
    assert _files(tmp_path) == []
    with pytest.raises(ValueError, match="at least one clip"):
        write_shard(tmp_path / shard_name(0), [])


# --- create / resume / atomic writes ---------------------------------------------------------


def test_create_refuses_a_directory_of_another_producer(make_clip_dir):
    root = make_clip_dir([[1, 2]], producer={"name": "gen", "config": {"points": 32}})
    with pytest.raises(ValueError, match="different producer config"):
        ClipStore.create(root, {"name": "gen", "config": {"points": 64}})
    resumed = ClipStore.create(root, {"name": "gen", "config": {"points": 32}})
    assert resumed.num_clips == 2 and resumed.has_shard(shard_name(0))


def test_writes_leave_no_temporary_files(make_clip_dir):
    root = make_clip_dir([[1, 2], [3]])
    assert _files(root) == [INDEX_FILE, shard_name(0), shard_name(1)]


def test_written_files_are_as_readable_as_plain_ones(make_clip_dir, tmp_path):
    # Staged through tempfile, whose files are private (0600); a dataset shared between users, or
    # read by a service under another user, must keep the mode open() gives under the umask.
    root = make_clip_dir([[1, 2]])
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    expected = plain.stat().st_mode & 0o777
    assert expected == 0o666 & ~os.umask(os.umask(0o022))
    assert {(root / name).stat().st_mode & 0o777 for name in _files(root)} == {expected}


def test_failed_shard_write_leaves_no_partial_file_and_keeps_the_old_shard(tmp_path, make_clip, monkeypatch):
    path = tmp_path / shard_name(0)
    write_shard(path, [make_clip(1)])
    before = path.read_bytes()

    def crash(fd):
        raise KeyboardInterrupt  # the writer is killed after writing, before the rename

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        write_shard(path, [make_clip(2)])
    assert _files(tmp_path) == [shard_name(0)]
    assert path.read_bytes() == before


# --- splits and datasets ---------------------------------------------------------------------


def test_split_of_is_deterministic_and_respects_fractions():
    seeds = range(2000)
    first = [split_of(s) for s in seeds]
    assert first == [split_of(s) for s in seeds]
    counts = Counter(first)
    assert set(counts) == {"train", "val", "test"}
    assert abs(counts["train"] / 2000 - 0.9) < 0.03
    assert abs(counts["val"] / 2000 - 0.05) < 0.02 and abs(counts["test"] / 2000 - 0.05) < 0.02
    halves = Counter(split_of(s, (0.5, 0.25, 0.25)) for s in seeds)
    assert abs(halves["train"] / 2000 - 0.5) < 0.05 and abs(halves["val"] / 2000 - 0.25) < 0.04
    assert {split_of(s, (0.0, 0.0, 1.0)) for s in range(100)} == {"test"}


def test_growing_the_training_fraction_only_moves_clips_into_train():
    for seed in range(500):
        if split_of(seed, (0.5, 0.25, 0.25)) == "train":
            assert split_of(seed, (0.8, 0.1, 0.1)) == "train"


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.9, 0.2, -0.1), (0.5, 0.2, 0.2)])
def test_split_of_rejects_bad_fractions(fractions):
    with pytest.raises(InputError, match="fractions"):
        split_of(0, fractions)


FRACTIONS = (0.5, 0.25, 0.25)


def test_dataset_splits_are_disjoint_and_cover_every_clip(make_clip_dir):
    seeds = list(range(100, 160))
    root = make_clip_dir([seeds[:25], seeds[25:40], seeds[40:]])
    everything = ClipDataset(root)
    assert len(everything) == 60
    covered = []
    for split in ("train", "val", "test"):
        dataset = ClipDataset(root, split, FRACTIONS)
        assert len(dataset) > 0
        indices = [int(dataset[i]["clip_index"]) for i in range(len(dataset))]
        assert all(split_of(seeds[i], FRACTIONS) == split for i in indices)
        assert all(dataset.clip(i).seed == seeds[index] for i, index in enumerate(indices))
        covered += indices
    assert sorted(covered) == list(range(60))
    with pytest.raises(InputError, match="split"):
        ClipDataset(root, "validation")


def test_dataset_sample_has_the_documented_keys_dtypes_and_shapes(make_clip_dir, make_clip):
    root = make_clip_dir([[1, 2, 3], [4, 5]], n=6, t=8)
    dataset = ClipDataset(root)
    sample = dataset[3]
    assert set(sample) == {"frame", "tracks", "visibility", "object_id", "point_category", "path_gap", "clip_index",
                           "text", "action_pokes", "action_poke_count"}
    assert sample["path_gap"].isnan().all()  # no scene recorded
    assert sample["text"] == ""  # clips without a description
    assert int(sample["action_poke_count"]) == 0 and not sample["action_pokes"].any()  # ... or an action
    described = ClipDataset(make_clip_dir([[7]], name="described", full=True))[0]
    full = make_clip(7, full=True)
    assert described["text"] == full.text
    assert int(described["action_poke_count"]) == len(full.pokes)
    np.testing.assert_array_equal(described["action_pokes"][: len(full.pokes)].numpy(), full.pokes)
    assert not described["action_pokes"][len(full.pokes):].any()
    expected = {"frame": (torch.uint8, (12, 16, 3)), "tracks": (torch.float32, (6, 8, 2)),
                "visibility": (torch.bool, (6, 8)), "object_id": (torch.int64, (6,)),
                "point_category": (torch.int64, (6,)), "path_gap": (torch.float32, (6,)),
                "clip_index": (torch.int64, ()),
                "action_pokes": (torch.float32, (ACTION_POKES, 5)), "action_poke_count": (torch.int64, ())}
    for key, (dtype, shape) in expected.items():
        assert sample[key].dtype == dtype and tuple(sample[key].shape) == shape, key
    clip = make_clip(4, n=6, t=8)
    np.testing.assert_array_equal(sample["frame"].numpy(), clip.frame)
    np.testing.assert_array_equal(sample["tracks"].numpy(), clip.tracks)
    np.testing.assert_array_equal(sample["visibility"].numpy(), clip.visibility)
    np.testing.assert_array_equal(sample["object_id"].numpy(), clip.object_id)
    assert int(sample["clip_index"]) == 3

    batch = next(iter(DataLoader(dataset, batch_size=4, shuffle=False)))
    assert tuple(batch["tracks"].shape) == (4, 6, 8, 2) and batch["tracks"].dtype == torch.float32
    assert tuple(batch["frame"].shape) == (4, 12, 16, 3) and batch["visibility"].dtype == torch.bool
    assert batch["clip_index"].tolist() == [0, 1, 2, 3]


def _stream_indices(stream, num_workers=2) -> list[int]:
    loader = DataLoader(stream, batch_size=None, num_workers=num_workers)
    return [int(sample["clip_index"]) for sample in loader]


def test_stream_yields_each_clip_of_the_split_once_per_epoch_across_workers(make_clip_dir):
    seeds = list(range(200, 240))
    root = make_clip_dir([seeds[i:i + 8] for i in range(0, 40, 8)])  # 5 shards
    expected = sorted(i for i, s in enumerate(seeds) if split_of(s, FRACTIONS) == "train")
    assert 10 < len(expected) < 40
    stream = ClipStream(root, "train", shuffle=True, seed=7, fractions=FRACTIONS)
    epoch0 = _stream_indices(stream)
    assert sorted(epoch0) == expected  # every clip once, none twice: workers read disjoint shards
    stream.set_epoch(1)
    epoch1 = _stream_indices(stream)
    assert sorted(epoch1) == expected
    assert epoch1 != epoch0
    stream.set_epoch(0)
    assert _stream_indices(stream, num_workers=0) == _stream_indices(ClipStream(
        root, "train", shuffle=True, seed=7, fractions=FRACTIONS), num_workers=0)


def test_stream_without_split_or_shuffle_reads_everything_in_order(make_clip_dir):
    root = make_clip_dir([[1, 2, 3], [4, 5]])
    stream = ClipStream(root, None, shuffle=False)
    samples = list(stream)
    assert [int(s["clip_index"]) for s in samples] == [0, 1, 2, 3, 4]
    assert samples[4]["tracks"].shape == (6, 8, 2)


def test_the_pusher_and_the_object_that_moves_most_are_read_from_the_point_categories(make_clip):
    clip = make_clip(0, n=5, t=4)
    clip.object_id = np.array([0, 0, 1, 1, 2], dtype=np.int32)
    clip.metadata = {"point_categories": ["object", "object", "object", "object", "pusher"]}
    clip.tracks = np.zeros((5, 4, 2), dtype=np.float32)
    clip.tracks[2:4, -1] = 0.3  # object 1 moves, object 0 stays
    pusher, moved = clip.pusher_and_moved_object()
    assert pusher.tolist() == [4] and moved.tolist() == [2, 3]
    clip.metadata = {}
    assert clip.pusher_and_moved_object() is None
    clip.metadata = {"point_categories": ["object"] * 5}  # no pusher
    assert clip.pusher_and_moved_object() is None


def test_each_point_s_category_reaches_the_training_sample_and_is_unknown_where_the_clip_records_none(make_clip):
    from motion_prior.data.datasets import clip_to_sample

    assert make_clip(0, n=5).category_ids().tolist() == [-1] * 5
    named = make_clip(0, n=3, metadata={"point_categories": ["pusher", "object", "background"]})
    assert named.category_ids().tolist() == [1, 0, 2]
    assert clip_to_sample(named, 0)["point_category"].tolist() == [1, 0, 2]
    named.metadata = {"point_categories": ["pusher", "lid", "background"]}  # an unknown name
    assert named.category_ids().tolist() == [1, -1, 2]
