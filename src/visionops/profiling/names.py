"""Backend names, in report order (a light module: the CLI reads it for ``--help`` without loading the config)."""

BACKEND_NAMES = ("pytorch", "pytorch_compiled", "onnxruntime_cpu", "onnxruntime_cuda", "tensorrt")
