"""ssl_bench: self-supervised feature-learning benchmark (Context Encoders and baselines on PASCAL VOC)."""

__version__ = "0.1.0"
