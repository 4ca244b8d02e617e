"""`PriorEnsemble`: how it splits and orders the futures, its errors, and ensembles in the `plan`
verbs (tiny model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from motion_prior.cli import main
from motion_prior.foundation.errors import InputError
from motion_prior.inference.ensemble import PriorEnsemble, load_prior
from motion_prior.inference.prior import MotionPrior
from sim_envs.planning.on_policy import OnPolicyConfig, producer
from sim_envs.planning.plan_eval import PlanEvalConfig
from sim_envs.generation.clip_generator import GeneratorConfig

FRAME = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
POKES = [np.float32([[40, 50, 60, 50, 1.0]]), np.float32([[40, 50, 40, 30, 0.5], [80, 20, 80, 40, 1.0]])]
QUERIES = [[40, 50], [90, 60], [10, 10]]


@pytest.fixture(scope="module")
def members(tiny_model, one_torch_thread):
    """The tiny model, and a second copy whose flow's weights are shifted: a member that errs
    elsewhere, as one trained apart would."""
    other = MotionPrior.load(tiny_model)
    with torch.no_grad():
        for parameter in other.backend.flow.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    return MotionPrior.load(tiny_model), other


def test_the_futures_of_each_candidate_are_split_between_the_members_in_order(members):
    ensemble = PriorEnsemble(members)
    assert ensemble.split(5) == [3, 2] and ensemble.split(2) == [1, 1]
    batch = ensemble.sample_batch(FRAME, POKES, num_samples=5, query_points=QUERIES, steps=2, seed=7)
    assert batch.tracks.shape == (2, 5, 3, 64, 2) and batch.image_size == (96, 128)
    # Member 0 draws first from the seed's generator, member 1 goes on from where it stopped.
    generator = torch.Generator().manual_seed(7)
    first = members[0].sample_batch(FRAME, POKES, num_samples=3, query_points=QUERIES, steps=2, generator=generator)
    second = members[1].sample_batch(FRAME, POKES, num_samples=2, query_points=QUERIES, steps=2, generator=generator)
    np.testing.assert_array_equal(batch.tracks[:, :3], first.tracks)
    np.testing.assert_array_equal(batch.tracks[:, 3:], second.tracks)
    assert not np.allclose(first.tracks[:, :2], second.tracks)  # the members differ
    # The same seed gives the same futures; `sample` samples one candidate.
    again = ensemble.sample_batch(FRAME, POKES, num_samples=5, query_points=QUERIES, steps=2, seed=7)
    np.testing.assert_array_equal(again.tracks, batch.tracks)
    one = ensemble.sample(FRAME, POKES[1], num_samples=3, query_points=QUERIES, steps=2, seed=7)
    assert one.tracks.shape == (3, 3, 64, 2) and one.pokes.shape == (2, 5)
    assert batch.timing["total"] >= batch.timing["flow"] > 0


def test_bad_ensembles_and_calls_name_the_argument(members, tiny_model):
    with pytest.raises(InputError, match="members: expected a list of two or more priors"):
        PriorEnsemble(members[:1])
    with pytest.raises(InputError, match=r"members\[1\]: expected a MotionPrior .* got str"):
        PriorEnsemble([members[0], "runs/model"])
    with pytest.raises(InputError, match="num_samples: expected an integer of at least 2 .* got 1"):
        PriorEnsemble(members).sample_batch(FRAME, POKES, num_samples=1, steps=2)
    with pytest.raises(InputError, match="model: expected a model, or a list of models"):
        load_prior([])
    assert isinstance(load_prior([str(tiny_model)]), MotionPrior)
    assert isinstance(load_prior((str(tiny_model), str(tiny_model))), PriorEnsemble)
    with pytest.raises(InputError, match="num_samples: expected at least 3, one future per member"):
        PlanEvalConfig(model=(str(tiny_model),) * 3, num_samples=2).validate()


def test_plan_verbs_take_an_ensemble(tiny_model, tmp_path, capsys, one_torch_thread):
    model = str(tiny_model)
    run = ["plan", "eval", "--planner", "cem", "--episodes", "1", "--samples", "2", "--steps", "2",
           "--candidates", "4", "--iterations", "1", "--out", str(tmp_path / "eval"), "--model", model]
    assert main(run + [model]) == 0
    settings = json.loads((tmp_path / "eval" / "settings.json").read_text())
    assert settings["model"] == [model, model]
    episodes = (tmp_path / "eval" / "episodes.jsonl").read_text()
    assert main(run + [model]) == 0 and (tmp_path / "eval" / "episodes.jsonl").read_text() == episodes  # resumed
    assert main(run) == 2  # one model is other settings than the ensemble's episodes
    assert "other model" in capsys.readouterr().err
    assert main(["plan", "counterfactual", "--model", model, model, "--states", "1", "--directions", "1",
                 "--samples", "2", "--steps", "2", "--reference-rollouts", "0", "--out", str(tmp_path / "cf")]) == 0
    config = json.loads((tmp_path / "cf" / "counterfactual_check.json").read_text())["config"]
    assert config["model"] == [model, model]
    assert main(["plan", "counterfactual", "--model", model, model, "--samples", "1", "--out",
                 str(tmp_path / "cf1")]) == 2
    assert "samples: expected at least 1, and one per member of an ensemble, got 1" in capsys.readouterr().err


def test_on_policy_clips_record_every_members_fingerprint(tiny_model):
    one = producer(OnPolicyConfig(model=str(tiny_model)), GeneratorConfig())["config"]
    two = producer(OnPolicyConfig(model=(str(tiny_model), str(tiny_model))), GeneratorConfig())["config"]
    assert isinstance(one["model_sha256"], str) and len(one["model_sha256"]) == 64
    assert two["model_sha256"] == [one["model_sha256"]] * 2
