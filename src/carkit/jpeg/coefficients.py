"""Quantized DCT coefficients of real JPEG files, in and out (via jpeglib).

Reading and writing coefficients is lossless: no DCT, no color conversion,
no requantization, only entropy decoding/encoding (libjpeg's
``jpeg_read_coefficients`` / ``jpeg_write_coefficients``, the transcoding
path that ``jpegtran`` uses). The library behind it is jpeglib
(https://jpeglib.readthedocs.io), which bundles several libjpeg builds; it is
used with whatever libjpeg version is selected (jpeglib's default, IJG 6b,
unless the caller chose one with ``jpeglib.version``). The entropy coding is
lossless in every version, so the coefficients do not depend on that choice.

Layout (same as jpeglib's and libjpeg's ``JBLOCK``): component ``i`` is an
int16 array (blocks_h, blocks_w, 8, 8) whose block ``[r, c]`` holds the
quantized coefficients ``Sq(v, u)`` of ITU-T T.81 A.3.4 in natural
(row-major) order, ``[..., v, u]`` (vertical frequency first). Multiply by
the component's table to dequantize (``JpegCoefficients.dequantized``).
``blocks_h = ceil(ceil(H * v_i / v_max) / 8)`` and likewise for the width
(T.81 A.1.1): the dummy blocks that pad the last MCU are not included.

What differs from the files themselves:
* ``write_coefficients`` writes a baseline sequential (or extended, when a
  table exceeds 255) file with JFIF header, standard Huffman tables (or
  optimized ones on request), components that share a table share a DQT slot,
  and no metadata (EXIF, ICC, comments are dropped). A progressive source is
  written as sequential; the coefficients are identical.
* Only grayscale and YCbCr files can be written (jpeglib's writer silently
  drops a fourth component and always converts RGB-coded to YCbCr).

Errors: carkit types only, one-line messages. jpeglib prints libjpeg's
warnings and errors on the C ``stderr``; they are captured (the process's
file descriptor 2 is redirected for the duration of each call, under a lock)
and returned as ``JpegCoefficients.warnings`` or put in the error message.
With ``strict=True`` (default) a file whose entropy-coded data is damaged
(truncated, bad Huffman codes, missing restart markers) raises
``ImageReadError``, as Pillow refuses truncated files; ``strict=False``
returns what libjpeg recovered (missing blocks are zero), with the warnings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..errors import CodecError, ImageReadError
from .files import frame_size, require_jpeg_bytes, require_jpeg_path

__all__ = [
    "JpegCoefficients",
    "read_coefficients",
    "write_coefficients",
    "coefficients_to_bytes",
    "expected_block_dims",
]

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]

_COLOR_SPACES = {  # jpeglib Colorspace name -> carkit name
    "JCS_GRAYSCALE": "gray",
    "JCS_YCbCr": "ycbcr",
    "JCS_RGB": "rgb",
    "JCS_CMYK": "cmyk",
    "JCS_YCCK": "ycck",
}
_N_COMPONENTS = {"gray": 1, "ycbcr": 3, "rgb": 3, "cmyk": 4, "ycck": 4}

# libjpeg warnings (jerror.h JWRN_*) that mean the entropy-coded data is
# damaged, so some coefficients were invented (zeros) by the decoder.
_DAMAGE_MARKERS = (
    "Premature end of JPEG file",            # JWRN_JPEG_EOF
    "premature end of data segment",         # JWRN_HIT_MARKER
    "bad Huffman code",                      # JWRN_HUFF_BAD_CODE
    "bad arithmetic code",                   # JWRN_ARITH_BAD_CODE
    "instead of RST",                        # JWRN_MUST_RESYNC
    "Inconsistent progression sequence",     # JWRN_BOGUS_PROGRESSION
    "Invalid SOS parameters for sequential",  # JWRN_NOT_SEQUENTIAL
)
# JWRN_EXTRANEOUS_DATA before a restart marker (0xd0..0xd7): the decoder did
# not consume the restart interval's data, i.e. the scan is corrupt (e.g.
# jpeg/real/pillow__hopper_bad_exif.jpg, which Pillow decodes to noise).
# Before other markers (0xdb, 0xe1, ...) it is harmless junk between segments.
_DAMAGE_RE = re.compile(r"extraneous bytes before marker 0xd[0-7]\b")

_LOCK = threading.Lock()


# ---------------------------------------------------------------- data class

def expected_block_dims(height: int, width: int,
                        sampling: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """(blocks_h, blocks_w) per component for an image size and (h, v) factors.

    T.81 A.1.1: component size ``ceil(X * h_i / h_max)`` x
    ``ceil(Y * v_i / v_max)``, then whole 8x8 blocks (libjpeg
    ``jdinput.c``: ``height_in_blocks`` / ``width_in_blocks``).
    """
    hmax = max(h for h, _ in sampling)
    vmax = max(v for _, v in sampling)
    dims = []
    for h, v in sampling:
        comp_w = -(-width * h // hmax)
        comp_h = -(-height * v // vmax)
        dims.append((-(-comp_h // 8), -(-comp_w // 8)))
    return tuple(dims)


@dataclass
class JpegCoefficients:
    """Quantized DCT coefficients and what is needed to decode them.

    Attributes:
        components: per component an int16 array (blocks_h, blocks_w, 8, 8),
            natural order inside each block (see the module docstring).
        quant_tables: per component its (8, 8) uint16 quantization table,
            natural order (components may share one table).
        sampling: per component ``(h, v)``, the horizontal and vertical
            sampling factors of the SOF header (T.81 B.2.2 ``Hi``, ``Vi``).
            4:2:0 is ``((2, 2), (1, 1), (1, 1))``, 4:2:2 ``((2, 1), ...)``.
        height, width: image size in pixels.
        color_space: ``"gray"``, ``"ycbcr"``, ``"rgb"``, ``"cmyk"`` or
            ``"ycck"`` (libjpeg's ``jpeg_color_space``).
        progressive: whether the file was progressive (informational).
        warnings: libjpeg warnings emitted while reading (empty when clean).

    Construction validates shapes against ``expected_block_dims`` so a
    mismatched array can never reach the C writer. Equality compares the
    data (coefficients, tables, sampling, size, color space), not
    ``progressive`` or ``warnings``.
    """

    components: tuple[np.ndarray, ...]
    quant_tables: tuple[np.ndarray, ...]
    sampling: tuple[tuple[int, int], ...]
    height: int
    width: int
    color_space: str = "ycbcr"
    progressive: bool = False
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        comps = tuple(np.asarray(c) for c in self.components)
        n = len(comps)
        if n not in (1, 3, 4):
            raise ValueError(f"a JPEG has 1, 3 or 4 components here, got {n}")
        if self.color_space not in _N_COMPONENTS:
            raise ValueError(f"unknown color space {self.color_space!r}")
        if _N_COMPONENTS[self.color_space] != n:
            raise ValueError(f"color space {self.color_space!r} needs "
                             f"{_N_COMPONENTS[self.color_space]} components, got {n}")
        tabs = tuple(np.asarray(t) for t in self.quant_tables)
        samp = tuple((int(h), int(v)) for h, v in self.sampling)
        if len(tabs) != n or len(samp) != n:
            raise ValueError(f"need one table and one sampling factor per component "
                             f"({n}), got {len(tabs)} and {len(samp)}")
        for h, v in samp:
            if not (1 <= h <= 4 and 1 <= v <= 4):
                raise ValueError(f"sampling factors must be in 1..4, got {samp}")
        height, width = int(self.height), int(self.width)
        if not (1 <= height <= 65535 and 1 <= width <= 65535):
            raise ValueError(f"image size must be in 1..65535, got {height}x{width}")
        dims = expected_block_dims(height, width, samp)
        out_c, out_t = [], []
        for i, (c, t, d) in enumerate(zip(comps, tabs, dims)):
            if c.ndim != 4 or c.shape[2:] != (8, 8) or c.shape[:2] != d:
                raise ValueError(f"component {i} must have shape {d + (8, 8)} for a "
                                 f"{height}x{width} image with sampling {samp}, got {c.shape}")
            if c.dtype != np.int16:
                if not np.issubdtype(c.dtype, np.integer):
                    raise ValueError(f"component {i} must hold integers, got {c.dtype}")
                if c.size and (c.min() < -32768 or c.max() > 32767):
                    raise ValueError(f"component {i} has values outside int16")
                c = c.astype(np.int16)
            if t.shape not in ((8, 8), (64,)) or not np.issubdtype(t.dtype, np.integer):
                raise ValueError(f"quantization table {i} must be 64 integers, got "
                                 f"{t.dtype} {t.shape}")
            if t.min() < 1 or t.max() > 65535:
                raise ValueError(f"quantization table {i} has entries outside 1..65535")
            out_c.append(c)
            out_t.append(t.reshape(8, 8).astype(np.uint16))
        self.components = tuple(out_c)
        self.quant_tables = tuple(out_t)
        self.sampling = samp
        self.height, self.width = height, width
        self.progressive = bool(self.progressive)
        self.warnings = tuple(self.warnings)

    def __eq__(self, other):
        if not isinstance(other, JpegCoefficients):
            return NotImplemented
        return (self.sampling == other.sampling and self.height == other.height
                and self.width == other.width and self.color_space == other.color_space
                and len(self.components) == len(other.components)
                and all(np.array_equal(a, b) for a, b in zip(self.components, other.components))
                and all(np.array_equal(a, b) for a, b in zip(self.quant_tables, other.quant_tables)))

    @property
    def num_components(self) -> int:
        return len(self.components)

    @property
    def block_dims(self) -> tuple[tuple[int, int], ...]:
        """(blocks_h, blocks_w) per component."""
        return tuple(c.shape[:2] for c in self.components)

    @property
    def subsampling(self) -> str:
        """Chroma subsampling as J:a:b: ``"gray"``, ``"4:4:4"``, ``"4:2:2"``,
        ``"4:2:0"``, ``"4:4:0"``, ``"4:1:1"``, or ``"other"``."""
        if self.num_components == 1:
            return "gray"
        (h0, v0), rest = self.sampling[0], self.sampling[1:3]
        if any(s != rest[0] for s in rest) or any(s != (1, 1) for s in rest):
            return "other"
        return {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0",
                (1, 2): "4:4:0", (4, 1): "4:1:1"}.get((h0, v0), "other")

    def dequantized(self, index: int) -> np.ndarray:
        """Component ``index`` times its table, float32 (blocks_h, blocks_w, 8, 8):
        the DCT coefficients the decoder feeds to its IDCT (T.81 A.3.4)."""
        return self.components[index].astype(np.float32) * self.quant_tables[index].astype(np.float32)

    def coefficient_plane(self, index: int, dequantize: bool = False) -> np.ndarray:
        """Component ``index`` as a (blocks_h * 8, blocks_w * 8) plane, each 8x8
        tile holding one block's coefficients: the layout of
        ``carkit.jpeg.dct.block_dct``'s output."""
        c = self.dequantized(index) if dequantize else self.components[index]
        bh, bw = c.shape[:2]
        return np.ascontiguousarray(c.transpose(0, 2, 1, 3).reshape(bh * 8, bw * 8))

    def copy(self) -> "JpegCoefficients":
        return dataclasses.replace(self, components=tuple(c.copy() for c in self.components),
                                   quant_tables=tuple(t.copy() for t in self.quant_tables))


# ---------------------------------------------------------------- helpers

@contextlib.contextmanager
def _captured_libjpeg_output():
    """Redirect fd 2 (C stderr, where libjpeg's ``output_message`` prints) and
    Python's stdout (jpeglib ``print``s on some failures) into a list of lines.
    Holds a module lock; other threads' stderr output during the call is
    captured too (and dropped)."""
    lines: list[str] = []
    with _LOCK:
        try:
            sys.stderr.flush()
        except Exception:  # pragma: no cover - exotic stderr replacements
            pass
        saved = os.dup(2)
        try:
            with tempfile.TemporaryFile(mode="w+b") as tmp:
                os.dup2(tmp.fileno(), 2)
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        yield lines
                finally:
                    os.dup2(saved, 2)
                    tmp.seek(0)
                    text = tmp.read().decode("utf-8", "replace")
                    for ln in text.splitlines():
                        ln = ln.strip()
                        if ln and ln not in lines:
                            lines.append(ln)
        finally:
            os.close(saved)


def _first_error_line(lines: list[str], exc: BaseException) -> str:
    for ln in lines:  # jpeglib's fixed table of APPn/COM markers overflowed
        if ln.startswith("Too many markers"):
            return "more than 50 APPn/COM markers, jpeglib's limit"
    # libjpeg prints warnings first and the fatal error last
    if lines:
        return lines[-1]
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


@contextlib.contextmanager
def _source_path(source: PathOrBytes):
    """Yield (path on disk, display name) for a path or bytes source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "<bytes>"
        data = require_jpeg_bytes(source, name)
        fd, tmp = tempfile.mkstemp(suffix=".jpg", prefix="carkit-coef-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            yield tmp, name
        finally:
            os.unlink(tmp)
    else:
        path, name = require_jpeg_path(source)
        yield str(path), name


# ---------------------------------------------------------------- reading

def _head_bytes(source: PathOrBytes, path: str) -> bytes:
    """The bytes of a source, for reading its headers."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""  # jpeglib reports it


def read_coefficients(source: PathOrBytes, *, strict: bool = True) -> JpegCoefficients:
    """Read the quantized DCT coefficients, tables and sampling of a JPEG.

    Handles grayscale, YCbCr (any sampling: 4:4:4, 4:2:2, 4:2:0, ...),
    RGB-coded, CMYK/YCCK, baseline, extended (16-bit tables) and progressive
    files. For MPO files the first (primary) image is read.

    Args:
        source: path or the file's bytes.
        strict: raise on damaged entropy-coded data (see module docstring);
            when False, return what libjpeg recovered, warnings attached.

    Raises:
        NotAJpegError: not a JPEG (no SOI marker).
        DecompressionBombError: the frame header declares more pixels than
            carkit's limit (``carkit.io.check_pixel_limit``), checked before
            libjpeg allocates anything.
        ImageReadError: missing file, corrupt or truncated JPEG, or a header
            libjpeg rejects; the message is one line and names the file.
    """
    import jpeglib  # heavy-ish (ctypes libraries); imported where used

    from ..io import check_pixel_limit

    with _source_path(source) as (path, name):
        size = frame_size(_head_bytes(source, path))
        if size is not None:  # libjpeg allocates every block of the declared size: check it first
            check_pixel_limit(*size, name)
        with _captured_libjpeg_output() as lines:
            try:
                im = jpeglib.read_dct(path)
                im.load()
                color = _COLOR_SPACES.get(str(im.jpeg_color_space))
                ncomp = im.num_components
                planes = [im.Y, im.Cb, im.Cr, im.K][:ncomp]
                tables = [np.array(im.get_component_qt(i), dtype=np.uint16) for i in range(ncomp)]
                samp = [(int(f[1]), int(f[0])) for f in np.asarray(im.samp_factor)[:ncomp]]
                height, width, progressive = int(im.height), int(im.width), bool(im.progressive_mode)
            except Exception as exc:  # jpeglib raises OSError, KeyError, ValueError...
                err = exc
            else:
                err = None
        if err is not None:
            raise ImageReadError(f"{name}: cannot read JPEG coefficients "
                                 f"({_first_error_line(lines, err)})") from err
        if color is None:
            raise ImageReadError(f"{name}: unsupported JPEG color space {im.jpeg_color_space}")
        damage = [ln for ln in lines
                  if any(m in ln for m in _DAMAGE_MARKERS) or _DAMAGE_RE.search(ln)]
        if strict and damage:
            raise ImageReadError(f"{name}: corrupt JPEG data ({damage[0]})")
        try:
            return JpegCoefficients(
                components=tuple(np.array(p, dtype=np.int16) for p in planes),
                quant_tables=tuple(tables), sampling=tuple(samp), height=height, width=width,
                color_space=color, progressive=progressive, warnings=tuple(lines))
        except ValueError as exc:
            raise ImageReadError(f"{name}: inconsistent JPEG structure ({exc})") from exc


# ---------------------------------------------------------------- writing

def _to_jpeglib(coeffs: JpegCoefficients):
    from jpeglib._cenum import Colorspace
    from jpeglib.dct_jpeg import DCTJPEG

    if coeffs.color_space not in ("gray", "ycbcr"):
        raise CodecError(f"writing {coeffs.color_space} JPEGs is not supported "
                         "(only gray and YCbCr)")
    for i, t in enumerate(coeffs.quant_tables):
        if int(t.max()) > 32767:
            raise CodecError(f"quantization table {i} has entries above 32767 (libjpeg's limit)")
    # Canonical DQT slots: distinct tables in order of first use. Besides
    # sharing slots, this keeps jpeglib's _write_qt (which indexes new slots by
    # component number) correct: slot k is always first used by component >= k.
    slots, uniq = [], []
    for t in coeffs.quant_tables:
        for k, u in enumerate(uniq):
            if np.array_equal(t, u):
                slots.append(k)
                break
        else:
            uniq.append(t)
            slots.append(len(uniq) - 1)
    n = coeffs.num_components
    comps = list(coeffs.components) + [None] * (3 - n)
    qt = np.stack(uniq).astype(np.uint16)
    obj = DCTJPEG(
        path=None, content=None, height=coeffs.height, width=coeffs.width,
        block_dims=np.array(coeffs.block_dims, dtype=np.int32),
        samp_factor=np.array([(v, h) for h, v in coeffs.sampling], dtype=np.int32),
        jpeg_color_space=Colorspace.JCS_GRAYSCALE if n == 1 else Colorspace.JCS_YCbCr,
        num_scans=1, quant_tbl_no=np.array(slots, dtype=np.int16), markers=None, huffmans=None,
        Y=np.ascontiguousarray(comps[0]),
        Cb=None if comps[1] is None else np.ascontiguousarray(comps[1]),
        Cr=None if comps[2] is None else np.ascontiguousarray(comps[2]),
        K=None, qt=qt, progressive_mode=False)
    return obj


def write_coefficients(coeffs: JpegCoefficients, path: Union[str, os.PathLike], *,
                       optimize_coding: bool = False) -> None:
    """Write coefficients into a valid JPEG file (atomically: a temporary file
    beside ``path``, then ``os.replace``).

    The result decodes with any JPEG decoder; for a file read with
    ``read_coefficients`` it holds the same coefficients and tables, so it
    decodes to the same pixels (see the module docstring for what is dropped).

    Args:
        coeffs: the coefficients; entries must fit baseline Huffman coding
            (|AC| <= 1023 and DC differences <= 2047 for 8-bit JPEG).
        path: destination file.
        optimize_coding: optimized Huffman tables (smaller file); default
            False writes the T.81 Annex K tables, as Pillow does by default.

    Raises:
        CodecError: unsupported color space, table entries above 32767, or
            libjpeg refused the data (e.g. a coefficient out of range).
    """
    if not isinstance(coeffs, JpegCoefficients):
        raise TypeError(f"expected JpegCoefficients, got {type(coeffs).__name__}")
    path = Path(os.fspath(path))
    obj = _to_jpeglib(coeffs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with _captured_libjpeg_output() as lines:
            try:
                obj.write_dct(tmp, flags=["+OPTIMIZE_CODING" if optimize_coding
                                          else "-OPTIMIZE_CODING"])
            except Exception as exc:
                err = exc
            else:
                err = None
        if err is not None:
            raise CodecError(f"{path}: writing JPEG coefficients failed "
                             f"({_first_error_line(lines, err)})") from err
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def coefficients_to_bytes(coeffs: JpegCoefficients, *, optimize_coding: bool = False) -> bytes:
    """``write_coefficients`` into memory: the JPEG file as bytes (for rates)."""
    with tempfile.TemporaryDirectory(prefix="carkit-coef-") as d:
        p = Path(d) / "coefficients.jpg"
        write_coefficients(coeffs, p, optimize_coding=optimize_coding)
        return p.read_bytes()
