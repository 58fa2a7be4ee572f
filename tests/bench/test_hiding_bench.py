"""``carkit bench hiding`` (the Residual hiding paper, section 4.2.1 and Table
2; then RD curves): on a tiny zoo of untrained hiding models (Strategies I and
II) and DnCNN/MemNet baselines at JPEG 50 and 62, and two small Kodak crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from carkit.cli import main
from carkit.codecs.jpeg import JpegCodec
from carkit.bench import hiding_bench as hb
from carkit.metrics import score

from ..helpers import add_tiny_weights, make_tiny_zoo
from .test_vcodec_bench import _crops

HIDING_KWARGS = {"channels": [4, 8, 16], "blocks": 1}
DNCNN_KWARGS = {"depth": 3, "features": 4}
MEMNET_KWARGS = {"features": 4, "blocks": 1, "recursions": 2}
SWEEP = [20, 35, 50, 65, 80]


def _jpegli() -> bool:
    from carkit.codecs.registry import available_codecs

    return "jpegli" in available_codecs()


#: the curves of what a user would use instead of hiding over JPEG, when jpegli is here
JPEGLI = ["jpegli", "jpegli+tiny-gray"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _visible(net):
    """A visible, deterministic effect of untrained E and D."""
    net.encoder.tail.weight.normal_(0, 0.02)
    net.decoder.tail.weight.normal_(0, 0.02)


def add_hiding(zoo, name, strategy, quality=50, seed=0, gray=False, codec="jpeg"):
    """A tiny pair trained at ``quality``, one or ``[lo, hi]``."""
    bounds = [quality, quality] if isinstance(quality, int) else quality
    add_tiny_weights(zoo, name, "hiding-gray" if gray else "hiding-color", HIDING_KWARGS, gray, bounds,
                     seed, {"recipe": {"task_kwargs": {"strategy": strategy, "codec": codec, "quality": quality}},
                            "steps": 9000, "wall_seconds": 3480}, _visible, codec=codec)


def add_baseline(zoo, name, family, quality, seed=0, qualities=None, codec=None):
    model, kwargs, gray = (("dncnn3-color", DNCNN_KWARGS, False) if family == "DnCNN"
                           else ("memnet-gray", MEMNET_KWARGS, True))
    add_tiny_weights(zoo, name, model, kwargs, gray, qualities or [quality, quality], seed,
                     {"steps": 3000, "wall_seconds": 2280}, codec=codec or "jpeg")


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """'tiny-gray' (the RD restorer, QF 10..40) and nothing else."""
    return make_tiny_zoo(tmp_path / "zoo", monkeypatch)


@pytest.fixture
def full(zoo):
    """Both strategies at 50 and both baselines at 50 and 62."""
    add_hiding(zoo, "tiny-s1", "I", seed=1)
    add_hiding(zoo, "tiny-s2", "II", seed=2)
    for i, q in enumerate((50, 62)):
        add_baseline(zoo, f"dncnn-q{q}", "DnCNN", q, seed=3 + i)
        add_baseline(zoo, f"memnet-q{q}", "MemNet", q, seed=5 + i)
    return zoo


@pytest.fixture
def kodak(tmp_path, shared_data):
    return _crops(shared_data / "eval" / "kodak", {"kodim01.png": (48, 64), "kodim02.png": (41, 37)},
                  (200, 300), tmp_path / "kodak")


def _image(folder, name):
    return np.array(Image.open(folder / name))


def _rows(table):
    return [(r["method"], r["model"], r["quality"]) for r in table["rows"]]


def test_table2_both_protocols_from_real_bytes(full, kodak):
    from carkit.codecs import get_codec
    from carkit.restoration.restorer import Restorer

    payload = hb.bench_hiding(kodak, restorer="tiny-gray", sweep=SWEEP, fixq_quality=62, progress=False)
    assert payload["kind"] == "hiding_bench" and list(payload["codecs"]) == ["jpeg"]
    entry = payload["codecs"]["jpeg"]
    fixq, fixbpp = entry["table2"]
    assert (fixq["protocol"], fixbpp["protocol"]) == ("fix-q", "fix-bpp")
    assert _rows(fixq) == [("Original", None, 62), ("DnCNN", "dncnn-q62", 62), ("MemNet", "memnet-q62", 62),
                           ("Strategy I", "tiny-s1", 50), ("Strategy II", "tiny-s2", 50)]
    assert _rows(fixbpp) == [("Original", None, 50), ("DnCNN", "dncnn-q50", 50), ("MemNet", "memnet-q50", 50),
                             ("Strategy I", "tiny-s1", 50), ("Strategy II", "tiny-s2", 50)]
    assert fixq["rows"][3:] == fixbpp["rows"][3:]            # read literally, one measurement
    assert entry["models"]["memnet-q50"]["mode"] == "color-via-Y" and entry["models"]["dncnn-q50"]["mode"] == "color"
    assert entry["models"]["tiny-s1"]["strategy"] == "I"

    idx = [im["name"] for im in payload["images"]].index("kodim02.png")
    img = _image(kodak, "kodim02.png")
    # the hiding row: the product codec's file, marker included, and its decode; IL_enc = plain decode of that file
    data = get_codec("hiding", model="tiny-s2").encode(img, 50)
    s2 = fixbpp["rows"][4]
    assert s2["per_image"]["bytes"][idx] == len(data) and b"tiny-s2" in data
    assert s2["per_image"]["bpp"][idx] == pytest.approx(8 * len(data) / (41 * 37), abs=1e-6)
    assert s2["per_image"]["psnr_rgb"][idx] == pytest.approx(score(get_codec("hiding").decode(data), img)["psnr_rgb"],
                                                             abs=1e-4)
    enc = [score(JpegCodec().decode(get_codec("hiding", model="tiny-s2").encode(_image(kodak, f), 50)),
                 _image(kodak, f))["psnr_rgb"] for f in ("kodim01.png", "kodim02.png")]
    assert s2["il_enc"]["psnr_rgb"] == pytest.approx(np.mean(enc), abs=1e-6)
    # the baselines: the codec's own file at their quality, restored by the zoo model
    jpeg = JpegCodec().encode(img, 62)
    assert fixq["rows"][0]["per_image"]["bytes"][idx] == len(jpeg) and fixq["baseline_bpp"] > fixbpp["baseline_bpp"]
    restorer = Restorer(model="memnet-q62")
    out = restorer.restore_pixels(JpegCodec().decode(jpeg), restorer.plan(False, None))
    assert fixq["rows"][2]["per_image"]["psnr_y"][idx] == pytest.approx(score(out, img)["psnr_y"], abs=1e-4)
    assert fixbpp["target_bpp"] == pytest.approx(np.mean([r["mean"]["bpp"] for r in fixbpp["rows"][3:]]))
    assert any("favours hiding" in n for n in fixbpp["notes"])
    assert any("given (--fixq-quality)" in n for n in fixq["notes"])

    rd = entry["rd"]
    users = JPEGLI if _jpegli() else []
    assert rd["config"]["curves"] == ["jpeg", "jpeg+tiny-gray", *users, "hiding+D (tiny-s1)", "hiding+D (tiny-s2)",
                                      "hiding, plain viewer (tiny-s1)", "hiding, plain viewer (tiny-s2)"]
    points = rd["codecs"]["hiding+D (tiny-s2)"]["points"]
    assert [p["quality"] for p in points] == SWEEP and [p["in_training_quality"] for p in points] == \
        [q == 50 for q in SWEEP]
    assert points[2]["mean"] == s2["mean"]                   # the table's measurement, not another one
    assert [p["restorer_in_range"] for p in rd["codecs"]["jpeg+tiny-gray"]["points"]] == [q <= 40 for q in SWEEP]
    pairs = [(c["method"], c["against"]) for c in rd["comparisons"]]
    refs = ["jpeg", "jpeg+tiny-gray", *users]
    assert pairs == ([(r, "jpeg") for r in refs[1:]] + [(f"hiding+D ({m})", a) for m in ("tiny-s1", "tiny-s2")
                                                        for a in refs]
                     + [(f"hiding, plain viewer ({m})", a) for m in ("tiny-s1", "tiny-s2")
                        for a in ["jpeg", *users[:1]]])
    for c in rd["comparisons"]:
        assert all(("bd_rate" in r) != ("error" in r) for t in (c["bd"], c["bd_window"]) for r in t.values())
    assert len(hb.target_lines(rd)) == 2
    text = hb.format_hiding_tables(payload)
    assert "**Fix-Q**: hiding at quality 50, baselines at 62." in text and "| Strategy II | tiny-s2 | 50 |" in text
    assert "paper PSNR" not in text                          # two crops are not the paper's Kodak
    budgets = next(line for line in text.splitlines() if line.startswith("Training budgets"))
    for name in ("tiny-s1", "tiny-s2", "dncnn-q50", "memnet-q62"):   # every trained row says its budget
        assert f"{name} (" in budgets
    assert "tiny-s2 (Strategy II): 9000 steps, 58 min" in budgets and "dncnn-q50 (DnCNN): 3000 steps, 38 min" in budgets
    whole = hb.format_hiding_tables({**payload, "images": payload["images"] * 12})
    assert "| 34.960 / 0.940 |" in whole and "the paper: 50 / 0.889 bpp" in whole and hb.PAPER_CAVEAT in whole
    prov = payload["provenance"]
    assert prov["dataset"]["n_files"] == 2 and "tiny-s2" in prov["model"]["name"] and prov["versions"]["torch"]
    json.dumps(payload)


def test_what_a_user_would_use_instead_and_the_plain_viewer(zoo, kodak):
    """Issue 37: beside JPEG, jpegli and jpegli + the same restorer on the same
    images and qualities; the hiding files as a plain viewer shows them (Pillow,
    no D) at their real bytes; BD-rates against each in both windows; encode
    and decode time per megapixel of every pipeline."""
    import io

    from carkit.codecs import get_codec
    from carkit import metrics
    from carkit.bench.common import rd_curve
    from carkit.restoration.restorer import Restorer

    add_hiding(zoo, "tiny-s2", "II", seed=2)
    payload = hb.bench_hiding(kodak, models=["tiny-s2"], restorer="tiny-gray", sweep=SWEEP, progress=False)
    entry = payload["codecs"]["jpeg"]
    rd = entry["rd"]
    users = JPEGLI if _jpegli() else []
    plain, hid = "hiding, plain viewer (tiny-s2)", "hiding+D (tiny-s2)"
    assert rd["config"]["references"] == ["jpeg", "jpeg+tiny-gray", *users]
    assert rd["config"]["wide_window_bpp"] == [0.3, 2.0] and rd["codecs"][plain]["family"] == "hiding-plain"
    names = ("kodim01.png", "kodim02.png")
    images = [_image(kodak, f) for f in names]

    # the plain viewer: the hiding file's own bytes, decoded by Pillow without D, against the original
    for i, q in enumerate(SWEEP):
        point = rd["codecs"][plain]["points"][i]
        assert point["quality"] == q and point["model"] == "tiny-s2"
        for j, img in enumerate(images):
            data = get_codec("hiding", model="tiny-s2").encode(img, q)
            viewer = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
            assert point["per_image"]["bytes"][j] == len(data) == rd["codecs"][hid]["points"][i]["per_image"][
                "bytes"][j]
            assert point["per_image"]["psnr_rgb"][j] == pytest.approx(score(viewer, img)["psnr_rgb"], abs=1e-4)
    fixbpp = next(t for t in entry["table2"] if t["protocol"] == "fix-bpp")
    assert rd["codecs"][plain]["points"][SWEEP.index(50)]["mean"] == fixbpp["rows"][-1]["il_enc"]   # one measurement

    pairs = {(c["method"], c["against"]): c for c in rd["comparisons"]}
    assert {(hid, a) for a in ["jpeg", "jpeg+tiny-gray", *users]} | {(plain, "jpeg")} <= set(pairs)
    for c in pairs.values():
        for table in (c["bd"], c["bd_window"], c["bd_wide"]):
            assert {"psnr_rgb", "ssim_rgb"} <= set(table)
            assert all(("bd_rate" in r) != ("error" in r) for r in table.values())
    ra, qa = rd_curve(rd["codecs"]["jpeg"], "psnr_rgb")
    rb, qb = rd_curve(rd["codecs"][plain], "psnr_rgb")
    wide = pairs[(plain, "jpeg")]["bd_wide"]["psnr_rgb"]
    try:
        expected = {"bd_rate": pytest.approx(metrics.bd_rate(ra, qa, rb, qb, rate_window=(0.3, 2.0)))}
    except ValueError as exc:
        expected = {"error": str(exc)}
    assert wide == expected

    timing = entry["timing"]
    assert list(timing["rows"]) == ["jpeg", "jpeg+tiny-gray", *users, hid, plain]
    assert timing["threads"] == 1 == payload["config"]["threads"] and timing["cpu"] and timing["n_images"] == 2
    assert timing["quality"] == 50
    for r in timing["rows"].values():
        assert r["encode_s_per_mp"] > 0 and r["decode_s_per_mp"] > 0
        assert len(r["per_image"]["encode_s_per_mp"]) == 2
    text = hb.format_hiding_tables(payload)
    assert "Encode and decode time, seconds per megapixel at quality 50" in text and f"| {plain} |" in text
    assert "BD-rate psnr_rgb, 0.3-2.0 bpp" in text
    assert f"- {plain} against jpeg, BD-rate (psnr_rgb) within 0.3-2.0 bpp" in text

    if users:
        jpegli, restorer = get_codec("jpegli"), Restorer(model="tiny-gray")
        assert entry["user_codecs"]["jpegli"]["decoder"] == "pillow"
        i = SWEEP.index(35)
        for j, img in enumerate(images):
            data = jpegli.encode(img, 35)
            decoded = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
            point = rd["codecs"]["jpegli"]["points"][i]
            assert point["per_image"]["bytes"][j] == len(data)
            assert point["per_image"]["psnr_rgb"][j] == pytest.approx(score(decoded, img)["psnr_rgb"], abs=1e-4)
            restored = restorer.restore_pixels(decoded, restorer.plan(False, None))
            assert rd["codecs"]["jpegli+tiny-gray"]["points"][i]["per_image"]["psnr_rgb"][j] == \
                pytest.approx(score(restored, img)["psnr_rgb"], abs=1e-4)
        assert f"- {hid} against jpegli+tiny-gray, BD-rate (psnr_rgb) within 0.3-2.0 bpp" in text
    json.dumps(payload)


@pytest.mark.skipif(not _jpegli(), reason="jpegli bindings not installed")
def test_a_pair_trained_behind_jpegli_joins_the_jpeg_curves(zoo, kodak):
    """Issue 37: jpegli writes JPEG files, so a pair trained behind it is
    benched beside the libjpeg-turbo pair on one set of JPEG curves (its files
    in the same plain viewer, against the same references), but Table 2, the
    paper's protocol through libjpeg-turbo, holds only the libjpeg-turbo pair."""
    from carkit.codecs import get_codec

    add_hiding(zoo, "tiny-s2", "II", seed=2)
    add_hiding(zoo, "tiny-jpegli", "II", quality=[10, 80], seed=3, codec="jpegli")
    payload = hb.bench_hiding(kodak, models=["tiny-s2", "tiny-jpegli"], restorer="", sweep=[30, 50, 70],
                              progress=False, timing_images=1)
    entry = payload["codecs"]["jpeg"]
    rd = entry["rd"]
    hid, plain = "hiding+D (tiny-jpegli)", "hiding, plain viewer (tiny-jpegli)"
    assert {hid, plain, "hiding+D (tiny-s2)"} <= set(rd["codecs"])
    assert rd["codecs"][hid]["settings"]["base_codec"] == "jpegli"
    img = _image(kodak, "kodim01.png")
    data = get_codec("hiding", codec="jpegli", model="tiny-jpegli").encode(img, 50)
    assert rd["codecs"][hid]["points"][1]["per_image"]["bytes"][0] == len(data)
    pairs = {(c["method"], c["against"]) for c in rd["comparisons"]}
    assert {(hid, "jpeg"), (hid, "jpegli"), (plain, "jpeg"), (plain, "jpegli")} <= pairs
    assert all(r["model"] != "tiny-jpegli" for t in entry["table2"] for r in t["rows"])
    assert any(r["model"] == "tiny-s2" for t in entry["table2"] for r in t["rows"])
    assert any(n.startswith("tiny-jpegli: trained behind jpegli") for n in entry["notes"])
    assert {hid, plain} <= set(entry["timing"]["rows"])
    assert hb.same_files("jpegli", "jpeg") and not hb.same_files("heif", "jpeg")


def test_refine_adds_each_pairs_refined_twin_with_the_files_encode_writes(zoo, kodak):
    """``--refine STEPS`` adds, for every JPEG-carried pair, the curves of the
    files ``carkit encode --refine STEPS`` writes (hiding+D and the plain
    viewer), named "NAME, refine STEPS", in the RD comparisons and the
    timing; the command line records it."""
    from carkit.codecs import get_codec

    add_hiding(zoo, "tiny-s2", "II", seed=2)
    payload = hb.bench_hiding(kodak, models=["tiny-s2"], restorer="", sweep=[30, 50, 70], progress=False,
                              timing_images=1, refine=2)
    entry = payload["codecs"]["jpeg"]
    hid, plain = "hiding+D (tiny-s2, refine 2)", "hiding, plain viewer (tiny-s2, refine 2)"
    assert {hid, plain, "hiding+D (tiny-s2)"} <= set(entry["rd"]["codecs"])
    data = get_codec("hiding", codec="jpeg", model="tiny-s2", refine=2).encode(_image(kodak, "kodim01.png"), 50)
    assert entry["rd"]["codecs"][hid]["points"][1]["per_image"]["bytes"][0] == len(data)
    assert entry["rd"]["codecs"][hid]["settings"]["refine"] == 2
    assert {(hid, "jpeg"), (plain, "jpeg")} <= {(c["method"], c["against"]) for c in entry["rd"]["comparisons"]}
    assert {hid, plain} <= set(entry["timing"]["rows"])
    assert "--refine 2" in hb.command_line(payload)
    with pytest.raises(hb.UsageError, match="--refine"):
        hb.bench_hiding(kodak, models=["tiny-s2"], restorer="", progress=False, refine=-1)


def test_without_jpegli_its_curves_are_left_out_with_a_note(zoo, kodak, monkeypatch):
    monkeypatch.setitem(hb.USER_CODECS, "jpeg", ("no-such-codec",))
    add_hiding(zoo, "tiny-s2", "II", seed=2)
    payload = hb.bench_hiding(kodak, models=["tiny-s2"], restorer="", sweep=[30, 50, 70, 90], progress=False,
                              timing_images=0)
    entry = payload["codecs"]["jpeg"]
    assert list(entry["rd"]["codecs"]) == ["jpeg", "hiding+D (tiny-s2)", "hiding, plain viewer (tiny-s2)"]
    assert any(n.startswith("no no-such-codec curves") for n in entry["notes"])
    assert entry["timing"] is None and "Encode and decode time" not in hb.format_hiding_tables(payload)
    assert "--timing-images 0" in hb.command_line(payload)


def test_a_pair_trained_over_a_quality_range_counts_as_trained_across_it(zoo, kodak):
    """A range pair (task quality [lo, hi]) has a Table 2 row when the range
    holds the table's quality, its RD points inside the range are in its
    training quality, and the encoder prefers it wherever it is nearer."""
    from carkit.codecs.hiding.codec import choose_weights

    add_hiding(zoo, "tiny-range", "II", quality=[45, 70], seed=4)
    add_hiding(zoo, "tiny-s2", "II", seed=2)
    payload = hb.bench_hiding(kodak, models=["tiny-range"], restorer="", sweep=SWEEP, fixq_quality=62, progress=False,
                              tag="range")
    assert hb.command_line(payload).endswith("--models tiny-range --restorer '' --fixq-quality 62 --sweep "
                                             "20,35,50,65,80 --threads 1 --tag range")
    assert "images, range)" in hb.report_section(payload)[0]
    entry = payload["codecs"]["jpeg"]
    row = entry["table2"][0]["rows"][-1]
    assert (row["method"], row["model"], row["quality"], row["trained_quality"]) == \
        ("Strategy II", "tiny-range", 50, "45-70")
    points = entry["rd"]["codecs"]["hiding+D (tiny-range)"]["points"]
    assert [p["in_training_quality"] for p in points] == [45 <= q <= 70 for q in SWEEP]
    assert "| Strategy II | tiny-range | 50 (45-70) |" in hb.format_hiding_tables(payload)
    assert [choose_weights("jpeg", False, q) for q in (10, 44, 60, 90)] == ["tiny-range"] * 4
    # equally near (both hold 50): the name decides (no reviewed default among these)
    assert [choose_weights("jpeg", False, q) for q in (44, 50)] == ["tiny-range", "tiny-range"]


def test_fix_q_searches_the_quality_whose_bpp_matches(full, kodak):
    payload = hb.bench_hiding(kodak, restorer="", sweep=[30, 50, 70, 90], progress=False)
    fixq = payload["codecs"]["jpeg"]["table2"][0]
    target, bq = fixq["target_bpp"], fixq["baseline_quality"]
    images = [_image(kodak, f) for f in ("kodim01.png", "kodim02.png")]

    def mean_bpp(q):
        return np.mean([8 * len(JpegCodec().encode(im, q)) / (im.shape[0] * im.shape[1]) for im in images])

    assert target > mean_bpp(50)                             # the marker and E's changes cost bits
    best = min(range(1, 101), key=lambda q: (abs(mean_bpp(q) - target), q))
    assert bq == best and fixq["baseline_bpp"] == pytest.approx(mean_bpp(best))
    assert fixq["search"][str(bq)] == pytest.approx(mean_bpp(bq)) and len(fixq["search"]) <= 10
    # baselines stand in within BASELINE_MARGIN quality points, else a note says why they are missing
    methods = [r["method"] for r in fixq["rows"]]
    assert ("DnCNN" in methods) == (abs(bq - 62) <= hb.BASELINE_MARGIN or abs(bq - 50) <= hb.BASELINE_MARGIN)
    assert payload["codecs"]["jpeg"]["rd"]["config"]["restored"] is None


def test_a_codec_whose_quality_fixes_the_rate_has_one_protocol(full, kodak):
    """JPEG 2000 plugs in through the registry and its config: Fix-Q/BPP at
    quality 28; its baselines are those trained behind JPEG 2000 (data.codec),
    never the JPEG ones, and a codec without any gets a note."""
    add_hiding(full, "tiny-j2k", "II", quality=28, codec="jpeg2000")
    add_baseline(full, "dncnn-j2k-q28", "DnCNN", 28, seed=9, codec="jpeg2000")
    payload = hb.bench_hiding(kodak, ["jpeg", "jpeg2000"], models=["tiny-j2k", "tiny-s2", "dncnn-j2k-q28",
                                                                   "dncnn-q62"], restorer="",
                              sweep=[20, 28, 40, 60], quality=None, fixq_quality=62, progress=False)
    assert list(payload["codecs"]) == ["jpeg", "jpeg2000"]
    j2k = payload["codecs"]["jpeg2000"]
    (table,) = j2k["table2"]
    assert table["protocol"] == "fix-q/bpp" and table["baseline_quality"] == 28
    assert _rows(table) == [("Original", None, 28), ("DnCNN", "dncnn-j2k-q28", 28), ("Strategy II", "tiny-j2k", 28)]
    assert any("MemNet: no weights" in n for n in table["notes"])
    assert b"tiny-j2k" in hb.BenchHidingCodec(
        "jpeg2000", "tiny-j2k", *_zoo_pair("tiny-j2k")).encode(_image(kodak, "kodim01.png"), 28)
    fixq = payload["codecs"]["jpeg"]["table2"][0]
    assert [r["model"] for r in fixq["rows"]] == [None, "dncnn-q62", "tiny-s2"]    # not the J2K DnCNN
    assert list(j2k["rd"]["codecs"]) == ["jpeg2000", "hiding+D (tiny-j2k)", "hiding, plain viewer (tiny-j2k)"]
    assert [r["model"] for r in payload["codecs"]["jpeg"]["table2"][1]["rows"]] == [None, "tiny-s2"]
    assert "#### jpeg2000" in hb.format_hiding_tables(payload)
    heif = hb.bench_hiding(kodak, ["heif"], models=[], restorer="", sweep=[39], progress=False)["codecs"]["heif"]
    assert any("no DnCNN/MemNet behind heif among the benched models" in n for n in heif["notes"])
    heif = hb.bench_hiding(kodak, ["heif"], restorer="", sweep=[39], progress=False)["codecs"]["heif"]
    assert any("no DnCNN/MemNet trained behind heif" in n for n in heif["notes"])


def test_learned_codec_sweeps_one_point_per_trained_rate_point(zoo, kodak):
    """The factorized codec: quality picks a zoo entry, so the sweep keeps one
    quality per entry present (two here, out of the config's four) and the
    table is one protocol at quality 50, IL_enc's bpp beside IL's."""
    from ..codecs.test_learned_codec import _add_tiny

    _add_tiny(zoo, "tiny-fp-a", qualities=(26, 50), seed=0)
    _add_tiny(zoo, "tiny-fp-b", qualities=(51, 75), seed=1)
    add_hiding(zoo, "tiny-fp-hiding", "direct", quality=50, codec="factorized")
    payload = hb.bench_hiding(kodak, ["factorized"], models=["tiny-fp-hiding"], restorer="", progress=False)
    entry = payload["codecs"]["factorized"]
    assert list(entry["config"]["sweep"]) == [50, 75]
    (table,) = entry["table2"]
    assert table["protocol"] == "fix-q/bpp" and table["baseline_quality"] == 50
    assert _rows(table) == [("Original", None, 50), ("Ours (codec as proxy)", "tiny-fp-hiding", 50)]
    assert table["rows"][1]["il_enc"]["bpp"] > 0
    points = entry["rd"]["codecs"]["factorized"]["points"]
    assert [p["quality"] for p in points] == [50, 75] and points[0]["mean"] != points[1]["mean"]  # two entries
    assert "#### factorized" in hb.format_hiding_tables(payload)


def _zoo_pair(name):
    from carkit.codecs.hiding.codec import load_weights

    return load_weights(name)


def test_match_quality_bisects_a_rate_curve():
    calls = []

    def rate(q):
        calls.append(q)
        return 0.1 + q / 100

    assert hb.match_quality(rate, 0.72)[0] == 62 and len(calls) <= 9
    assert hb.match_quality(rate, 0.725)[0] == 62            # a tie: the lower quality
    assert hb.match_quality(rate, 0.01)[0] == 1 and hb.match_quality(rate, 9.0)[0] == 100
    flat = hb.match_quality(lambda q: 0.5 + 0.1 * (q >= 70), 0.54)
    assert flat[0] == 69 and flat[1][69] == 0.5


def test_missing_weights_are_skipped_with_notes_and_the_report_renders(zoo, kodak, tmp_path):
    from carkit.bench.report import build_report
    from carkit.bench.results import write_result

    add_baseline(zoo, "blind-dncnn", "DnCNN", None, qualities=[10, 50])
    payload = hb.bench_hiding(kodak, restorer="tiny-gray", sweep=SWEEP, progress=False)
    entry = payload["codecs"]["jpeg"]
    assert [t["protocol"] for t in entry["table2"]] == ["fix-bpp"]
    assert _rows(entry["table2"][0]) == [("Original", None, 50)]
    assert any("Fix-Q: skipped" in n and "--fixq-quality" in n for n in entry["notes"])
    assert any("blind-dncnn" in n and "one quality" in n for n in payload["notes"])
    notes = entry["table2"][0]["notes"]
    assert any(n.startswith("DnCNN: no weights") for n in notes) and any("no hiding model" in n for n in notes)
    assert list(entry["rd"]["codecs"]) == ["jpeg", "jpeg+tiny-gray", *(JPEGLI if _jpegli() else [])]
    write_result(tmp_path / "results" / "hiding_kodak_color.json", payload)
    text = build_report(tmp_path / "results")
    assert "## Residual hiding (paper Table 2, then RD curves)" in text and "**Fix-BPP**" in text
    assert "figures/hiding_rd_kodak_color_jpeg.png" in text and "Fix-Q: skipped" in text
    assert "carkit bench hiding --data" in text and "--restorer tiny-gray" in text



def test_each_codec_set_has_its_own_result_file():
    def payload(codecs):
        return {"config": {"codecs": codecs, "mode": "color", "data": "eval/kodak"},
                "provenance": {"dataset": {"name": "kodak"}}, "codecs": {c: {} for c in codecs}}

    paths = {hb.result_path("r", payload(c)).name for c in (["jpeg"], ["jpeg2000"], ["jpeg", "heif"])}
    assert len(paths) == 3 and "hiding_kodak_color.json" in paths
    tagged = payload(["jpeg"])                 # a later pair measured on its own: its own file and figure
    tagged["config"]["tag"] = "range"
    assert hb.result_path("r", tagged).name == "hiding_kodak_color_range.json"
    assert hb.figure_path(tagged, "jpeg") == "figures/hiding_rd_kodak_color_jpeg_range.png"
    assert all(p.startswith("hiding_") and p.endswith(".json") for p in paths)

def test_training_runs_are_scored_before_anything_ships(zoo, kodak, tmp_path):
    from safetensors.torch import save_file

    from carkit.models.registry import create_model

    def run(name, model, kwargs, gray, task_kwargs=None, quality=50, init=None):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        torch.manual_seed(9)
        net = create_model(model, **kwargs)
        if init:
            with torch.no_grad():
                init(net)
        save_file({f"ema.{k}": v.contiguous() for k, v in net.state_dict().items()}, str(folder / "last.safetensors"))
        (folder / "recipe.json").write_text(json.dumps({
            "name": name, "model": model, "model_kwargs": kwargs, "gray": gray, "qualities": [quality],
            "codec": "jpeg",
            "quality_range": [], "train_dirs": ["train/x"], "task_kwargs": task_kwargs or {},
            "task": "residual-hiding" if task_kwargs else "restore"}))
        return folder

    runs = [run("hid-run", "hiding-color", HIDING_KWARGS, False, {"strategy": "II", "quality": 50}, init=_visible),
            run("dn-run", "dncnn3-color", DNCNN_KWARGS, False)]
    payload = hb.bench_hiding(kodak, models=[], runs=runs, restorer="", sweep=[30, 50, 70, 90], fixq_quality=62,
                              progress=False)
    entry = payload["codecs"]["jpeg"]
    fixbpp = entry["table2"][1]
    assert _rows(fixbpp) == [("Original", None, 50), ("DnCNN", "dn-run", 50), ("Strategy II", "hid-run", 50)]
    assert entry["models"]["hid-run"]["source"] == "run" and entry["models"]["dn-run"]["run"] == str(runs[1])
    img = _image(kodak, "kodim01.png")
    codec = hb.BenchHidingCodec("jpeg", "hid-run", *_run_pair(runs[0]))
    data = codec.encode(img, 50)
    assert b"hid-run" in data and fixbpp["rows"][2]["per_image"]["bytes"][0] == len(data)
    assert "--runs " + str(runs[0]) in hb.command_line(payload)


def _run_pair(folder):
    from types import SimpleNamespace

    from carkit.bench.results import sha256_file
    from carkit.training.export import load_run_model

    net, recipe = load_run_model(folder)
    return net, SimpleNamespace(gray=False, sha256=sha256_file(folder / "last.safetensors"),
                                training={"recipe": recipe}, qualities=[50, 50], codec="jpeg")


def test_cli_writes_result_figure_and_report(full, kodak, tmp_path, capsys):
    from carkit.bench.report import write_report

    from carkit.zoo.registry import weights_record

    before = weights_record("tiny-s2").to_dict()
    results, figures = tmp_path / "results", tmp_path / "figs"
    assert main(["bench", "hiding", "--data", str(kodak), "--models", "tiny-s2,dncnn-q50,memnet-q62",
                 "--restorer", "tiny-gray", "--sweep", ",".join(map(str, SWEEP)), "--fixq-quality", "62",
                 "--results", str(results), "--figures", str(figures), "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "hiding_kodak_color.json" in out and "**Fix-Q**" in out and "BD-rate (psnr_rgb) within 0.4-1.5 bpp" in out
    payload = json.loads((results / "hiding_kodak_color.json").read_text())
    assert payload["config"]["models"] == ["tiny-s2", "dncnn-q50", "memnet-q62"]
    assert _rows(payload["codecs"]["jpeg"]["table2"][0])[1:] == [("MemNet", "memnet-q62", 62),
                                                                  ("Strategy II", "tiny-s2", 50)]
    assert (figures / "hiding_rd_kodak_color_jpeg.png").stat().st_size > 1000
    md = write_report(results, tmp_path / "docs" / "RESULTS.md")
    assert (md.parent / "figures" / "hiding_rd_kodak_color_jpeg.png").exists()
    assert "--models tiny-s2,dncnn-q50,memnet-q62" in md.read_text()

    # a bench writes results/ only: the records it measured are as they were
    assert weights_record("tiny-s2").to_dict() == before


@pytest.mark.parametrize("args,message", [
    (["--codecs", "webp"], "no hiding-bench configuration for webp"),
    (["--codecs", "nope"], "unknown codec"),
    (["--models", "ghost"], "no shipped weights named 'ghost'"),
    (["--models", "tiny-gray"], "not a hiding model or a DnCNN/MemNet baseline"),
    (["--models", "blind"], "trained at one quality"),
    (["--models", "gray-hiding"], "codes gray images; this set is color"),
    (["--window", "1.5,0.4"], "--window"),
    (["--tag", "My Tag"], "--tag must be"),
    (["--fixq-quality", "0"], "quality must be"),
    (["--runs", "."], "not a training run folder"),
])
def test_cli_errors_are_one_line(zoo, kodak, tmp_path, capsys, args, message):
    add_baseline(zoo, "blind", "DnCNN", None, qualities=[10, 50])
    add_hiding(zoo, "gray-hiding", "II", gray=True)
    code = main(["bench", "hiding", "--data", str(kodak), "--restorer", "tiny-gray", "--results", str(tmp_path / "r"),
                 "--figures", "", "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_paper_numbers_and_codec_configs():
    from carkit.bench.paper_numbers import HIDING_TABLE_2_KODAK

    jpeg = HIDING_TABLE_2_KODAK["jpeg"]
    assert (jpeg["fix-q"]["quality"], jpeg["fix-q"]["bpp"], jpeg["fix-bpp"]["bpp"]) == (50, 0.889, 1.0)
    assert jpeg["fix-q"]["rows"]["Strategy II"] == (34.960, 0.940)
    assert jpeg["fix-bpp"]["rows"]["DnCNN"] == (33.889, 0.918)
    assert HIDING_TABLE_2_KODAK["jpeg2000"]["fix-q/bpp"]["rows"]["Original"] == (28.575, 0.754)
    for cfg in hb.CODECS.values():
        if cfg.paper is None:  # carkit's learned codec: the paper's deep codecs are others
            assert cfg.codec == "factorized" and cfg.protocols == ("fix-q/bpp",)
            continue
        assert set(cfg.protocols) == set(HIDING_TABLE_2_KODAK[cfg.paper])
        assert len(cfg.sweep) >= 4 and cfg.quality in cfg.sweep


def test_budget_line_separates_a_models_own_training_from_the_stages_it_started_from():
    stages = [{"run": "dagn-stage2", "steps": 12000, "wall_seconds": 3000},
              {"run": "pair", "steps": 8000, "wall_seconds": 1800}]
    entry = {"models": {"pair": {"label": "Strategy II", "training": {"steps": 8000, "wall_seconds": 4800,
                                                                      "stages": stages}},
                        "old": {"label": "Strategy I", "training": {"steps": 9000, "wall_seconds": 4080}}}}
    line = hb._budget_lines(entry)[0]
    assert "old (Strategy I): 9000 steps, 68 min;" in line
    assert "pair (Strategy II): 8000 steps, 30 min, after 1 earlier stages (dagn-stage2: 50 min)." in line
