"""Fuzzed `carkit decode` (issue 34): every mutated .bcnn, .ckfp, residual-hiding
and virtual-codec file ends in a complete decoded image or a one-line
``CarkitError``; never another exception, a hang or a huge allocation.

Small valid files are made once per module (tiny synthetic images, each coded
by the shipped zoo weights, as ``carkit encode --method blockcnn / factorized /
hiding / vcnn`` does), then a seeded mutator derives about 4,600 damaged
files from them (300 to 640 per format): bit flips, byte changes, truncation at every field, segment,
marker and box boundary the formats have plus random points, removed and
duplicated segments, inserted and appended junk, zero and huge sizes and
dimensions, corrupt length fields, and damaged carkit markers (JSON of the
wrong types, huge numbers, unknown weights, deep nesting). Container fields
are mutated twice: as they are (the CRC catches them) and with the CRC and
lengths recomputed, so the parsers and decoders behind the checks see the
damage too.

Every case goes through :func:`decode_like_cli`, the dispatch of
``carkit decode`` (``cli._cmd_decode``) in process, with the pixel limit
lowered to 256x256 so that a declared size above it must be refused before
anything is allocated. Each format's outcome counts are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import random
import resource
import signal
import struct
import time
import zlib
from collections import Counter

import numpy as np
import pytest

from carkit.errors import CarkitError

#: the pixel limit in force during the fuzz cases (carkit.io.MAX_PIXELS)
LIMIT = 256 * 256
#: seconds one case may take before it counts as a hang
CASE_SECONDS = 30

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- the decode under test

def decode_like_cli(data: bytes) -> np.ndarray:
    """What ``carkit decode FILE -o out.png`` does with FILE's bytes (method
    auto, no --restore), in process: the library's ``decode_file`` (the CLI's
    dispatch), down to the PNG bytes it would write. Returns the decoded
    pixels; raises what the command would report."""
    from carkit.api import decode_file
    from carkit.io import encode_image

    decoded = decode_file(data, "<fuzz>")
    encode_image(decoded.pixels, "PNG", metadata=decoded.metadata, name="<fuzz>.png")
    return decoded.pixels


# ---------------------------------------------------------------- valid files

def _image(h: int, w: int, color: bool, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 70 * np.sin(x / 5.0 + seed) * np.cos(y / 4.0) + 30 * (x > w / 2)
    base += np.random.default_rng(seed).normal(0, 5, (h, w))
    img = np.stack([base, 0.7 * base + 40, 255 - base], -1) if color else base
    return np.clip(img, 0, 255).astype(np.uint8)


def _make(fmt: str) -> bytes:
    """One small valid file of ``fmt`` (what ``carkit encode`` writes)."""
    from carkit.errors import CodecError
    from carkit.codecs.blockcnn.codec import BlockCNNCodec
    from carkit.codecs.factorized.codec import FactorizedCodec
    from carkit.codecs.hiding.codec import HidingCodec
    from carkit.codecs.virtual.codec import VirtualCodecCodec

    kind, variant = fmt.split("-", 1)
    try:
        if kind == "bcnn":  # few blocks: every decode runs the zoo predictor per wavefront step
            codec, q = BlockCNNCodec(), 30
            img = _image(16, 24, variant == "color", 1)
        elif kind == "ckfp":
            codec, q = FactorizedCodec(), 50
            img = _image(32, 40, variant == "color", 2)
        elif kind == "hiding":
            # JPEG 2000's pairs (they lose to the codec alone) and libjpeg-turbo's (jpegli's measures
            # better) live in weights/bench: named here
            bench = {"jpeg2000": "hiding-jpeg2000-q28-s1", "jpeg": "hiding-jpeg-q10-80-s2-dagn-rate-p128"}
            codec = HidingCodec(codec=variant, model=bench.get(variant))
            q = {"jpeg": 50, "jpegli": 50, "factorized": 50, "jpeg2000": 28, "heif": 39}[variant]
            img = _image(16, 24, True, 3)
        else:
            codec, q = VirtualCodecCodec(), 20
            img = _image(16, 24, variant == "color", 4)
        reason = codec.unavailable_reason() or (codec._base.unavailable_reason() if kind == "hiding" else None)
    except CodecError as exc:  # no zoo weights or library for this codec here
        reason = str(exc)
    if reason:
        pytest.skip(reason)
    data = codec.encode(img, q)
    assert decode_like_cli(data).shape == img.shape  # the valid file decodes
    return data


FORMATS = ["bcnn-color", "bcnn-gray", "ckfp-color", "ckfp-gray", "hiding-jpegli", "hiding-jpeg", "hiding-factorized",
           "hiding-jpeg2000", "hiding-heif", "vcnn-color", "vcnn-gray"]


@pytest.fixture(scope="module")
def fast_zoo():
    """Zoo weights loaded once per module (each decode would load them again,
    as the CLI does once per file); the weights are not changed by decoding."""
    import carkit.zoo.registry as zoo

    mp = pytest.MonkeyPatch()
    cache, load = {}, zoo.load_pretrained

    def cached(name, device="cpu"):
        if (name, device) not in cache:
            cache[(name, device)] = load(name, device)
        return cache[(name, device)]

    mp.setattr(zoo, "load_pretrained", cached)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def valid(fast_zoo):
    made: dict[str, bytes] = {}

    def get(fmt: str) -> bytes:
        if fmt not in made:
            made[fmt] = _make(fmt)
        return made[fmt]

    return get


# ---------------------------------------------------------------- structure of the formats

def _u(data: bytes, fmt: str, at: int) -> int:
    return struct.unpack_from(fmt, data, at)[0]


def _put(data: bytes, fmt: str, at: int, value: int) -> bytes:
    size = struct.calcsize(fmt)
    value &= (1 << (8 * size)) - 1
    return data[:at] + struct.pack(fmt, value) + data[at + size:]


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of SOI, each header segment, the entropy-coded data
    of each scan (marker 0), further segments between scans, and EOI."""
    out, pos = [(0xD8, 0, 2)], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((0xD9, pos, pos + 2))
            break
        end = pos + 2 + _u(data, ">H", pos + 2)
        out.append((marker, pos, end))
        pos = end
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not RSTn or stuffing
            scan = pos
            while pos + 1 < len(data) and not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
            out.append((0, scan, pos))
    return out


def j2k_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of a J2K codestream's main-header segments, each
    tile-part (SOT through its data, by Psot) and EOC."""
    out, pos = [(0xFF4F, 0, 2)], 2
    while pos + 4 <= len(data):
        marker = _u(data, ">H", pos)
        if marker == 0xFFD9:
            out.append((marker, pos, pos + 2))
            break
        if marker == 0xFF90:
            psot = _u(data, ">I", pos + 6)
            end = pos + psot if psot else len(data) - 2
            sod = data.find(b"\xff\x93", pos)
            out.append((marker, pos, sod + 2 if 0 < sod < end else end))
            if 0 < sod < end:
                out.append((0xFF93, sod + 2, end))
            pos = end
            continue
        end = pos + 2 + _u(data, ">H", pos + 2)
        out.append((marker, pos, end))
        pos = end
    return out


def bmff_boxes(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of ISO-BMFF boxes, nested into the containers HEIF uses."""
    end = len(data) if end is None else end
    out, pos = [], start
    while pos + 8 <= end:
        size, kind = _u(data, ">I", pos), data[pos + 4:pos + 8]
        if size < 8 or pos + size > end:
            break
        out.append((kind, pos, pos + size))
        inner = {b"meta": 12, b"iprp": 8, b"ipco": 8, b"dinf": 8}.get(kind)
        if inner and depth < 3:
            out.extend(bmff_boxes(data, pos + inner, pos + size, depth + 1))
        pos += size
    return out


# bcnn: <4sBBBBII | name | hash 32 | payload length u32 | crc u32 | payload
def _bcnn_layout(data: bytes) -> dict:
    nlen = data[7]
    crc_at = 16 + nlen + 32 + 4
    return {"nlen": nlen, "len_at": crc_at - 4, "crc_at": crc_at, "payload": crc_at + 4}


def bcnn_fix(data: bytes) -> bytes:
    """The payload length and CRC recomputed for whatever the bytes say now
    (the bytes as they are where the header is too short for that)."""
    lay = _bcnn_layout(data)
    if len(data) < lay["payload"]:
        return data
    payload = data[lay["payload"]:]
    data = _put(data, "<I", lay["len_at"], len(payload))
    crc = zlib.crc32(payload, zlib.crc32(data[:lay["crc_at"]]))
    return _put(data, "<I", lay["crc_at"], crc)


def bcnn_with_payload(data: bytes, payload: bytes) -> bytes:
    return bcnn_fix(data[:_bcnn_layout(data)["payload"]] + payload)


# ckfp: >4sBIIBB | name | sha 8 | tables 4 | plen u32 | payload | crc u32 | chunks
def _ckfp_layout(data: bytes) -> dict:
    nlen = data[14]
    plen_at = 15 + nlen + 12
    payload = plen_at + 4
    core = payload + _u(data, ">I", plen_at) + 4
    return {"plen_at": plen_at, "payload": payload, "core": core}


def ckfp_fix(data: bytes, payload: bytes | None = None) -> bytes:
    """The CRC (and, with a new ``payload``, its length) recomputed; marker
    chunks after the container are kept (the bytes as they are where the
    header is too short for that)."""
    try:
        lay = _ckfp_layout(data)
    except struct.error:  # too short for the header it declares
        return data
    chunks = data[lay["core"]:]
    body = data[:lay["core"] - 4]
    if payload is not None:
        body = _put(body[:lay["payload"]], ">I", lay["plen_at"], len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body)) + chunks


def ckfp_chunk(payload: bytes) -> bytes:
    return b"CKMK" + struct.pack(">I", len(payload)) + payload + struct.pack(">I", zlib.crc32(payload))


# ---------------------------------------------------------------- the mutator

class Mutator:
    """Seeded damage of one valid file: ``cases()`` yields (label, bytes)."""

    def __init__(self, fmt: str, data: bytes, seed: int, random_cases: int):
        self.fmt, self.data, self.rnd, self.n = fmt, data, random.Random(seed), random_cases

    # -------------------------------------------------- generic byte-level damage

    def generic(self, data: bytes, boundaries: list[int], tag: str = ""):
        rnd, n = self.rnd, len(data)
        cuts = sorted({b + d for b in boundaries for d in (0, 1) if 0 < b + d < n}
                      | {rnd.randrange(1, n) for _ in range(self.n // 2)})
        for at in cuts:
            yield f"{tag}truncate@{at}", data[:at]
        for i in range(self.n):
            b = bytearray(data)
            for _ in range(rnd.choice((1, 1, 2, 3, 8))):
                at = rnd.randrange(n)
                b[at] ^= 1 << rnd.randrange(8)
            yield f"{tag}bitflip#{i}", bytes(b)
        for i in range(self.n // 2):
            b = bytearray(data)
            at = rnd.choice(boundaries + [rnd.randrange(n)] * 4) % n
            b[at] = rnd.choice((0x00, 0xFF, 0x7F, 0x80, rnd.randrange(256)))
            yield f"{tag}byte@{at}", bytes(b)
        for i in range(self.n // 3):
            a = rnd.randrange(n)
            b = min(n, a + rnd.choice((1, 4, 16, 64, 512)))
            op = rnd.choice(("delete", "duplicate", "insert", "zero", "ff"))
            if op == "delete":
                out = data[:a] + data[b:]
            elif op == "duplicate":
                out = data[:b] + data[a:b] + data[b:]
            elif op == "insert":
                out = data[:a] + bytes(rnd.randrange(256) for _ in range(b - a)) + data[a:]
            else:
                out = data[:a] + (b"\0" if op == "zero" else b"\xff") * (b - a) + data[b:]
            yield f"{tag}{op}@{a}:{b}", out
        yield f"{tag}append-junk", data + bytes(rnd.randrange(256) for _ in range(37))
        yield f"{tag}append-self", data + data
        yield f"{tag}empty", b""

    def segments(self, data: bytes, segs, tag: str):
        """Remove, duplicate and swap each segment."""
        for i, (_, s, e) in enumerate(segs):
            yield f"{tag}remove#{i}", data[:s] + data[e:]
            yield f"{tag}duplicate#{i}", data[:e] + data[s:e] + data[e:]
            if i + 1 < len(segs):
                _, s2, e2 = segs[i + 1]
                if e == s2:
                    yield f"{tag}swap#{i}", data[:s] + data[s2:e2] + data[s:e] + data[e2:]

    def fields(self, data: bytes, fields, tag: str, fix=None):
        """Each (name, struct format, offset) set to edge values; with ``fix``
        also a second time with the checks recomputed."""
        for name, f, at in fields:
            if at + struct.calcsize(f) > len(data):
                continue
            bits = 8 * struct.calcsize(f)
            old = _u(data, f, at)
            for value in {0, 1, 2, old + 1, old - 1, 2 * old, (1 << bits) - 1, (1 << (bits - 1)),
                          self.rnd.randrange(1 << bits)}:
                mutated = _put(data, f, at, value)
                yield f"{tag}{name}={value}", mutated
                if fix is not None:
                    yield f"{tag}{name}={value}+fix", fix(mutated)

    # -------------------------------------------------- JPEG

    def jpeg(self, data: bytes, tag: str = "", wrap=lambda d: d):
        """Truncation at every marker, removed/duplicated segments, corrupt
        lengths, SOF/DQT/DHT/SOS/DRI fields; ``wrap`` puts the damaged JPEG
        back into its container."""
        segs = jpeg_segments(data)
        bounds = sorted({p for _, s, e in segs for p in (s, s + 2, s + 4, e)})
        for label, d in self.segments(data, [s for s in segs if s[0] not in (0xD8, 0xD9)], f"{tag}jpeg-"):
            yield label, wrap(d)
        for at in bounds:
            if 0 < at < len(data):
                yield f"{tag}jpeg-truncate@{at}", wrap(data[:at])
        fields = []
        for marker, s, e in segs:
            if marker in (0, 0xD8, 0xD9):
                continue
            fields.append((f"len{marker:02x}@{s}", ">H", s + 2))
            if marker in (0xC0, 0xC1, 0xC2):
                fields += [("sof-precision", ">B", s + 4), ("sof-height", ">H", s + 5), ("sof-width", ">H", s + 7),
                           ("sof-ncomp", ">B", s + 9)]
                fields += [(f"sof-c{i}-{k}", ">B", s + 10 + 3 * i + j) for i in range(data[s + 9] if s + 9 < len(data) else 0)
                           for j, k in enumerate(("id", "hv", "tq"))]
            elif marker == 0xDB:
                fields += [("dqt-pq-tq", ">B", s + 4), ("dqt-entry0", ">B", s + 5), ("dqt-entry63", ">B", s + 68)]
            elif marker == 0xC4:
                fields += [("dht-tc-th", ">B", s + 4), ("dht-count1", ">B", s + 5), ("dht-count16", ">B", s + 20)]
            elif marker == 0xDA:
                fields += [("sos-ncomp", ">B", s + 4), ("sos-c0-id", ">B", s + 5), ("sos-c0-tables", ">B", s + 6),
                           ("sos-ss", ">B", e - 3), ("sos-se", ">B", e - 2), ("sos-ah-al", ">B", e - 1)]
            elif marker == 0xDD:
                fields.append(("dri", ">H", s + 4))
        for label, d in self.fields(data, fields, f"{tag}jpeg-"):
            yield label, wrap(d)
        for i in range(self.n // 4):  # damage inside the entropy-coded data
            b = bytearray(data)
            scans = [(s, e) for m, s, e in segs if m == 0 and e > s]
            s, e = self.rnd.choice(scans)
            for _ in range(self.rnd.choice((1, 4))):
                b[self.rnd.randrange(s, e)] = self.rnd.randrange(256)
            yield f"{tag}jpeg-scan#{i}", wrap(bytes(b))

    def jpeg_com(self, data: bytes, prefix: bytes, tag: str = ""):
        """The JPEG's carkit COM marker replaced by damaged ones."""
        for marker, s, e in jpeg_segments(data):
            if marker == 0xFE and data[s + 4:s + 4 + len(prefix)] == prefix:
                for label, payload in self.marker_payloads(data[s + 4:e], prefix):
                    payload = payload[:65533]
                    yield f"{tag}{label}", data[:s] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[e:]
                return
        raise AssertionError("no carkit COM marker")

    # -------------------------------------------------- carkit markers

    def marker_payloads(self, payload: bytes, prefix: bytes):
        """``prefix`` + damaged JSON: wrong types, edge numbers, other
        weights, missing keys, non-JSON."""
        marker = json.loads(payload[len(prefix):])
        values = [None, True, -1, 0, 2 ** 64, 10 ** 400, 1e308, 0.5, "", "x" * 300, [], {"a": 1},
                  "../../../etc/passwd", "a\0b", "dagn-small", "factorized-small-l0130", "vcodec-gray-q20",
                  "hiding-jpeg2000-q28-s1", "heif", "luma"]
        for key in list(marker) + ["gray", "planes"]:
            rest = {k: v for k, v in marker.items() if k != key}
            if key in marker:
                yield f"marker-drop-{key}", prefix + json.dumps(rest).encode()
            for v in values:
                yield f"marker-{key}={v!r:.20}", prefix + json.dumps({**marker, key: v}).encode()
        text = json.dumps(marker)
        for raw in ("NaN", "Infinity", "-Infinity", "1e999", "-0", "99999999999999999999999"):
            for key in ("height", "width", "quality"):
                if key in marker:
                    yield f"marker-{key}-raw-{raw}", prefix + text.replace(
                        f'"{key}": {json.dumps(marker[key])}', f'"{key}": {raw}').encode()
        yield "marker-list", prefix + json.dumps([marker]).encode()
        yield "marker-nested", prefix + b"[" * 20000 + b"]" * 20000
        yield "marker-nested-dict", prefix + b'{"a":' * 5000 + b"1" + b"}" * 5000
        yield "marker-not-json", prefix + b"{not json"
        yield "marker-not-utf8", prefix + b'{"model": "\xff\xfe"}'
        yield "marker-empty", prefix
        yield "marker-twice", prefix + text.encode() + b" " + text.encode()
        yield "marker-truncated", prefix + text.encode()[:len(text) // 2]

    # -------------------------------------------------- per format

    def cases(self):
        kind, variant = self.fmt.split("-", 1)
        data = self.data
        if kind == "bcnn":
            yield from self._bcnn(data)
        elif kind == "ckfp":
            yield from self._ckfp(data)
        elif kind == "vcnn":
            yield from self.generic(data, [s for _, s, _ in jpeg_segments(data)])
            yield from self.jpeg(data)
            yield from self.jpeg_com(data, b"carkit-vcodec ")
        elif variant in ("jpeg", "jpegli"):   # jpegli writes JPEG files (progressive, optimized Huffman codes)
            yield from self.generic(data, [s for _, s, _ in jpeg_segments(data)])
            yield from self.jpeg(data)
            yield from self.jpeg_com(data, b"carkit-hiding ")
        elif variant == "factorized":
            yield from self._hiding_ckfp(data)
        elif variant == "jpeg2000":
            yield from self._j2k(data)
        else:
            yield from self._heif(data)

    def _bcnn(self, data: bytes):
        lay = _bcnn_layout(data)
        bounds = [4, 5, 6, 7, 8, 12, 16, 16 + lay["nlen"], lay["len_at"], lay["crc_at"], lay["payload"], len(data)]
        yield from self.generic(data, bounds)
        fields = [("magic", "<I", 0), ("version", "<B", 4), ("mode", "<B", 5), ("quality", "<B", 6),
                  ("name-length", "<B", 7), ("width", "<I", 8), ("height", "<I", 12),
                  ("name0", "<B", 16), ("hash0", "<B", 16 + lay["nlen"]), ("payload-length", "<I", lay["len_at"]),
                  ("crc", "<I", lay["crc_at"])]
        yield from self.fields(data, fields, "bcnn-", fix=bcnn_fix)
        for name in (b"", b"dagn-small", b"x" * 255, b"\xff\xfe", b"../blockcnn-predictor", b"blockcnn-color"):
            head = data[:7] + bytes([len(name)]) + data[8:16] + name + data[16 + lay["nlen"]:lay["payload"]]
            yield f"bcnn-name={name[:12]!r}", bcnn_fix(head + data[lay["payload"]:])
        payload = data[lay["payload"]:]
        yield from self.jpeg(payload, "bcnn-payload-", wrap=lambda p: bcnn_with_payload(data, p))
        yield "bcnn-payload-not-jpeg", bcnn_with_payload(data, b"\0" * 100)
        yield "bcnn-payload-empty", bcnn_with_payload(data, b"")

    def _ckfp(self, data: bytes):
        lay = _ckfp_layout(data)
        bounds = [4, 5, 9, 13, 14, 15, lay["plen_at"] - 12, lay["plen_at"] - 4, lay["plen_at"], lay["payload"],
                  lay["core"] - 4, lay["core"]]
        yield from self.generic(data, bounds)
        fields = [("magic", ">I", 0), ("version", ">B", 4), ("height", ">I", 5), ("width", ">I", 9),
                  ("planes", ">B", 13), ("name-length", ">B", 14), ("name0", ">B", 15),
                  ("sha0", ">B", lay["plen_at"] - 12), ("tables0", ">B", lay["plen_at"] - 4),
                  ("payload-length", ">I", lay["plen_at"]), ("crc", ">I", lay["core"] - 4)]
        yield from self.fields(data, fields, "ckfp-", fix=ckfp_fix)
        payload = data[lay["payload"]:lay["core"] - 4]
        rnd = self.rnd
        for i in range(self.n // 3):  # damaged range-coder words, the container intact
            b = bytearray(payload)
            for _ in range(rnd.choice((1, 2, 8))):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            yield f"ckfp-payload#{i}", ckfp_fix(data, bytes(b))
        for at in range(0, len(payload), 4):
            yield f"ckfp-payload-truncate@{at}", ckfp_fix(data, payload[:at])
        for label, p in (("empty", b""), ("odd", payload[:-1]), ("zeros", b"\0" * len(payload)),
                         ("ones", b"\xff" * len(payload)), ("longer", payload + payload),
                         ("huge-words", b"\xff\xff\xff\x7f" * 64)):
            yield f"ckfp-payload-{label}", ckfp_fix(data, p)
        yield "ckfp-chunk-junk", data + b"CKMK\xff\xff\xff\xff"
        yield "ckfp-chunk-ok", data + ckfp_chunk(b"hello")

    def _hiding_ckfp(self, data: bytes):
        lay = _ckfp_layout(data)
        core, chunk = data[:lay["core"]], data[lay["core"]:]
        yield from self.generic(data, [lay["payload"], lay["core"] - 4, lay["core"], lay["core"] + 4,
                                       lay["core"] + 8, len(data) - 4])
        size = _u(chunk, ">I", 4)
        payload = chunk[8:8 + size]
        for label, p in self.marker_payloads(payload, b"carkit-hiding "):
            yield label, core + ckfp_chunk(p)
        yield from self.fields(data, [("chunk-length", ">I", lay["core"] + 4), ("chunk-crc", ">I", len(data) - 4)],
                               "chunk-")
        yield "chunk-twice", data + chunk
        yield "chunk-before-junk", data + b"junk"
        for i in range(self.n // 4):  # the coded image damaged, the container's checks recomputed
            p = bytearray(data[lay["payload"]:lay["core"] - 4])
            p[self.rnd.randrange(len(p))] = self.rnd.randrange(256)
            yield f"hiding-ckfp-payload#{i}", ckfp_fix(data, bytes(p))

    def _j2k(self, data: bytes):
        segs = j2k_segments(data)
        yield from self.generic(data, [p for _, s, e in segs for p in (s, s + 2, s + 4)])
        yield from self.segments(data, [s for s in segs if s[0] not in (0xFF4F,)], "j2k-")
        fields = []
        for marker, s, e in segs:
            if marker in (0xFF4F, 0xFFD9, 0xFF93):
                continue
            fields.append((f"len{marker:04x}@{s}", ">H", s + 2))
            if marker == 0xFF51:  # SIZ
                fields += [("siz-rsiz", ">H", s + 4), ("siz-xsiz", ">I", s + 6), ("siz-ysiz", ">I", s + 10),
                           ("siz-xosiz", ">I", s + 14), ("siz-yosiz", ">I", s + 18), ("siz-xtsiz", ">I", s + 22),
                           ("siz-ytsiz", ">I", s + 26), ("siz-csiz", ">H", s + 38), ("siz-c0-ssiz", ">B", s + 40),
                           ("siz-c0-xrsiz", ">B", s + 41), ("siz-c0-yrsiz", ">B", s + 42)]
            elif marker == 0xFF52:  # COD
                fields += [("cod-scod", ">B", s + 4), ("cod-order", ">B", s + 5), ("cod-layers", ">H", s + 6),
                           ("cod-levels", ">B", s + 9), ("cod-cbw", ">B", s + 10), ("cod-cbh", ">B", s + 11)]
            elif marker == 0xFF5C:  # QCD
                fields += [("qcd-sqcd", ">B", s + 4), ("qcd-spqcd0", ">B", s + 5)]
            elif marker == 0xFF90:  # SOT
                fields += [("sot-isot", ">H", s + 4), ("sot-psot", ">I", s + 6), ("sot-tpsot", ">B", s + 10),
                           ("sot-tnsot", ">B", s + 11)]
        yield from self.fields(data, fields, "j2k-")
        for marker, s, e in segs:
            if marker == 0xFF64 and b"carkit-hiding " in data[s:e]:
                for label, p in self.marker_payloads(data[s + 6:e], b"carkit-hiding "):
                    p = p[:65531]
                    yield label, data[:s] + b"\xff\x64" + struct.pack(">H", len(p) + 4) + b"\0\0" + p + data[e:]

    def _heif(self, data: bytes):
        boxes = bmff_boxes(data)
        yield from self.generic(data, [p for _, s, e in boxes for p in (s, s + 4, s + 8, e)])
        yield from self.segments(data, bmff_boxes(data, depth=3), "heif-")  # the top-level boxes
        fields = [(f"size-{kind.decode(errors='replace')}@{s}", ">I", s) for kind, s, e in boxes]
        for kind, s, e in boxes:
            if kind == b"ispe":
                fields += [("ispe-width", ">I", s + 12), ("ispe-height", ">I", s + 16)]
            elif kind == b"iloc":
                fields += [(f"iloc-byte{k}", ">B", s + k) for k in range(12, min(e - s, 40), 3)]
            elif kind == b"hvcC":
                fields += [(f"hvcC-byte{k}", ">B", s + k) for k in (8, 9, 20, 21, 22, 30, 31)]
        yield from self.fields(data, fields, "heif-")
        for kind, s, e in boxes:
            if kind == b"uuid":
                for label, p in self.marker_payloads(data[s + 24:e], b"carkit-hiding "):
                    body = data[s + 8:s + 24] + p
                    yield label, data[:s] + struct.pack(">I", len(body) + 8) + b"uuid" + body + data[e:]


# ---------------------------------------------------------------- the test

class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang()


#: random cases per generic family, per format (the structured ones come on top)
RANDOM_CASES = 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzzed_decode_ends_in_an_image_or_a_carkit_error(fmt, valid, monkeypatch):
    import carkit.io

    data = valid(fmt)
    monkeypatch.setattr(carkit.io, "MAX_PIXELS", LIMIT)
    monkeypatch.delenv("CARKIT_MAX_PIXELS", raising=False)
    counts: Counter = Counter()
    bad: list[str] = []
    seen: set[bytes] = set()
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        for label, mutated in Mutator(fmt, data, seed=FORMATS.index(fmt), random_cases=RANDOM_CASES).cases():
            if mutated in seen or mutated == data:
                continue
            seen.add(mutated)
            signal.alarm(CASE_SECONDS)
            try:
                pixels = decode_like_cli(mutated)
            except _Hang:
                bad.append(f"{label}: no answer within {CASE_SECONDS} s")
            except CarkitError as exc:
                msg = str(exc)
                if not msg.strip() or "\n" in msg:
                    bad.append(f"{label}: {type(exc).__name__} not one line: {msg!r}")
                counts[type(exc).__name__] += 1
            except Exception as exc:  # noqa: BLE001 - the point of the test
                bad.append(f"{label}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            else:
                ok = (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8
                      and (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3))
                      and pixels.shape[0] >= 1 and pixels.shape[1] >= 1
                      and pixels.shape[0] * pixels.shape[1] <= LIMIT)
                if not ok:
                    bad.append(f"{label}: decoded to {type(pixels).__name__} "
                               f"{getattr(pixels, 'dtype', '')} {getattr(pixels, 'shape', '')}")
                counts["decoded"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old_handler)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # MiB (Linux: KiB)
    total = sum(counts.values()) + len(bad)
    print(f"\n{fmt}: {total} cases in {time.perf_counter() - t0:.1f} s: {counts['decoded']} decoded, "
          f"{total - counts['decoded'] - len(bad)} clean errors "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if k != 'decoded')}), "
          f"{len(bad)} bad; peak memory +{grown:.0f} MiB")
    assert total >= 100
    assert not bad, f"{len(bad)} of {total} cases:\n" + "\n".join(bad[:40])
    assert grown < 1024, f"peak memory grew by {grown:.0f} MiB"


@pytest.mark.parametrize("fmt", FORMATS)
def test_decode_like_cli_is_what_the_command_does(fmt, valid, tmp_path, capsys):
    """The command itself on the valid file and on damaged ones: the same
    pixels as :func:`decode_like_cli`, or exit 1 with one line and no output
    file (a damaged marker, a truncated file, a size above --max-pixels)."""
    from carkit.cli import main
    from carkit.io import read_image

    data = valid(fmt)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    capsys.readouterr()
    assert main(["decode", str(src), "-o", str(tmp_path / "ok.png")]) == 0
    assert np.array_equal(read_image(tmp_path / "ok.png").pixels, decode_like_cli(data))
    damaged = [("truncated", data[:len(data) // 2], None)]
    marker = next((d for label, d in Mutator(fmt, data, 0, 0).cases() if label == "marker-nested"), None)
    if marker is not None:
        damaged.append(("nested-marker", marker, None))
    damaged.append(("limit", data, "64"))
    for label, bad, limit in damaged:
        src.write_bytes(bad)
        out = tmp_path / f"{label}.png"
        argv = (["--max-pixels", limit] if limit else []) + ["decode", str(src), "-o", str(out)]
        assert main(argv) == 1, label
        err = capsys.readouterr().err
        assert err.startswith("carkit: error: ") and err.count("\n") == 1 and "Traceback" not in err, (label, err)
        assert not out.exists(), label
