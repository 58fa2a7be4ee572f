"""The reviewed default restorers: which shipped model ``carkit restore``
uses for a JPEG of a kind (gray or color) and a quality.

An explicit table, changed by a reviewed commit with the measurements that
justify it, so that what restore does never depends on which bench ran last
(benches store their rows in the records, and a tagged run once routed color
QF 16-40 to ``blockcnn-color``, which restores at about 600 s per megapixel).
Each row names the evidence: gains over JPEG from results/restore_*.json
(PSNR, RGB for color sets) and speed from results/speed.json. Where no row
covers a quality, restore passes the decoded JPEG through (never worse than
the input). ``--model`` still forces any zoo restorer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DefaultRestorer:
    image: str                    # "color" or "gray"
    qualities: tuple[int, int]    # inclusive range of the file's quality
    model: str
    mode: str                     # "color", "color-via-Y" or "gray"
    why: str

    def covers(self, image: str, quality: int) -> bool:
        return self.image == image and self.qualities[0] <= quality <= self.qualities[1]


RESTORE_DEFAULTS: tuple[DefaultRestorer, ...] = (
    DefaultRestorer("color", (1, 14), "dagn-small", "color",
                    "blind color DAGN: +1.07 dB (LIVE1) / +1.11 (BSDS500) RGB at QF 10, above resunet-gray-blind "
                    "through Y (+0.99 / +0.96)"),
    DefaultRestorer("color", (15, 40), "resunet-gray-blind", "color-via-Y",
                    "restores Y, keeps the decoded chroma: +1.08..+1.09 dB (LIVE1) and +1.03..+1.08 (BSDS500) RGB at "
                    "QF 20-40 against dagn-small's +0.88..+0.98, and 1.4x faster (14.6 against 20.7 s/MP)"),
    DefaultRestorer("color", (41, 100), "dagn-small", "color",
                    "the only color model trained above QF 40 (QF 10-95): +1.06 dB (LIVE1) at QF 50"),
    DefaultRestorer("gray", (1, 40), "resunet-gray-blind", "gray",
                    "+1.53..+1.67 dB on LIVE1 gray at QF 10-40 (ARCNN +1.23 at QF 10); below QF 10 unmeasured"),
    DefaultRestorer("gray", (41, 56), "dncnn3-gray-blind", "gray",
                    "trained for QF 10-50: +0.78 dB at QF 50 (LIVE1 green plane)"),
    DefaultRestorer("gray", (57, 73), "jpegnet-v1c", "gray",
                    "provisional, to be measured: memnet-gray-q63 left the package for jpegnet-v1c"),
)

#: Files whose quality is unknown (invalid tables): the blind model of each kind.
UNKNOWN_QUALITY: dict[str, DefaultRestorer] = {
    "color": DefaultRestorer("color", (1, 100), "dagn-small", "color",
                             "blind: trained for QF 10-95, with its own quality predictor"),
    "gray": DefaultRestorer("gray", (1, 100), "dncnn3-gray-blind", "gray",
                            "blind gray model with the widest range (QF 10-50)"),
}


def default_restorer(gray: bool, quality: int | None) -> DefaultRestorer | None:
    """The reviewed default for a gray or color JPEG of ``quality`` (None:
    unknown), or None where the decoded JPEG is passed through."""
    image = "gray" if gray else "color"
    if quality is None:
        return UNKNOWN_QUALITY[image]
    return next((row for row in RESTORE_DEFAULTS if row.covers(image, quality)), None)


#: The reviewed residual-hiding pair of each codec (``carkit encode --method
#: hiding --codec C``), preferred among pairs trained equally near the
#: requested quality; evidence in results/hiding_kodak_color*.json.
HIDING_DEFAULTS: dict[str, str] = {
    "jpeg": "hiding-jpeg-q10-80-s2-dagn-rate-p128",
    "heif": "hiding-heif-q39-s1-long",
    "factorized": "hiding-factorized-q50-direct",
}
