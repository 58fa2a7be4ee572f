"""carkit: learned compression-artifact reduction and codec-compatible learned compression.

The API (:mod:`carkit.api`), re-exported here and loaded on first use so that
``import carkit`` stays fast (torch, jpeglib and the models load only when a
verb is called)::

    restore(x, model=None)              JPEG (bytes, path, pixels) -> restored uint8 pixels
    encode(image, method, quality)      -> the file's bytes (jpeg, webp, hiding, blockcnn, ...)
    decode(data)                        any file carkit writes -> uint8 pixels
    load_model(name), list_models(role=None), get_codec(name)
"""

__version__ = "0.1.0"

_API = ("restore", "encode", "decode", "decode_file", "load_model", "list_models", "get_codec")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'carkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
