"""Fuzzed JPEGs through the path of `carkit restore` (issue 34).

A seeded mutator damages small valid JPEGs in the ways damaged and fuzzed
files are damaged: bit flips, truncation at every marker, duplicated and
missing segments, corrupt quantization tables (zero entries), zero and huge
sizes in SOF, bad Huffman tables, bad scan headers, inserted and deleted
bytes. Each case runs in-process through ``restore_to_record`` (what the CLI's
batch loop calls, with a tiny zoo so the model is cheap) and must end in a
complete image of the declared size or a clean CarkitError, never an internal
error, never a partial or temporary file.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from carkit.restoration.restorer import Restorer, restore_to_record

from ..helpers import make_tiny_zoo

pytestmark = pytest.mark.usefixtures("one_thread")

SEED = 20261206
CASES_PER_SEED = 230


def _seeds() -> list[bytes]:
    """Small valid JPEGs of the kinds carkit meets: 4:2:0, 4:4:4, gray, progressive, with EXIF."""
    rng = np.random.default_rng(0)
    rgb = np.cumsum(rng.integers(-9, 10, (24, 40, 3)), axis=1).clip(0, 255).astype(np.uint8)
    out = []
    for image, opts in ((rgb, {"quality": 30}), (rgb, {"quality": 80, "subsampling": 0}),
                        (rgb[:, :, 1], {"quality": 20}), (rgb, {"quality": 50, "progressive": True}),
                        (rgb[:17, :23], {"quality": 10, "exif": _exif()})):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", **opts)
        out.append(buf.getvalue())
    return out


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each marker segment up to and including SOS, then the
    entropy-coded data and EOI as one span."""
    spans, pos = [(0, 2)], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = min(len(data), pos + 2 + length)
        spans.append((pos, end))
        pos = end
        if marker == 0xDA:
            break
    spans.append((pos, len(data)))
    return spans


def _find(data: bytes, marker: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in segments(data)[1:-1] if data[s + 1] == marker]


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One damaged copy of ``data`` and the kind of damage."""
    d = bytearray(data)
    spans = segments(data)
    kind = ["bitflip", "truncate", "duplicate", "remove", "dqt", "sof", "dht", "sos", "insert", "delete",
            "bytes"][int(rng.integers(11))]
    if kind == "bitflip":
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(d)))
            d[i] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        s, e = spans[int(rng.integers(len(spans)))]
        cut = [s, s + 1, s + 2, s + 3, (s + e) // 2, e - 1][int(rng.integers(6))]
        d = d[:max(0, cut)]
    elif kind in ("duplicate", "remove"):
        s, e = spans[int(rng.integers(1, len(spans) - 1))]
        d = d[:e] + d[s:e] + d[e:] if kind == "duplicate" else d[:s] + d[e:]
    elif kind == "dqt":
        for s, e in _find(data, 0xDB):
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(s + 4, e))
                d[i] = [0, 255, int(rng.integers(256))][int(rng.integers(3))]
    elif kind == "sof":
        for s, e in _find(data, 0xC0) + _find(data, 0xC2):
            field = int(rng.integers(4))
            if field == 0:  # height
                d[s + 5:s + 7] = struct.pack(">H", [0, 1, 65535, int(rng.integers(65536))][int(rng.integers(4))])
            elif field == 1:  # width
                d[s + 7:s + 9] = struct.pack(">H", [0, 1, 65535, int(rng.integers(65536))][int(rng.integers(4))])
            elif field == 2:  # component count
                d[s + 9] = [0, 2, 4, 5, 255][int(rng.integers(5))]
            elif s + 11 < e:  # sampling factors of the first component
                d[s + 11] = [0x00, 0xFF, 0x41, 0x14, int(rng.integers(256))][int(rng.integers(5))]
    elif kind == "dht":
        for s, e in _find(data, 0xC4):
            for _ in range(int(rng.integers(1, 5))):
                i = int(rng.integers(s + 4, min(e, s + 22)))  # class/id and the 16 code counts
                d[i] = int(rng.integers(256))
    elif kind == "sos":
        for s, e in _find(data, 0xDA):
            i = int(rng.integers(s + 4, e))
            d[i] = int(rng.integers(256))
    elif kind == "insert":
        i = int(rng.integers(len(d)))
        d = d[:i] + bytes(rng.integers(0, 256, int(rng.integers(1, 16))).astype(np.uint8)) + d[i:]
    elif kind == "delete":
        i = int(rng.integers(len(d)))
        d = d[:i] + d[i + int(rng.integers(1, 16)):]
    else:  # a run of random bytes over a random place
        i = int(rng.integers(len(d)))
        n = int(rng.integers(1, 32))
        d[i:i + n] = bytes(rng.integers(0, 256, n).astype(np.uint8))
    return kind, bytes(d)


def test_fuzzed_jpegs_restore_or_fail_cleanly(tmp_path, monkeypatch):
    make_tiny_zoo(tmp_path / "zoo", monkeypatch)
    restorer = Restorer()
    rng = np.random.default_rng(SEED)
    work = tmp_path / "cases"
    work.mkdir()
    outcomes: Counter = Counter()
    kinds: Counter = Counter()
    for s, seed in enumerate(_seeds()):
        for c in range(CASES_PER_SEED):
            kind, data = mutate(seed, rng)
            kinds[kind] += 1
            src, dst = work / f"{s}-{c}.jpg", work / f"{s}-{c}.png"
            src.write_bytes(data)
            record, _ = restore_to_record(restorer, str(src), str(dst))
            case = f"seed {s} case {c} ({kind})"
            assert record.error is None or "internal error" not in record.error, (case, record.error)
            if record.error is None:
                with Image.open(dst) as im:  # complete: decodes, and has the size the file declares
                    im.load()
                    size = im.size
                with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as jpeg:
                    warnings.simplefilter("ignore")  # this check's own read of damaged EXIF
                    w, h = jpeg.size
                    turned = jpeg.getexif().get(0x0112, 1) in (5, 6, 7, 8)
                assert size == ((h, w) if turned else (w, h)), case
                outcomes["restored"] += 1
            else:
                assert "\n" not in record.error and not dst.exists(), case
                outcomes["clean error"] += 1
            src.unlink()
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no temporary files left
    total = sum(outcomes.values())
    assert total >= 1000 and outcomes["restored"] > 50 and outcomes["clean error"] > 50, outcomes
    print(f"\nfuzzed restore: {dict(outcomes)} of {total}; kinds {dict(kinds)}")
