"""Necks between a backbone and a detection head: mmdet-style FPN."""

from visionops.models.necks.fpn import FPN

__all__ = ["FPN"]
