"""The reviewed default restorers: which shipped model ``carkit restore``
uses for a JPEG of a kind (gray or color) and a quality.

An explicit table, changed by a reviewed commit with the measurements that
justify it, so that what restore does never depends on which bench ran last
(a tagged bench run once routed color QF 16-40 to ``blockcnn-color``, which
restores at about 600 s per megapixel). Each row names the evidence: gains
over JPEG from results/restore_*.json (PSNR, RGB for color sets; the
``_jpegnet-v1d*`` and ``_jpegli-v1d`` runs for the current rows) and speed from
results/speed_avx512bf16.json. Where no row
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
    DefaultRestorer("color", (1, 95), "jpegnet-v1d", "color",
                    "JpegNet, the file's tables in: +1.52 / +1.48 / +1.46 / +1.43 dB RGB on LIVE1 at QF 10-40 "
                    "(jpegnet-v1c +1.49 / +1.45 / +1.43 / +1.41 in the same run; dagn-small +1.07 / +0.85 / +0.91 / "
                    "+1.01 and resunet-gray-blind via Y +0.99..+1.09 earlier); BSDS500 +1.53 / +1.47 / +1.43 / +1.40; "
                    "Kodak +1.43 / +1.28 / +0.81 / +0.29 at QF 50 / 75 / 90 / 95; on jpegli's Kodak files +0.99 at QF 10 "
                    "to +0.28 at QF 90, where jpegnet-v1c lost up to 1.61 dB; the same architecture as jpegnet-v1c, "
                    "whose speed was measured: 1.5 s/MP, 2.1x faster than dagn-small (bf16)"),
    DefaultRestorer("gray", (1, 40), "resunet-gray-blind", "gray",
                    "+1.53 / +1.58 / +1.66 / +1.65 dB on LIVE1 gray at QF 10-40, above jpegnet-v1d's +1.40..+1.46 "
                    "in the same run (ARCNN +1.23 at QF 10); below QF 10 unmeasured"),
    DefaultRestorer("gray", (41, 95), "jpegnet-v1d", "gray",
                    "+1.46 / +1.42 / +1.06 dB on LIVE1 gray at QF 50 / 70 / 90 (jpegnet-v1c +1.44 / +1.41 / +1.04 in "
                    "the same run; dncnn3-gray-blind +0.95 and memnet-gray-q63 +1.16 earlier)"),
)

#: Above QF 95 no model gains: jpegnet-v1c, whose architecture v1d keeps, measured -0.41 / -0.90 dB
#: (Kodak, QF 98 / 100) and -0.81 (LIVE1 gray, QF 98), so those files pass through.

#: Files whose quality is unknown (invalid tables): the blind model of each kind.
UNKNOWN_QUALITY: dict[str, DefaultRestorer] = {
    "color": DefaultRestorer("color", (1, 100), "dagn-small", "color",
                             "blind: trained for QF 10-95, with its own quality predictor (JpegNet reads the "
                             "tables, which are invalid here)"),
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


#: The codecs under ``carkit encode --method hiding`` without ``--codec``, in order
#: of preference (the first installed one with a pair in the zoo): jpegli, whose pair
#: measured best on Kodak (results/hiding_kodak_color_jpegli-default.json, 0.3-2 bpp):
#: hiding+D -33.4% BD-rate vs libjpeg-turbo and -8.3% vs jpegli + the default
#: restorer, its files -8.9% in a plain viewer, against -25.5%, +3.3% and +46.2% for
#: the libjpeg-turbo pair (BSDS500, first 50: -29.2%, -6.6%, -4.5% against -23.4%,
#: +1.7%, +43.3%).
HIDING_CARRIERS: tuple[str, ...] = ("jpegli", "jpeg")

#: The reviewed residual-hiding pair of each codec (``carkit encode --method
#: hiding --codec C``), preferred among pairs trained equally near the
#: requested quality; evidence in results/hiding_kodak_color*.json. The
#: libjpeg-turbo pair (hiding-jpeg-q10-80-s2-dagn-rate-p128) left the package
#: for weights/bench when the jpegli pair replaced it: ``--codec jpeg --model
#: NAME`` from a checkout.
HIDING_DEFAULTS: dict[str, str] = {
    "jpegli": "hiding-jpegli-q10-80-s2-dagn-rate-p128c",
    "heif": "hiding-heif-q39-s1-long",
    "factorized": "hiding-factorized-q50-direct",
}


#: How much of E's change each pair's files carry (``carkit encode --method hiding
#: --strength``): IH_enc = IH + strength * (E(IH, IR) - IH); 1 where unlisted. Below 1
#: the file looks more like the original in an ordinary viewer, while D still reads
#: what it needs. The jpegli pair at 0.75, measured on 6 Kodak images against 1.0
#: (docs/notes/hiding.md, BD-rate vs libjpeg-turbo over QF 15-80): hiding+D -30.3%
#: against -30.4%, its files in a plain viewer -6.3% against +8.6%.
HIDING_STRENGTH: dict[str, float] = {
    "hiding-jpegli-q10-80-s2-dagn-rate-p128c": 0.75,
}
