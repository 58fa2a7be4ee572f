"""Trained weights shipped inside the package (see registry.py)."""

from .registry import WeightsRecord, list_weights, load_pretrained, weights_record  # noqa: F401
