"""Shared network pieces: layers used by several model families and tiled inference."""
