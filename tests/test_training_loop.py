"""The training loop's EMA: with `ema_warmup` a short run's average forgets its initial weights."""

from __future__ import annotations

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from motion_prior.training.loop import TrainConfig, ema_average


@pytest.mark.parametrize("warmup, init_share", [(False, 0.999 ** 999), (True, 0.0)])
def test_ema_warmup_forgets_the_initial_weights_within_a_short_run(warmup, init_share):
    model = torch.nn.Linear(3, 2)
    torch.nn.init.zeros_(model.weight)
    ema = AveragedModel(model, multi_avg_fn=ema_average(0.999, warmup))
    ema.update_parameters(model)  # the first update copies the initial (zero) weights
    with torch.no_grad():
        model.weight.fill_(1.0)  # trained weights that have moved away from the init
    for _ in range(999):
        ema.update_parameters(model)
    # An EMA of constant weights 1 from 0 holds the init's share of the gap: 0.999^999 = 37% without
    # the warm-up; with it the product of the ramped decays, (1 + n) / (10 + n), vanishes.
    torch.testing.assert_close(ema.module.weight, torch.full_like(model.weight, 1.0 - init_share), atol=1e-4, rtol=0)


def test_ema_warmup_is_off_in_recipes_that_predate_it():
    assert TrainConfig().ema_warmup is False
