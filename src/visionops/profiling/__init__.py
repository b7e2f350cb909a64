"""Per-device latency profiling of Sparse4D and DetectNet_v2 across backends (issue 7, the ``profile`` stage).

* :mod:`.device`    - the device's name and file-name slug (GPU name or CPU model).
* :mod:`.timing`    - warm-up, synchronised timing, median / p10 / p90 / IQR of repeats.
* :mod:`.backends`  - one runner per backend (PyTorch eager / compiled, ONNX Runtime CPU / CUDA, TensorRT),
                      each either usable or skipped with the reason.
* :mod:`.capacity`  - cameras per device at 30/15/10 FPS (Sparse4D), largest batch under 33 ms (DetectNet_v2).
* :mod:`.report`    - JSON, a markdown table in the model cards' layout, a PNG plot, a CSV for DVC plots.
* :mod:`.sparse4d`, :mod:`.detectnet` - profile one model; :mod:`.commands` - ``visionops profile``.
"""
