"""Export: ONNX graphs of both models (plugin-free Sparse4D), the host-side tracker state, TensorRT engines."""
