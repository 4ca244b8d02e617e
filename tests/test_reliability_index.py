"""Issue 19, item 2: index.json and the shards must agree, in every reader and in `verify`.

Each case edits one field of a valid index the way the adversarial run did; every reader
(`ClipStore.open`/`read_clip`, `ClipDataset`, `ClipStream`, `data verify`) must refuse it with
an error that names the file and the field, instead of serving other clips.
"""

from __future__ import annotations

import json

import pytest
from safetensors.numpy import save

from motion_prior.cli import main
from motion_prior.data.datasets import ClipDataset, ClipStream
from motion_prior.foundation.errors import CorruptShardError
from motion_prior.data.shards import INDEX_FILE, ClipStore
from motion_prior.foundation.checkpoints import file_sha256


def _edit_index(root, edit) -> None:
    index = json.loads((root / INDEX_FILE).read_text())
    edit(index)
    (root / INDEX_FILE).write_text(json.dumps(index))


def _read_everything(root) -> None:
    store = ClipStore.open(root)
    for i in range(store.num_clips):
        store.read_clip(i)
    dataset = ClipDataset(root)
    for i in range(len(dataset)):
        dataset[i]
    list(ClipStream(root, shuffle=False))
    assert not store.verify()


def _entry(index, key, value):
    index["shards"][0][key] = value


EDITS = {
    "seeds cut to half": (lambda x: _entry(x, "seeds", x["shards"][0]["seeds"][:2]), "seeds"),
    "seeds replaced": (lambda x: _entry(x, "seeds", [s + 1000 for s in x["shards"][0]["seeds"]]), "seeds"),
    "no shards listed": (lambda x: x.update(shards=[], num_clips=0), "not in the index"),
    "no shards listed, count kept": (lambda x: x.update(shards=[]), "num_clips"),
    "a shard listed twice": (lambda x: x.update(shards=[x["shards"][0]] * 2, num_clips=8), "more than once"),
    "num_clips too high": (lambda x: x.update(num_clips=10), "num_clips"),
    "num_clips too low": (lambda x: x.update(num_clips=3), "num_clips"),
    "num_clips negative": (lambda x: x.update(num_clips=-1), "num_clips"),
    "shard num_clips a string": (lambda x: _entry(x, "num_clips", "4"), "num_clips"),
    "shard num_clips changed with its seeds": (
        lambda x: (_entry(x, "num_clips", 3), _entry(x, "seeds", x["shards"][0]["seeds"][:3]),
                   x.update(num_clips=3)), "holds 4"),
    "absolute file": (lambda x: _entry(x, "file", "/etc/passwd.safetensors"), "file"),
    "file outside the folder": (lambda x: _entry(x, "file", "../shard-00000.safetensors"), "file"),
    "format_version 99": (lambda x: x.update(format_version=99), "format_version"),
    "format_version a string": (lambda x: x.update(format_version="1"), "format_version"),
    "frame_shape wrong": (lambda x: _entry(x, "frame_shape", [1, 2, 3]), "frame_shape"),
    "sha256 not hex": (lambda x: _entry(x, "sha256", "zz"), "sha256"),
    "shards not a list": (lambda x: x.update(shards={"file": "x"}), "shards"),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_every_reader_refuses_an_index_that_disagrees_with_its_shards(make_clip_dir, name, capsys):
    root = make_clip_dir([[1, 2, 3, 4]])
    _read_everything(root)  # the untouched directory reads
    edit, shown = EDITS[name]
    _edit_index(root, edit)
    with pytest.raises(CorruptShardError, match=shown) as raised:
        _read_everything(root)
    assert INDEX_FILE in str(raised.value) or "shard-00000" in str(raised.value)
    assert main(["data", "verify", str(root)]) != 0
    assert shown.split()[0] in capsys.readouterr().err


def _rewrite_header(path, edit) -> None:
    """Rewrite a shard's header metadata (keeping its tensors), like a buggy writer would."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    edit(metadata, tensors)
    path.write_bytes(save(tensors, metadata=metadata))


@pytest.mark.parametrize("edit, shown", [
    (lambda m, t: m.update(clips=json.dumps(json.loads(m["clips"])[:3]), num_clips="3"), "index.json says 4"),
    (lambda m, t: m.update(num_clips="9"), "header num_clips"),
    (lambda m, t: t.update({"7/frame": t["0/frame"]}), "belong to no clip"),
    (lambda m, t: m.update(format_version="99"), "format_version"),
    (lambda m, t: m.update(clips="[not json"), "not valid JSON"),
])
def test_shard_headers_must_agree_with_the_index_even_with_a_matching_checksum(make_clip_dir, edit, shown):
    root = make_clip_dir([[1, 2, 3, 4]])
    shard = root / "shard-00000.safetensors"
    _rewrite_header(shard, edit)
    _edit_index(root, lambda x: (_entry(x, "sha256", file_sha256(shard)), _entry(x, "bytes", shard.stat().st_size)))
    with pytest.raises(CorruptShardError, match=shown):
        _read_everything(root)


def test_directories_written_by_the_current_writer_still_read_and_resume(make_clip_dir):
    root = make_clip_dir([[5, 6], [7]])
    assert ClipStore.open(root).seeds() == [5, 6, 7]
    # A writer killed between writing a shard and indexing it: readers refuse, the writer resumes.
    (root / "shard-00009.safetensors").write_bytes((root / "shard-00000.safetensors").read_bytes())
    with pytest.raises(CorruptShardError, match="shard-00009.safetensors"):
        ClipStore.open(root)
    assert ClipStore.create(root, {"name": "test", "version": "0"}).num_clips == 3
