"""carkit: learned compression-artifact reduction and codec-compatible learned compression.

Heavy dependencies (torch, jpeglib, matplotlib) are imported by the submodules
that need them, so ``import carkit`` stays fast.
"""

__version__ = "0.1.0"
