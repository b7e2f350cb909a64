"""Inference and tracking: frame sources, the streaming tracker, AI City track files, the ``infer`` command.

Heavy imports (torch, cv2, PyAV) stay inside the submodules; import what you need from them:
:mod:`~visionops.inference.frames`, :mod:`~visionops.inference.stream`, :mod:`~visionops.inference.tracks`.
"""
