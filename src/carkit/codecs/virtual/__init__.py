"""The virtual codec: a half-size description as a marked standard JPEG, and its post-processor (``codec``)."""
