"""Published numbers that carkit's tables are printed beside (not measured here).

DAGN (Ma et al., ../shared/papers/dagn.txt), Table I: color JPEG, RGB PSNR /
SSIM / PSNR-B at QF 10/20/30/40, for JPEG, ARCNN (multi-model), FBCNN and
DAGN (single blind model). Table V: the ablation on LIVE1. Compare by gain
over JPEG: the papers' JPEG baselines match PROTOCOL.md's to within 0.03 dB
on LIVE1 (25.69 here and there at QF 10).

HR-CNN (Niu, ../shared/papers/hrcnn.txt), green channel, one model per
quality: Table I over 14,040 128x128 DIV2K test crops, Table II on LIVE1,
Table III's gains and trainable parameter counts (LIVE1, Q 10).

Residual hiding (../shared/papers/residual-hiding.txt), Table 2 on Kodak: the
codec alone ("Original"), MemNet, DnCNN and the two hiding strategies under
the Fix-Q and Fix-BPP protocols of section 4.2.1.
"""

from __future__ import annotations

#: dataset -> method -> quality -> (PSNR, SSIM, PSNR-B)
DAGN_TABLE_I = {
    "live1_color": {
        "JPEG": {10: (25.69, 0.743, 24.20), 20: (28.06, 0.826, 26.49), 30: (29.37, 0.861, 27.84), 40: (30.28, 0.882, 28.84)},
        "ARCNN": {10: (26.43, 0.770, 26.32), 20: (28.86, 0.843, 28.61), 30: (29.96, 0.879, 28.79), 40: (30.78, 0.896, 29.97)},
        "FBCNN": {10: (27.77, 0.803, 27.51), 20: (30.11, 0.868, 29.70), 30: (31.43, 0.897, 30.92), 40: (32.34, 0.913, 31.80)},
        "DAGN": {10: (27.95, 0.807, 27.70), 20: (30.27, 0.873, 29.87), 30: (31.60, 0.900, 31.10), 40: (32.50, 0.916, 31.94)},
    },
    "bsds500_jpeg": {
        "JPEG": {10: (25.92, 0.739, 24.22), 20: (28.29, 0.825, 26.45), 30: (29.64, 0.863, 27.78), 40: (30.59, 0.885, 28.74)},
        "ARCNN": {10: (26.42, 0.777, 25.74), 20: (28.84, 0.856, 26.48), 30: (30.12, 0.888, 28.20), 40: (30.96, 0.905, 29.35)},
        "FBCNN": {10: (27.85, 0.799, 27.52), 20: (30.14, 0.867, 29.56), 30: (31.45, 0.897, 30.72), 40: (32.36, 0.913, 31.52)},
        "DAGN": {10: (28.07, 0.799, 27.74), 20: (30.36, 0.868, 29.77), 30: (31.68, 0.898, 30.91), 40: (32.58, 0.914, 31.69)},
    },
}

#: DAGN Table V (LIVE1, QF 10 and 20): variant -> quality -> (PSNR, SSIM, PSNR-B)
DAGN_TABLE_V = {
    "baseline": {10: (27.46, 0.798, 27.11), 20: (29.82, 0.866, 29.34)},
    "+CIGM": {10: (27.82, 0.803, 27.57), 20: (30.15, 0.870, 29.73)},
    "+CSGM": {10: (27.74, 0.801, 27.50), 20: (30.08, 0.868, 29.68)},
    "+CFM": {10: (27.72, 0.799, 27.47), 20: (30.03, 0.866, 29.60)},
    "DAGN": {10: (27.95, 0.807, 27.70), 20: (30.27, 0.873, 29.87)},
}


#: HR-CNN Tables I and II: set -> method -> quality -> (PSNR, SSIM)
HRCNN_TABLES = {
    "div2k_crops128": {"JPEG": {10: (30.13, 0.8957), 30: (34.29, 0.9510), 50: (36.06, 0.9652)},
                       "HR-CNN": {10: (31.79, 0.9202), 30: (35.70, 0.9613), 50: (37.19, 0.9719)}},
    "live1": {"JPEG": {10: (27.19, 0.8732), 30: (31.00, 0.9421), 50: (32.87, 0.9603)},
              "HR-CNN": {10: (28.64, 0.8982), 30: (32.41, 0.9537), 50: (34.15, 0.9682)}},
}

#: HR-CNN Table III: method -> (PSNR gain in dB at Q 10 on LIVE1, trainable parameters)
HRCNN_TABLE_III = {"HR-CNN": (1.44, 507_157), "AR-CNN": (1.19, 106_448), "DnCNN": (1.42, 668_225),
                   "MemNet": (1.68, 2_905_421), "L4": (1.31, 71_920), "TNRD": (1.38, 26_645)}

#: HR-CNN section IV-C: seconds to decode and restore all of LIVE1 with HR-CNN
#: on a GPU, and to decode it with the authors' own CPU JPEG decoder.
HRCNN_SPEED = {"hrcnn_gpu_s": 6.3, "cpu_jpeg_decode_s": 2.81}


def hrcnn_paper_gains(dataset: str) -> dict[str, dict[int, float]]:
    """HR-CNN's published gains for a green-plane result: LIVE1 whole images
    (Table II) or 128x128 crops (Table I, DIV2K there, val/cid22 here)."""
    key = "live1" if dataset.startswith("live1") else "div2k_crops128" if dataset.endswith("_crops128") else None
    if key is None:
        return {}
    table = HRCNN_TABLES[key]
    return _gains({"HR-CNN": table["HR-CNN"]}, table["JPEG"])


def _gains(methods: dict, jpeg: dict) -> dict[str, dict[int, float]]:
    return {m: {q: round(v[0] - jpeg[q][0], 2) for q, v in rows.items()} for m, rows in methods.items()}


def paper_gains(dataset: str) -> dict[str, dict[int, float]]:
    """Method -> quality -> PSNR gain over the paper's own JPEG row."""
    table = DAGN_TABLE_I.get(dataset)
    if not table:
        return {}
    return _gains({m: rows for m, rows in table.items() if m != "JPEG"}, table["JPEG"])


def paper_table_v_gains() -> dict[str, dict[int, float]]:
    """Table V variant -> quality -> PSNR gain over the paper's LIVE1 JPEG row."""
    return _gains(DAGN_TABLE_V, DAGN_TABLE_I["live1_color"]["JPEG"])


#: Residual hiding paper (../shared/papers/residual-hiding.txt), Table 2, the Kodak half:
#: codec -> protocol -> the "Quality / Bpp" header (quality None where the paper prints "-")
#: and method -> (PSNR dB, SSIM). The paper does not say which PSNR (RGB or Y); "BPG" is
#: HEVC intra, compared here with the ``heif`` codec. The Kinetics half is not stored (no
#: Kinetics frames here).
HIDING_TABLE_2_KODAK = {
    "jpeg": {
        "fix-q": {"quality": 50, "bpp": 0.889, "rows": {
            "Original": (32.059, 0.918), "MemNet": (34.148, 0.925), "DnCNN": (34.258, 0.934),
            "Strategy I": (34.958, 0.940), "Strategy II": (34.960, 0.940)}},
        "fix-bpp": {"quality": None, "bpp": 1.0, "rows": {
            "Original": (32.749, 0.903), "MemNet": (33.340, 0.911), "DnCNN": (33.889, 0.918),
            "Strategy I": (34.273, 0.927), "Strategy II": (34.247, 0.927)}},
    },
    "bpg": {
        "fix-q": {"quality": 30, "bpp": 0.702, "rows": {
            "Original": (35.373, 0.951), "MemNet": (37.251, 0.951), "DnCNN": (37.758, 0.955),
            "Strategy I": (37.842, 0.960), "Strategy II": (37.917, 0.961)}},
        "fix-bpp": {"quality": None, "bpp": 1.0, "rows": {
            "Original": (37.084, 0.944), "MemNet": (37.002, 0.944), "DnCNN": (37.204, 0.947),
            "Strategy I": (37.555, 0.953), "Strategy II": (37.578, 0.955)}},
    },
    "jpeg2000": {
        "fix-q/bpp": {"quality": 48, "bpp": 0.50, "rows": {
            "Original": (28.575, 0.754), "MemNet": (28.987, 0.768), "DnCNN": (29.413, 0.778),
            "Strategy I": (29.300, 0.795), "Strategy II": (30.108, 0.826)}},
    },
}
