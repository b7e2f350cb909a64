"""Image backbones shared by the detectors: ResNet-18/34/50/101 with torchvision's parameter names."""

from visionops.models.backbones.pretrained import TORCHVISION_URLS, load_pretrained
from visionops.models.backbones.resnet import BasicBlock, Bottleneck, ResNet, build_resnet

__all__ = ["TORCHVISION_URLS", "BasicBlock", "Bottleneck", "ResNet", "build_resnet", "load_pretrained"]
