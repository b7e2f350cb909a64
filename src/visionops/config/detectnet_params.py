"""``detectnet_v2`` (the DashCamNet recipe) and ``prune``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from visionops.config.base import Section
from visionops.data.schema import CLASS_NAMES_2025

WAREHOUSE_KITTI_CLASSES = [name.lower() for name in CLASS_NAMES_2025]


class DetectNetTargetParams(Section):
    """GridBox rasterizer (TAO ``bbox_rasterizer_config``); per-class radii override the shared ones."""

    cov_radius: float = Field(0.4, gt=0, description="coverage ellipse semi-axis as a fraction of the half box")
    bbox_min_radius: float = Field(1.0, gt=0, description="smallest ellipse semi-axis, in grid cells")
    deadzone_radius: float = Field(0.67, ge=0, le=1)
    per_class_cov_radius: dict[str, float] = Field(
        default_factory=lambda: {"person": 1.0, "fouriergr1t2": 1.0, "agilitydigit": 1.0},
        description="thin classes get a fuller ellipse (TAO's KITTI spec uses 1.0 for pedestrians)")


class DetectNetAugmentParams(Section):
    """TAO augmentation ranges (pixels of the network input)."""

    hflip_probability: float = Field(0.5, ge=0, le=1)
    zoom_min: float = Field(0.8, gt=0, description="TAO's KITTI spec: 1.0")
    zoom_max: float = Field(1.25, gt=0, description="TAO's KITTI spec: 1.0")
    translate_max: float = Field(24.0, ge=0, description="TAO's KITTI spec: 8")
    hue_rotation_max: float = Field(25.0, ge=0, description="degrees")
    saturation_shift_max: float = Field(0.2, ge=0)
    contrast_scale_max: float = Field(0.1, ge=0)
    brightness_scale_max: float = Field(0.0, ge=0)


class DetectNetOptimParams(Section):
    """One training phase: Adam with TAO's soft-start annealing schedule, L1 regularisation."""

    epochs: int = Field(12, ge=1)
    batch_size: int = Field(8, ge=1)
    min_lr: float = Field(5e-6, gt=0)
    max_lr: float = Field(1e-3, gt=0, description="TAO 5e-4")
    soft_start: float = Field(0.1, ge=0, le=1)
    annealing: float = Field(0.7, ge=0, le=1)
    l1_weight: float = Field(3e-9, ge=0, description="TAO L1 regulariser on every conv weight and bias")
    validate_every: int = Field(2, ge=1, description="epochs between validations (sample detections to MLflow)")


class DetectNetPostprocessParams(Section):
    """Clustering of the grid outputs into boxes (TAO ``clustering_config``)."""

    algorithm: Literal["dbscan", "nms"] = "dbscan"
    coverage_threshold: float = Field(0.005, ge=0, lt=1)
    minimum_bounding_box_height: float = Field(4.0, ge=0)
    dbscan_eps: float = Field(0.3, gt=0)
    dbscan_min_samples: float = Field(1.0, ge=0)
    dbscan_confidence_threshold: float = Field(0.1, ge=0)
    nms_iou_threshold: float = Field(0.5, ge=0, le=1)
    nms_confidence_threshold: float = Field(0.2, ge=0)


class DetectNetEvalBoxParams(Section):
    """TAO ``evaluation_box_config``: GT boxes *and* detections smaller than this (network-input pixels) are left
    out of the KPIs, for every class. TAO's specs use 20 / 10; 0 / 0 scores every box."""

    min_height: float = Field(20.0, ge=0, description="pixels of the network input")
    min_width: float = Field(10.0, ge=0, description="pixels of the network input")


class DetectNetParams(Section):
    """DetectNet_v2 (DashCamNet recipe): phase-1 training, pruning (``prune``), phase-2 retraining, KPIs."""

    arch: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet18"
    all_projections: bool = True
    input_size: tuple[int, int] = Field((480, 272), description="network input [width, height], multiples of 16")
    classes: list[str] = Field(default_factory=lambda: list(WAREHOUSE_KITTI_CLASSES),
                               description="KITTI class names in output-channel order (matched lower-cased)")
    pretrained: str | None = Field(None, description="torchvision ImageNet ResNet weights file (.pth); null = scratch")
    seed: int = 0
    workers: int = Field(2, ge=0, description="DataLoader worker processes")
    precision: Literal["auto", "32-true", "bf16-mixed"] = Field(
        "auto", description="auto = bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32")
    class_weights: list[float] | None = None
    objective_weights: tuple[float, float] = Field((1.0, 10.0), description="(coverage, bbox) initial weights")
    coverage_foreground_weight: float = Field(0.5, ge=0, le=1, description="TAO 0.05 (with ImageNet weights "
                                              "and 120 epochs); from scratch in a few CPU epochs 0.05 never "
                                              "lifts the coverage off zero")
    targets: DetectNetTargetParams = Field(default_factory=DetectNetTargetParams)
    augment: DetectNetAugmentParams = Field(default_factory=DetectNetAugmentParams)
    train: DetectNetOptimParams = Field(default_factory=DetectNetOptimParams)
    retrain: DetectNetOptimParams = Field(
        default_factory=lambda: DetectNetOptimParams(epochs=6, l1_weight=0.0, validate_every=2))
    postprocess: DetectNetPostprocessParams = Field(default_factory=DetectNetPostprocessParams)
    iou_threshold: float = Field(0.5, gt=0, le=1, description="KPI matching IoU (the DashCamNet card: 0.5)")
    evaluation_box: DetectNetEvalBoxParams = Field(default_factory=DetectNetEvalBoxParams)
    score_threshold: float = Field(0.3, ge=0, description="confidence for precision/recall/accuracy")

    @field_validator("input_size")
    @classmethod
    def _multiple_of_16(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] % 16 or value[1] % 16 or min(value) < 32:
            raise ValueError(f"input_size must be multiples of 16 (>= 32), got {list(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DetectNetParams:
        unknown = sorted(set(self.targets.per_class_cov_radius) - set(self.classes))
        if unknown:
            raise ValueError(f"targets.per_class_cov_radius names classes {unknown} not in classes {self.classes}")
        if self.class_weights is not None and len(self.class_weights) != len(self.classes):
            raise ValueError(f"class_weights has {len(self.class_weights)} values for {len(self.classes)} classes")
        return self


class PruneParams(Section):
    """TAO ``prune`` (``-pth -n -eq -pg -nf -el``) on the phase-1 DetectNet_v2."""

    threshold: float = Field(0.87, ge=0, description="-pth: normalised filter norm to keep (TAO's default 0.1)")
    normalizer: Literal["max", "L2"] = "max"
    equalization: Literal["union", "intersection", "arithmetic_mean", "geometric_mean"] = "union"
    granularity: int = Field(8, ge=1)
    min_num_filters: int = Field(16, ge=1)
    excluded_layers: list[str] = Field(default_factory=list)


