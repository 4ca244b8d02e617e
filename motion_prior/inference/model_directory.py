"""Model directories on disk: `"default"` or a path -> the checked directory and its torch modules.

A model directory holds `vae/` (a Stage 1 checkpoint: `config.yaml`, `model.safetensors`,
`latent_stats.safetensors`), `flow/` (`config.yaml`, `model.safetensors`) and optionally
`fast_flow/`, the flow distilled into a one- or two-step sampler
(`motion_prior.training.distill_stage`, same layout as `flow/`) and `contact/`, the contact
model that turns a commanded push into effect pokes (`motion_prior.inference.contact`), with
`contact-1/`, ... for an ensemble and, in each, optionally `errors.safetensors`, its measured
errors (`motion_prior.inference.contact_errors`); weights
may be stored in float16 and are loaded as float32. The shipped model is `motion_prior/models/default`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import yaml

from motion_prior.foundation.checkpoints import (CheckpointError, WEIGHTS_FILE, load_config, load_weights, read_latent_stats,
                                                 verify_checksums)
from motion_prior.foundation.errors import InputError
from motion_prior.inference.contact_errors import ContactErrors
from motion_prior.networks.contact_model import ContactConfig, ContactNetwork
from motion_prior.networks.latent_flow import FlowConfig, FlowNetwork
from motion_prior.networks.trajectory_vae import TrajectoryVAE, load_vae


FAST_FLOW = "fast_flow"
CONTACT = "contact"


def default_model_dir() -> Path:
    """The model shipped inside the package (`motion_prior/models/default`)."""
    return Path(str(resources.files("motion_prior") / "models" / "default"))


def _directory(model: str | Path) -> Path:
    """`"default"` or a path -> the directory it names (unchecked)."""
    if not isinstance(model, (str, Path)):
        raise InputError("model", "'default' or a model directory (str or Path)", model)
    return default_model_dir() if str(model) == "default" else Path(model)


def model_dir(model: str | Path) -> Path:
    """`"default"` or a model directory -> its path, checked to hold `vae/` and `flow/` and,
    when it has a `SHA256SUMS` (written by `motion_prior.inference.packing.pack_model`), that
    every listed file is intact."""
    directory = _directory(model)
    if not (directory / "vae").is_dir() or not (directory / "flow").is_dir():
        raise CheckpointError(f"{directory}: expected a model directory with vae/ and flow/ checkpoints")
    verify_checksums(directory)
    return directory


def check_max_pokes(directory: Path, flow_config: FlowConfig, vae: TrajectoryVAE) -> None:
    """The flow config's `max_pokes` must be what the model was trained with (its
    `recipe.yaml`) and no more than the poke-aware decoder takes."""
    recipe = directory / "flow" / "recipe.yaml"
    try:
        trained = (yaml.safe_load(recipe.read_text()) or {}).get("model", {}).get("max_pokes") if recipe.is_file() else None
    except (yaml.YAMLError, AttributeError) as error:
        raise CheckpointError(f"{recipe}: not a flow recipe ({type(error).__name__}: {error})") from None
    if trained is not None and trained != flow_config.max_pokes:
        raise CheckpointError(f"{directory / 'flow' / 'config.yaml'}: max_pokes {flow_config.max_pokes}, but the flow "
                              f"was trained with {trained} ({recipe})")
    if vae.config.decoder_pokes and flow_config.max_pokes > vae.config.decoder_pokes:
        raise CheckpointError(f"{directory / 'flow' / 'config.yaml'}: max_pokes {flow_config.max_pokes}, more than "
                              f"the VAE decoder's {vae.config.decoder_pokes} ({directory / 'vae' / 'config.yaml'})")


def load_vae_with_stats(directory: str | Path) -> tuple[TrajectoryVAE, dict[str, torch.Tensor]]:
    """A Stage 1 checkpoint: (the VAE in eval mode, latent statistics {"mean", "std"} `[C]`)."""
    return load_vae(directory), read_latent_stats(directory)


def load_flow(directory: str | Path) -> FlowNetwork:
    """A flow checkpoint (a model's `flow/` or `fast_flow/`, or a Stage 2 run), on the CPU."""
    flow = FlowNetwork(load_config(directory, FlowConfig))
    load_weights(flow, Path(directory) / WEIGHTS_FILE)
    return flow


def load_model(model: str | Path) -> tuple[TrajectoryVAE, FlowNetwork, dict[str, torch.Tensor], FlowNetwork | None]:
    """`"default"` or a model directory -> (VAE, flow network, latent statistics, the distilled
    fast flow or None where the model has no `fast_flow/`), on the CPU; checked once."""
    directory = model_dir(model)
    vae, stats = load_vae_with_stats(directory / "vae")
    flow = load_flow(directory / "flow")
    check_max_pokes(directory, flow.config, vae)
    if flow.config.path_glimpse and flow.config.image_size != vae.config.frame.image_size:
        raise CheckpointError(f"{directory / 'flow' / 'config.yaml'}: image_size {flow.config.image_size}, but the "
                              f"VAE reads {vae.config.frame.image_size} px frames ({directory / 'vae' / 'config.yaml'})")
    fast = directory / FAST_FLOW
    return vae, flow, stats, load_flow(fast) if fast.is_dir() else None


def contact_part(member: int) -> str:
    """The folder of contact model `member` in a model directory: `contact/`, then
    `contact-1/`, `contact-2/`, ... for an ensemble of contact models trained apart."""
    return CONTACT if member == 0 else f"{CONTACT}-{member}"


def _load_contact_part(directory: Path) -> ContactNetwork | None:
    """The contact model in `directory` (one part of a model directory), or None if absent."""
    if not directory.is_dir():
        return None
    network = ContactNetwork(load_config(directory, ContactConfig))
    load_weights(network, directory / WEIGHTS_FILE)
    return network.eval()


def contact_directories(model: str | Path) -> list[Path]:
    """The contact models' folders of `"default"` or a directory: `contact/`, then `contact-1/`,
    ... while they exist."""
    directories = []
    while (directory := _directory(model) / contact_part(len(directories))).is_dir():
        directories.append(directory)
    return directories


def load_contacts(model: str | Path) -> list[ContactNetwork]:
    """The contact models of `"default"` or a directory (:func:`contact_directories`), in eval
    mode on the CPU; none where it has none (an ONNX export, a model packed without one)."""
    return [_load_contact_part(directory) for directory in contact_directories(model)]


def load_contact_errors(model: str | Path) -> list[ContactErrors | None]:
    """The measured errors of each of the model's contact models (their `errors.safetensors`,
    `motion_prior.inference.contact_errors`), None for a member without."""
    return [ContactErrors.load(directory) for directory in contact_directories(model)]


def load_contact(model: str | Path) -> ContactNetwork | None:
    """The first contact model of `"default"` or a directory (its `contact/`), or None."""
    return _load_contact_part(_directory(model) / CONTACT)
