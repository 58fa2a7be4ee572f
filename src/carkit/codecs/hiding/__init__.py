"""Residual hiding as a codec: E and D around a standard codec, with a marker in its file (``codec``)."""
