"""BlockCNN's block-predictive codec (``codec``) and its ``.bcnn`` container (``container``)."""
