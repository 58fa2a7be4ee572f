"""The factorized-prior learned codec (``codec``), its ``.ckfp`` container and range coder (``entropy_coding``)."""
