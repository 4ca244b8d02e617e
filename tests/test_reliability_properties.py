"""Issue 19, property-based (Hypothesis, fixed example budgets): any input to `MotionPrior.sample`
/ `sample_batch` either works or raises InputError, and any random edit of a clip index is either
read as the very same clips or refused with an error naming the index or shard."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motion_prior.foundation.errors import ClipFormatError, CorruptShardError, InputError
from motion_prior.inference.prior import MotionPrior
from motion_prior.data.shards import INDEX_FILE, ClipStore
from conftest import build_clip

BUDGET = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

numbers = st.one_of(st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.just(1e30), st.just(np.float32(2.0)), st.just(2**70), st.none(), st.text(max_size=3))


def _array(data, shape_options, dtypes=("float32", "float64", "int64", "uint8", "bool", "complex64")):
    draw = data.draw
    shape = draw(st.sampled_from(shape_options))
    dtype = draw(st.sampled_from(dtypes))
    values = draw(st.lists(st.one_of(st.floats(-40, 40), st.sampled_from([np.nan, np.inf, 1e30, 0.5, 1.0])),
                           min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.array(values, dtype=np.float64).reshape(shape).astype(dtype)


@st.composite
def calls(draw):
    """Keyword arguments of one `sample_batch` call: each argument valid 9 times in 10, else wild."""
    def pick(valid, wild):
        return draw(wild if draw(st.integers(0, 9)) == 9 else valid)

    frames = st.builds(lambda h, w: np.full((h, w, 3), 90, np.uint8), st.integers(1, 24), st.integers(1, 24))
    poke_sets = st.lists(st.builds(lambda x0, y0, x1, y1, t: [[x0, y0, x1, y1, t]], *[st.floats(0, 20)] * 4,
                                   st.floats(0.05, 1.0)), min_size=1, max_size=2)
    return dict(
        frame=pick(frames, st.builds(lambda d: _array(d, [(8, 8, 3), (8, 8), (0, 8, 3), (8, 8, 4)]), st.data())),
        pokes=pick(st.one_of(st.none(), poke_sets), st.one_of(
            st.just([]), st.just([[1.0, 2.0, 3.0, 4.0, 0.5], [1.0, 2.0]]),
            st.lists(st.builds(lambda d: _array(d, [(1, 5), (2, 5), (0, 5), (1, 4), (5,)]), st.data()),
                     min_size=1, max_size=2))),
        query_points=pick(st.one_of(st.none(), st.lists(st.tuples(st.floats(-5, 25), st.floats(-5, 25)), min_size=1,
                                                        max_size=3)),
                          st.builds(lambda d: _array(d, [(1, 2), (3, 2), (0, 2), (2, 3)]), st.data())),
        text=pick(st.one_of(st.none(), st.text(max_size=12)), st.sampled_from([3, b"push", ["push"]])),
        num_samples=pick(st.integers(1, 2), numbers),
        steps=pick(st.integers(1, 2), numbers),
        guidance=pick(st.one_of(st.floats(1, 10), st.just(np.float32(2))), numbers),
        seed=pick(st.one_of(st.none(), st.integers(-2**63, 2**64 - 1)), numbers),
        coords=pick(st.sampled_from(["pixels", "normalized"]), st.sampled_from(["metres", None, 0])),
        method=pick(st.sampled_from(["euler", "heun"]), st.sampled_from(["rk4", None])),
        grid_size=pick(st.integers(1, 3), numbers),
    )


@pytest.fixture(scope="module")
def tiny_prior(tiny_model):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MotionPrior.load(tiny_model)
    torch.set_num_threads(before)


def test_any_sampling_input_either_works_or_is_an_input_error(tiny_prior):
    @BUDGET
    @given(calls())
    def check(call):
        if isinstance(call["grid_size"], int) and call["grid_size"] > 3 and call["query_points"] is None:
            call["grid_size"] = 3  # keep each example fast; sizes are bounded elsewhere
        if isinstance(call["num_samples"], int) and call["num_samples"] > 2:
            call["num_samples"] = 2
        try:
            batch = tiny_prior.sample_batch(**call)
        except InputError as error:
            assert error.argument and error.expected
            return
        assert np.all(np.isfinite(batch.tracks)) and batch.tracks.shape[1] == call["num_samples"]

    check()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from motion_prior.data.shards import shard_name, write_shard

    root = tmp_path_factory.mktemp("property_index") / "clips"
    store = ClipStore.create(root, {"name": "test", "version": "0"})
    for number, seeds in enumerate([[1, 2, 3], [4, 5]]):
        store.add_shard(write_shard(root / shard_name(number), [build_clip(s) for s in seeds]))
    return root


def _everything(root) -> list[tuple[int, bytes]]:
    store = ClipStore.open(root)
    clips = [store.read_clip(i) for i in range(store.num_clips)]
    return [(c.seed, c.tracks.tobytes() + c.frame.tobytes()) for c in clips]


values = st.one_of(st.integers(-3, 12), st.text(max_size=8), st.none(), st.booleans(), st.floats(allow_nan=True),
                   st.lists(st.integers(0, 9), max_size=4), st.sampled_from(["../x.safetensors", "/abs.safetensors",
                                                                           "shard-00001.safetensors"]))


@st.composite
def index_edits(draw):
    """(path into index.json, new value or a deletion) for one random edit."""
    top = draw(st.sampled_from(["format", "format_version", "num_clips", "producer", "shards", "shard"]))
    if top != "shard":
        return [top], draw(st.one_of(values, st.just("<delete>")))
    field = draw(st.sampled_from(["file", "num_clips", "sha256", "bytes", "seeds", "frame_shape", "tracks_shape",
                                  "producer_info", "<duplicate>", "<swap>"]))
    return ["shards", draw(st.integers(0, 1)), field], draw(st.one_of(values, st.just("<delete>")))


def _apply(index: dict, path: list, value) -> None:
    if path[-1] == "<duplicate>":
        index["shards"].append(index["shards"][path[1]])
    elif path[-1] == "<swap>":
        index["shards"].reverse()
    else:
        target = index["shards"][path[1]] if len(path) == 3 else index
        if value == "<delete>":
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value


def test_any_index_edit_reads_the_same_clips_or_is_refused_naming_the_file(clip_dir):
    original_text = (clip_dir / INDEX_FILE).read_text()
    expected = _everything(clip_dir)

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(index_edits())
    def check(edit):
        index = json.loads(original_text)
        _apply(index, *edit)
        (clip_dir / INDEX_FILE).write_text(json.dumps(index))
        try:
            got = _everything(clip_dir)
        except (CorruptShardError, ClipFormatError) as error:
            assert INDEX_FILE in str(error) or "shard-0000" in str(error), str(error)
            return
        finally:
            (clip_dir / INDEX_FILE).write_text(original_text)
        assert got == expected, f"edit {edit} was accepted but changed the clips"

    check()
