"""Typed errors raised by library code.

Library code never calls ``sys.exit``; the CLI turns these into one-line
messages and non-zero exit codes.
"""


class CarkitError(Exception):
    """Base class for every error carkit raises on purpose."""


class ImageReadError(CarkitError):
    """An input file could not be read as an image (missing, corrupt, truncated)."""


class UnsupportedImageError(CarkitError):
    """The file is an image, but of a kind carkit refuses (format, mode, size)."""


class DecompressionBombError(UnsupportedImageError):
    """The image has more pixels than the configured limit."""


class NotAJpegError(ImageReadError):
    """A JPEG was required but the file is not one."""


class CodecError(CarkitError):
    """A codec failed to encode or decode, or is not available on this machine."""


class ModelError(CarkitError):
    """Unknown model name, bad configuration, or weights that do not fit."""


class WeightsError(ModelError):
    """Weights missing, corrupt (checksum mismatch) or not safetensors."""


class ImageWriteError(CarkitError):
    """An output file could not be written (permissions, disk full, bad folder)."""
