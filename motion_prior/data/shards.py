"""On-disk storage of clips: safetensors shards of many clips plus an `index.json`.

Layout of a clip directory::

    DIR/index.json               what is there: shards, clip counts, shapes, seeds, checksums,
                                 and the config/version of whatever produced the clips
    DIR/shard-00000.safetensors  tensors "<i>/<field>" for clip i of the shard; per-clip
                                 scalars (fps, text, seed, ...) as JSON in the header metadata

Shards are written to a temporary file and renamed into place, and the index is rewritten the
same way after each shard, so a killed writer never leaves anything a reader would accept half
done. Each shard's SHA-256 sits in the index; readers check it before trusting a shard.
safetensors holds only raw tensors (no pickle), so reading untrusted data is safe.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from motion_prior.data.clips import ARRAY_FIELDS, SCALAR_FIELDS, Clip
from motion_prior.foundation.checkpoints import atomic_write_bytes, file_sha256
from motion_prior.foundation.errors import ClipFormatError, CorruptShardError

FORMAT_NAME = "motion_prior.clips"  # written into every index and shard: existing clip directories carry it
FORMAT_VERSION = 1
INDEX_FILE = "index.json"


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


@dataclass
class ShardInfo:
    """What the index records about one shard."""

    file: str
    num_clips: int
    sha256: str
    bytes: int
    seeds: list[int]
    frame_shape: list[int]
    tracks_shape: list[int]
    producer_info: dict = field(default_factory=dict)
    """Whatever the producer records per shard (the generator: its scenes and skipped ones)."""

    @classmethod
    def from_json(cls, data: dict, where: str = "") -> "ShardInfo":
        """An index entry, checked field by field (`where` locates it in error messages).

        Raises:
            CorruptShardError: a missing field or one of the wrong type or value.
        """
        def bad(name: str, expected: str):
            received = data.get(name, "nothing") if isinstance(data, dict) else data
            return CorruptShardError(where, f"field '{name}': expected {expected}, got {received!r}"[:300])

        if not isinstance(data, dict):
            raise bad("(entry)", "an object")
        file = data.get("file")
        # Only a bare name: an index must not make a reader open files outside its directory.
        if not isinstance(file, str) or file != Path(file).name or file in ("", ".", "..") or "\\" in file \
                or not file.endswith(".safetensors"):
            raise bad("file", "a *.safetensors file name inside the clip directory")
        if not (_is_int(data.get("num_clips")) and data["num_clips"] >= 1):
            raise bad("num_clips", "a positive integer")
        checks = {
            "sha256": (isinstance(data.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", data["sha256"]) is not None,
                       "64 lower-case hex digits"),
            "bytes": (_is_int(data.get("bytes")) and data.get("bytes", -1) >= 0, "a non-negative integer"),
            "seeds": (isinstance(data.get("seeds"), list) and all(_is_int(v) for v in data["seeds"])
                      and len(data["seeds"]) == data["num_clips"], f"a list of {data['num_clips']} integer seeds (num_clips)"),
            "frame_shape": (_is_shape(data.get("frame_shape")), "a list of 3 non-negative integers"),
            "tracks_shape": (_is_shape(data.get("tracks_shape")), "a list of 3 non-negative integers"),
            "producer_info": (isinstance(data.get("producer_info", {}), dict), "an object"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise bad(name, expected)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_shape(value) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_is_int(v) and v >= 0 for v in value)


def write_shard(path: Path, clips: list[Clip], producer_info: dict | None = None) -> ShardInfo:
    """Validate `clips` and write them atomically as one shard at `path`.

    Safe to call from worker processes: it touches only `path` (and a temporary sibling).
    """
    path = Path(path)
    if not clips:
        raise ValueError("write_shard: clips: expected at least one clip, got none")
    tensors: dict[str, np.ndarray] = {}
    scalars = []
    for i, clip in enumerate(clips):
        clip.validate(f"{path.name}, clip {i} (being written)")
        for name, value in clip.array_fields().items():
            tensors[f"{i}/{name}"] = np.ascontiguousarray(value)
        scalars.append({k: (int(v) if k == "seed" else v) for k, v in clip.scalar_fields().items()})
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "num_clips": str(len(clips)),
        "clips": json.dumps(scalars),
    }
    data = save(tensors, metadata=metadata)
    atomic_write_bytes(path, data)
    return ShardInfo(
        file=path.name,
        num_clips=len(clips),
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        seeds=[int(c.seed) for c in clips],
        frame_shape=list(clips[0].frame.shape),
        tracks_shape=list(clips[0].tracks.shape),
        producer_info=producer_info or {},
    )


class ShardReader:
    """Reads clips from one shard after checking it against its index entry.

    Raises:
        CorruptShardError: the file is missing, has the wrong size or checksum, or its header
            cannot be parsed.
    """

    def __init__(self, path: Path, info: ShardInfo | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise CorruptShardError(str(self.path), "file is missing")
        if info is not None:
            size = self.path.stat().st_size
            if size != info.bytes:
                raise CorruptShardError(str(self.path), f"size {size} bytes, index says {info.bytes} (truncated?)")
            sha = file_sha256(self.path)
            if sha != info.sha256:
                raise CorruptShardError(str(self.path), f"SHA-256 {sha[:12]}..., index says {info.sha256[:12]}...")
        try:
            self._handle = safe_open(str(self.path), framework="numpy")
            metadata = self._handle.metadata() or {}
        except (SafetensorError, OSError) as error:
            raise CorruptShardError(str(self.path), f"cannot parse safetensors header ({error})") from None
        if metadata.get("format") != FORMAT_NAME:
            raise CorruptShardError(str(self.path), f"not a {FORMAT_NAME} shard (format={metadata.get('format')!r})")
        if metadata.get("format_version") not in [str(v) for v in range(1, FORMAT_VERSION + 1)]:
            raise CorruptShardError(str(self.path), f"header format_version {metadata.get('format_version')!r} is not "
                                                    f"one this reader knows (1 to {FORMAT_VERSION})")
        try:
            self._scalars = json.loads(metadata.get("clips", ""))
        except json.JSONDecodeError as error:
            raise CorruptShardError(str(self.path), f"header field 'clips' is not valid JSON ({error})") from None
        if not isinstance(self._scalars, list) or not all(isinstance(c, dict) for c in self._scalars):
            raise CorruptShardError(str(self.path), "header field 'clips': expected a list of objects")
        self._keys = set(self._handle.keys())
        self._check_consistency(metadata, info)

    def _check_consistency(self, metadata: dict, info: ShardInfo | None) -> None:
        """The header's clip count, its per-clip scalars, its tensors and the index entry must
        all describe the same clips (a mismatch would lose clips or move them between splits)."""
        n = len(self._scalars)
        problems = []
        if metadata.get("num_clips") != str(n):
            problems.append(f"header num_clips {metadata.get('num_clips')!r} but {n} clips in header field 'clips'")
        stray = sorted(k for k in self._keys if k.partition("/")[0] not in {str(i) for i in range(n)}
                       or k.partition("/")[2] not in ARRAY_FIELDS)
        if stray:
            problems.append(f"tensors {stray[:3]} belong to no clip of the {n} in the header")
        if info is not None:
            seeds = [c.get("seed") for c in self._scalars]
            if info.num_clips != n:
                problems.append(f"index.json says {info.num_clips} clips, the header holds {n}")
            elif info.seeds != seeds:
                problems.append("index.json seeds differ from the header's at clip "
                                f"{next(i for i, (a, b) in enumerate(zip(info.seeds, seeds)) if a != b)}")
            for name, recorded in (("frame", info.frame_shape), ("tracks", info.tracks_shape)):
                if n and f"0/{name}" in self._keys and self._handle.get_slice(f"0/{name}").get_shape() != recorded:
                    problems.append(f"index.json {name}_shape {recorded}, clip 0 has "
                                    f"{self._handle.get_slice(f'0/{name}').get_shape()}")
        if problems:
            raise CorruptShardError(str(self.path), "; ".join(problems))

    def __len__(self) -> int:
        return len(self._scalars)

    def read(self, i: int) -> Clip:
        """Read and validate clip `i` of this shard."""
        if not 0 <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {self.path.name} with {len(self)} clips")
        where = f"{self.path.name}, clip {i}"
        arrays = {}
        for name in ARRAY_FIELDS:
            key = f"{i}/{name}"
            if key in self._keys:
                try:
                    arrays[name] = self._handle.get_tensor(key)
                except (SafetensorError, OSError) as error:
                    raise CorruptShardError(str(self.path), f"{where}: cannot read field '{name}' ({error})") from None
        for required in ("frame", "tracks", "visibility", "object_id"):
            if required not in arrays:
                raise ClipFormatError(required, "a stored array", "nothing", where)
        scalars = {k: self._scalars[i][k] for k in SCALAR_FIELDS if k in self._scalars[i]}
        return Clip(**arrays, **scalars).validate(where)


@dataclass
class ClipStore:
    """A directory of clip shards and its index.

    Use :meth:`create` to start or resume writing, :meth:`open` to read.
    """

    root: Path
    shards: list[ShardInfo] = field(default_factory=list)
    producer: dict = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path, unlisted_ok: bool = False) -> "ClipStore":
        """Read and check `root/index.json`: a known format version, well-formed shard entries
        with distinct file names inside `root`, `num_clips` equal to their sum, and no shard
        file in `root` that the index leaves out (`unlisted_ok`: a writer resuming after a
        kill between writing a shard and indexing it, which rewrites that shard).

        Raises:
            FileNotFoundError: no index.
            CorruptShardError: the index is not valid or disagrees with the directory.
        """
        root = Path(root)
        index_path = root / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(f"{root}: no {INDEX_FILE}; is this a clip directory (motion-prior data generate)?")
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptShardError(str(index_path), f"invalid JSON ({error})") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
            found = index.get("format") if isinstance(index, dict) else type(index).__name__
            raise CorruptShardError(str(index_path), f"not a {FORMAT_NAME} index (format={found!r})")
        version = index.get("format_version")
        if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
            raise CorruptShardError(str(index_path), f"field 'format_version': expected an integer from 1 to "
                                                     f"{FORMAT_VERSION} (this reader), got {version!r}")
        if not isinstance(index.get("shards"), list):
            raise CorruptShardError(str(index_path), f"field 'shards': expected a list, got {index.get('shards')!r}")
        if not isinstance(index.get("producer", {}), dict):
            raise CorruptShardError(str(index_path), "field 'producer': expected an object")
        shards = [ShardInfo.from_json(s, f"{index_path}, shards[{i}]") for i, s in enumerate(index["shards"])]
        files = [s.file for s in shards]
        duplicates = sorted({f for f in files if files.count(f) > 1})
        if duplicates:
            raise CorruptShardError(str(index_path), f"field 'shards': {duplicates} listed more than once")
        if files != sorted(files):  # the order defines global clip indices; writers sort by name
            raise CorruptShardError(str(index_path), f"field 'shards': expected entries sorted by file name, got {files[:5]}")
        total = sum(s.num_clips for s in shards)
        if not _is_int(index.get("num_clips")) or index["num_clips"] != total:
            raise CorruptShardError(str(index_path), f"field 'num_clips': expected {total} (the sum over its shards), "
                                                     f"got {index.get('num_clips')!r}")
        unlisted = sorted({p.name for p in root.glob("*.safetensors")} - set(files))
        if unlisted and not unlisted_ok:
            raise CorruptShardError(str(index_path), f"shard files {unlisted[:3]} are in {root} but not in the index "
                                                     "(an interrupted writer? rerun it to finish)")
        return cls(root=root, shards=shards, producer=index.get("producer", {}))

    @classmethod
    def create(cls, root: str | Path, producer: dict) -> "ClipStore":
        """Open `root` for writing, creating it if needed.

        An existing store is resumed only if it was made by the same `producer` (generator
        name, version and config), so resumed data never mixes two configurations.
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        if (root / INDEX_FILE).exists():
            store = cls.open(root, unlisted_ok=True)
            if store.producer != producer:
                raise ValueError(
                    f"{root} holds clips made with a different producer config; "
                    f"stored {json.dumps(store.producer, sort_keys=True)[:300]}, "
                    f"requested {json.dumps(producer, sort_keys=True)[:300]}. Use a new --out directory."
                )
            return store
        store = cls(root=root, producer=producer)
        store.save_index()
        return store

    def save_index(self) -> None:
        index = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "num_clips": self.num_clips,
            "producer": self.producer,
            "shards": [vars(s) for s in sorted(self.shards, key=lambda s: s.file)],
        }
        atomic_write_bytes(self.root / INDEX_FILE, json.dumps(index, indent=1).encode())

    def add_shard(self, info: ShardInfo) -> None:
        """Record a shard written by :func:`write_shard` into this directory."""
        self.shards = [s for s in self.shards if s.file != info.file] + [info]
        self.shards.sort(key=lambda s: s.file)
        self.save_index()

    def has_shard(self, file: str) -> bool:
        return any(s.file == file for s in self.shards) and (self.root / file).is_file()

    @property
    def num_clips(self) -> int:
        return sum(s.num_clips for s in self.shards)

    def locate(self, index: int) -> tuple[ShardInfo, int]:
        """Map a global clip index to (shard, index within shard)."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip index {index} out of range for {self.root} with {self.num_clips} clips")
        for info in self.shards:
            if index < info.num_clips:
                return info, index
            index -= info.num_clips
        raise AssertionError("unreachable")

    def reader(self, info: ShardInfo, verify: bool = True) -> ShardReader:
        return ShardReader(self.root / info.file, info if verify else None)

    def read_clip(self, index: int) -> Clip:
        info, local = self.locate(index)
        return self.reader(info).read(local)

    def seeds(self) -> list[int]:
        """The seed of every clip, in global index order."""
        return [seed for info in self.shards for seed in info.seeds]

    def verify(self) -> list[CorruptShardError | ClipFormatError]:
        """Check every shard's checksum and every clip's fields; return the problems found."""
        problems = []
        for info in self.shards:
            try:
                reader = self.reader(info)
                for i in range(len(reader)):
                    reader.read(i)
            except (CorruptShardError, ClipFormatError) as error:
                problems.append(error)
        return problems
