"""visionops: an open, reproducible MLOps pipeline for Sparse4D and DetectNet_v2 perception models."""

__version__ = "0.1.0"
