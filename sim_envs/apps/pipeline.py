"""`motion-prior train all`: the whole recipe of a model, from simulated data to a model folder.

Stages, each in its own folder under `out` and each resumable (rerun the same command):
`data/` (simulated clips) -> `vae/` (Stage 1) -> `vae-pokes/` (Stage 1b, poke-aware decoder)
-> `flow/` (Stage 2) -> `model-guided/` (packed float16 `vae/` + `flow/`) -> `fast-flow/`
(Stage 2 distilled into the fast sampler, taught by `model-guided/`) -> `contact/` (the contact
model, on the same clips' actions) -> `model/` (all four parts, what `MotionPrior.load` reads).
This is how the shipped default model's VAE and flows were made; its contact model learnt from
counterfactual and on-policy clips instead (see its MODEL_CARD.md).
"""

from __future__ import annotations

from pathlib import Path

from motion_prior.inference.packing import pack_model
from motion_prior.training import contact_stage, decoder_stage, distill_stage, flow_stage, vae_stage
from sim_envs.generation.clip_writer import generate_clips

DEFAULT_CLIPS = {"tiny": 64, "small": 40_000}


def train_all(out: str | Path, preset: str = "small", clips: int | None = None, workers: int = 2, seed: int = 0,
              device: str = "auto", progress: bool = True) -> Path:
    """Run (or resume) every stage; returns the model folder."""
    if preset not in DEFAULT_CLIPS:
        raise ValueError(f"preset: expected one of {sorted(DEFAULT_CLIPS)}, got {preset!r}")
    out = Path(out)
    data = out / "data"
    generate_clips(data, clips or DEFAULT_CLIPS[preset], seed=seed, workers=workers, progress=progress)
    vae_stage.train_vae(str(data), str(out / "vae"), vae_stage.preset(preset), resume=True, device=device,
                           progress=progress)
    decoder = decoder_stage.preset(preset)
    decoder.vae = str(out / "vae")
    decoder_stage.finetune_decoder(str(data), str(out / "vae-pokes"), decoder, resume=True, device=device,
                                      progress=progress)
    flow = flow_stage.preset(preset)
    flow.vae = str(out / "vae-pokes")
    flow_stage.train_flow(str(data), str(out / "flow"), flow, resume=True, device=device, progress=progress)
    teacher = pack_model(out / "vae-pokes", out / "flow", out / "model-guided")
    distill = distill_stage.preset(preset)
    distill.teacher = str(teacher)
    distill_stage.train_distill(str(data), str(out / "fast-flow"), distill, resume=True, device=device,
                                progress=progress)
    contact = contact_stage.preset(preset)
    contact.model.image_size = vae_stage.preset(preset).model.frame.image_size
    contact_stage.train_contact(str(data), str(out / "contact"), contact, resume=True, device=device,
                                progress=progress)
    return pack_model(out / "vae-pokes", out / "flow", out / "model", fast_flow_run=out / "fast-flow",
                      contact_run=out / "contact")
