"""Validation PSNR on a fixed set of (JPEG, original) pairs, scored as PROTOCOL.md
does (uint8, clipped and rounded), so training curves read like benchmark rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.degrade import JpegDegradation
from ..data.folders import load_images
from ..metrics import psnr
from ..io import to_tensor, to_uint8


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        return img
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[y:y + size, x:x + size]


@dataclass
class ValidationSet:
    pairs: dict[int, list[tuple[np.ndarray, np.ndarray]]]  # quality -> [(lq, gt)]

    @classmethod
    def build(cls, directory, qualities, gray: bool, crop: int, limit: int = 0,
              subsampling: str = "4:2:0", plane: str = "y", degrade=None) -> "ValidationSet":
        """``degrade(gt, q)``: the baseline image the log's "jpeg" column
        scores (default: JPEG at ``q``; a task coding with another codec gives
        that codec, see ``TrainTask.val_degradation``)."""
        color_input = getattr(degrade, "color_input", False)  # a gray model's plane of a color decoding
        images = load_images(directory, gray=gray and not color_input, plane=plane)
        if limit:
            images = images[:limit]
        images = [center_crop(im, crop) for im in images]
        pairs = {}
        for q in qualities:
            deg = degrade or JpegDegradation(qualities=(q,), subsampling=subsampling)
            pair = getattr(deg, "pair", None) or (lambda gt, q: (gt, deg(gt, q)))
            pairs[q] = [pair(gt, q)[::-1] for gt in images]
        return cls(pairs)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, infer=None, extra=None) -> dict:
        """Mean PSNR per quality; ``infer(model, lq, gt, quality)`` makes the
        restored tensor (default ``model(lq)``); ``extra(quality)``, called
        after a quality's images, adds its entries (e.g. rates) to the row."""
        was_training = model.training
        model.eval()
        out: dict = {}
        for q, pairs in self.pairs.items():
            ours, base = [], []
            for lq, gt in pairs:
                x = to_tensor(lq).to(device)
                restored = to_uint8(model(x) if infer is None else infer(model, x, to_tensor(gt).to(device), q))
                ours.append(psnr(restored, gt))
                base.append(psnr(lq, gt))
            out[f"q{q}"] = {"psnr": float(np.mean(ours)), "jpeg": float(np.mean(base)),
                            "gain": float(np.mean(ours) - np.mean(base))}
            if extra is not None:
                out[f"q{q}"].update(extra(q) or {})
        model.train(was_training)
        return out
