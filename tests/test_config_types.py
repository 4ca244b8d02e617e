"""Configs are type-checked when loaded: the error names the file, the key, the expected type
and the value; the shipped configs load exactly as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from motion_prior.foundation.checkpoints import CheckpointError, load_config
from motion_prior.foundation.configs import config_from_dict, config_to_dict, config_from_yaml, load_yaml
from motion_prior.training.decoder_stage import DecoderRecipe
from motion_prior.networks.latent_flow import FlowConfig
from motion_prior.training.flow_stage import FlowRecipe
from motion_prior.networks.trajectory_vae import VAEConfig
from sim_envs.generation.clip_generator import GeneratorConfig

SHIPPED = Path(__file__).resolve().parents[1] / "motion_prior" / "models" / "default"


@pytest.mark.parametrize("key, value, expected", [
    ("width", "64", "int"), ("width", 2048.5, "int"), ("encoder_depth", None, "int"), ("num_frames", True, "int"),
])
def test_a_value_of_the_wrong_type_names_file_key_type_and_value(tmp_path, key, value, expected):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**config_to_dict(VAEConfig()), key: value}))
    with pytest.raises(ValueError) as error:
        load_yaml(VAEConfig, path)
    message = str(error.value)
    assert str(path) in message and repr(key) in message and f"expects {expected}" in message and repr(value) in message
    with pytest.raises(CheckpointError, match=f"{key}.*expects {expected}"):  # the same check when a model loads
        load_config(tmp_path, VAEConfig)


def test_nested_tuple_and_optional_fields_are_checked():
    data = config_to_dict(GeneratorConfig())
    assert config_from_dict(GeneratorConfig, data) == GeneratorConfig()
    bad = {**data, "scene": {**data["scene"], "image_size": [128, "128"]}}
    with pytest.raises(ValueError, match=r"generator config.scene: key 'image_size\[1\]' expects int, got '128'"):
        config_from_dict(GeneratorConfig, bad, "generator config")
    with pytest.raises(ValueError, match="point_mix' expects tuple"):
        config_from_dict(GeneratorConfig, {**data, "point_mix": [0.5, 0.5]}, "generator config")
    assert config_from_dict(GeneratorConfig, {"fps": 16}).fps == 16.0  # YAML's int fills a float field


@pytest.mark.parametrize("part, cls", [("vae/config.yaml", VAEConfig), ("vae/recipe.yaml", DecoderRecipe),
                                       ("flow/config.yaml", FlowConfig), ("flow/recipe.yaml", FlowRecipe)])
def test_the_shipped_configs_load_as_written(part, cls):
    text = (SHIPPED / part).read_text()
    loaded = config_to_dict(config_from_yaml(cls, text, part))
    written = yaml.safe_load(text)

    def same(a, b):  # what the file says, down to nested keys (missing keys take defaults)
        if isinstance(b, dict):
            return all(same(a[k], v) for k, v in b.items())
        return a == b and type(a) is type(b) or (isinstance(a, float) and isinstance(b, int) and a == b)

    assert same(loaded, written)
