"""Typed errors raised by library code.

Library code never calls ``sys.exit``; the CLI turns these into one-line
messages and non-zero exit codes.
"""


class CarkitError(Exception):
    """Base class for every error carkit raises on purpose."""


class UsageError(CarkitError):
    """The request itself is wrong (bad option value, conflicting arguments):
    no input was tried. The CLI exits 2 for these, 1 for inputs that failed."""


class ImageReadError(CarkitError):
    """An input file could not be read as an image (missing, corrupt, truncated)."""


class UnsupportedImageError(CarkitError):
    """The file is an image, but of a kind carkit refuses (format, mode, size)."""


class DecompressionBombError(UnsupportedImageError):
    """The image has more pixels than the configured limit."""


class NotAJpegError(ImageReadError):
    """A JPEG was required but the file is not one."""


class InvalidTableError(ImageReadError, ValueError):
    """A JPEG quantization table that no conforming encoder writes (an entry
    outside 1..65535, the wrong size). libjpeg-turbo may still decode such a
    file; only its quality is unknown. Also a ValueError, as
    :func:`carkit.jpeg.quality.estimate_quality` documents for bad tables."""


class CodecError(CarkitError):
    """A codec failed to encode or decode, or is not available on this machine."""


class ModelError(CarkitError):
    """Unknown model name, bad configuration, or weights that do not fit."""


class WeightsError(ModelError):
    """Weights missing, corrupt (checksum mismatch) or not safetensors."""


class ImageWriteError(CarkitError):
    """An output file could not be written (permissions, disk full, bad folder)."""


class OutputExistsError(ImageWriteError, UsageError):
    """The output is the input, a folder, or a file that exists (without
    --force): refused before anything is done. A usage error for a one-file
    command; in a restore batch, that file's failure."""
