"""Evaluation: `eval vae`, `eval flow` and the inference benchmark."""
