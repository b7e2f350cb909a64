"""ResNet backbone: torchvision parity (parameter counts, state dict keys), strides, freezing, weight loading."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from visionops.models.backbones import TORCHVISION_URLS, BasicBlock, Bottleneck, ResNet, build_resnet, load_pretrained

# torchvision.models.resnetXX().parameters() totals (1000-class fc included), as published with its weights.
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160}

# Keys every torchvision ResNet state dict has.
COMMON_KEYS = [
    "conv1.weight",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    "layer1.0.conv1.weight",
    "layer1.0.bn1.running_mean",
    "layer1.1.conv2.weight",
    "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.weight",
    "layer2.0.downsample.1.running_var",
    "layer3.0.downsample.0.weight",
    "layer4.0.downsample.1.num_batches_tracked",
    "layer4.1.bn2.bias",
    "fc.weight",
    "fc.bias",
]
R50_KEYS = [
    "layer1.0.downsample.0.weight",  # 64 -> 256 channels: a projection even at stride 1
    "layer1.2.conv3.weight",
    "layer3.5.bn3.running_mean",
    "layer4.2.conv3.weight",
    "layer4.2.bn3.num_batches_tracked",
]


def _stride_of(x: torch.Tensor, feature: torch.Tensor) -> tuple[float, float]:
    return x.shape[-2] / feature.shape[-2], x.shape[-1] / feature.shape[-1]


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Non-default BN statistics and affine terms, so a round trip that dropped them would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return model


# --- torchvision parity ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_parameter_count_equals_torchvision(depth):
    model = ResNet(depth, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[depth]
    assert model.fc.in_features == 512 * (4 if depth >= 50 else 1)


def test_classifier_forward_gives_logits():
    model = ResNet(18, num_classes=1000).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 96))
    assert logits.shape == (2, 1000)


def test_r18_state_dict_keys_match_torchvision():
    keys = list(ResNet(18, num_classes=1000).state_dict())
    assert set(COMMON_KEYS) <= set(keys)
    # Count: a conv is 1 key (weight, no bias), a BN 5 (weight, bias, running_mean, running_var,
    # num_batches_tracked). Stem conv1 + bn1 = 6; a BasicBlock 2 convs + 2 BNs = 12, 8 blocks = 96; a projection
    # (layer2.0, layer3.0, layer4.0) = 6, 3 of them = 18; fc weight + bias = 2. 6 + 96 + 18 + 2 = 122.
    assert len(keys) == 122
    assert len(keys) == len(set(keys))
    assert not any(k.startswith(("layer1.0.downsample", "maxpool", "avgpool", "relu")) for k in keys)


def test_r50_state_dict_keys_match_torchvision():
    keys = set(ResNet(50, num_classes=1000).state_dict())
    assert set(COMMON_KEYS + R50_KEYS) <= keys
    # 6 stem + 16 Bottlenecks x 18 (3 convs + 3 BNs) + 4 projections x 6 + 2 fc = 320.
    assert len(keys) == 320


def test_no_classifier_means_no_fc_keys():
    model = ResNet(50)
    keys = set(model.state_dict())
    assert not any(k.startswith("fc.") for k in keys)
    assert not hasattr(model, "fc") and not hasattr(model, "avgpool")
    assert len(keys) == 318


def test_bottleneck_strides_on_its_3x3_conv():
    block = ResNet(50).layer2[0]
    assert isinstance(block, Bottleneck)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2) and block.downsample[0].bias is None


def test_init():
    torch.manual_seed(0)
    model = ResNet(18, zero_init_residual=True)
    conv = model.layer4[1].conv2  # 512 -> 512, 3x3: kaiming fan_out std = sqrt(2 / (512 * 9))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.05)
    assert torch.all(model.bn1.weight == 1) and torch.all(model.bn1.bias == 0)
    assert all(torch.all(b.bn2.weight == 0) for b in model.modules() if isinstance(b, BasicBlock))
    assert all(torch.all(b.bn1.weight == 1) for b in model.modules() if isinstance(b, BasicBlock))
    assert torch.all(ResNet(18).layer1[0].bn2.weight == 1)


# --- outputs and strides ---------------------------------------------------------------------------------------------


def test_r50_four_stage_outputs():
    model = ResNet(50, out_indices=(1, 2, 3, 4)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 24), (1, 512, 8, 12), (1, 1024, 4, 6), (1, 2048, 2, 3)]
    assert model.out_channels == [256, 512, 1024, 2048]
    assert model.strides == [4, 8, 16, 32]
    assert [_stride_of(x, o) for o in outs] == [(s, s) for s in model.strides]


def test_out_indices_subset_and_default():
    x = torch.randn(1, 3, 64, 96)
    model = ResNet(34, out_indices=(2, 4)).eval()
    with torch.no_grad():
        outs = model(x)
    assert [o.shape[1] for o in outs] == model.out_channels == [128, 512]
    assert model.strides == [8, 32]
    default = build_resnet("resnet18").eval()
    with torch.no_grad():
        (out,) = default(x)
    assert out.shape == (1, 512, 2, 3) and default.out_channels == [512] and default.strides == [32]


@pytest.mark.parametrize(
    ("use_pooling", "last_stage_stride", "expected"),
    [
        (True, 2, [4, 8, 16, 32]),  # torchvision
        (True, 1, [4, 8, 16, 16]),  # TAO with pooling: maxpool, stages 1, 2, 2, 1
        (False, 2, [4, 8, 16, 32]),  # no pool, layer1 strides 2 instead
        (False, 1, [4, 8, 16, 16]),  # TAO DetectNet_v2: conv1 /2, stages 2, 2, 2, 1
    ],
)
@pytest.mark.parametrize("depth", [18, 50])
def test_output_strides_of_every_stem_and_last_stage_combination(depth, use_pooling, last_stage_stride, expected):
    model = ResNet(depth, out_indices=(1, 2, 3, 4), use_pooling=use_pooling,
                   last_stage_stride=last_stage_stride).eval()
    assert model.strides == expected
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = model(x)
    assert [_stride_of(x, o) for o in outs] == [(s, s) for s in expected]
    assert isinstance(model.maxpool, nn.MaxPool2d) == use_pooling
    assert model.layer1[0].conv1.stride == ((1, 1) if depth == 50 else ((1, 1) if use_pooling else (2, 2)))
    assert model.layer4[0].downsample[0].stride == (last_stage_stride, last_stage_stride)


def test_sizes_not_multiple_of_stride_are_ceiled():
    model = ResNet(18, out_indices=(1, 2, 3, 4), use_pooling=False).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 70, 99))
    assert [tuple(o.shape[-2:]) for o in outs] == [(18, 25), (9, 13), (5, 7), (3, 4)]


def _tao_detectnet_r18() -> ResNet:
    return ResNet(18, all_projections=True, last_stage_stride=1, use_pooling=False)


def test_tao_detectnet_v2_configuration():
    model = _tao_detectnet_r18().eval()
    assert model.out_channels == [512] and model.strides == [16]
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    assert all(isinstance(b.downsample, nn.Sequential) for b in blocks)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    # 120 torchvision keys without fc, plus 6 for each of the 5 blocks torchvision has no projection in.
    assert len(model.state_dict()) == 150
    with torch.no_grad():
        (out,) = model(torch.randn(2, 3, 96, 160))
    assert out.shape == (2, 512, 6, 10)


def test_tao_detectnet_v2_full_resolution():
    model = _tao_detectnet_r18().eval()
    with torch.no_grad():
        (out,) = model(torch.randn(1, 3, 544, 960))
    assert out.shape == (1, 512, 34, 60)


def test_r101_forward_at_sparse4d_resolution():
    model = build_resnet("resnet101", out_indices=(1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 256, 704))
    assert [tuple(o.shape) for o in outs] == [
        (1, 256, 64, 176), (1, 512, 32, 88), (1, 1024, 16, 44), (1, 2048, 8, 22)
    ]
    assert all(torch.isfinite(o).all() for o in outs)


# --- freezing --------------------------------------------------------------------------------------------------------


def _bns(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_stages():
    model = ResNet(18, frozen_stages=1, out_indices=(1, 2, 3, 4))
    frozen = [model.conv1, model.bn1, model.layer1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for name in ("layer2", "layer3", "layer4") for p in getattr(model, name).parameters())
    model.train()
    assert not model.bn1.training and all(not bn.training for bn in _bns(model.layer1))
    assert all(bn.training for bn in _bns(model.layer2))
    assert model.training
    # A training step leaves the frozen statistics alone and gives the frozen weights no gradient.
    stats = model.layer1[0].bn1.running_mean.clone()
    sum(o.mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
    assert torch.equal(model.layer1[0].bn1.running_mean, stats)
    assert model.conv1.weight.grad is None and model.layer1[0].conv1.weight.grad is None
    assert model.layer2[0].conv1.weight.grad is not None
    assert model.layer2[0].bn1.num_batches_tracked.item() == 1
    # eval then train again: still frozen.
    model.eval().train()
    assert not model.layer1[1].bn2.training and model.layer2[1].bn2.training


def test_frozen_stem_only():
    model = ResNet(50, frozen_stages=0).train()
    assert not model.conv1.weight.requires_grad and not model.bn1.training
    assert model.layer1[0].conv1.weight.requires_grad and model.layer1[0].bn1.training


def test_norm_eval_keeps_every_bn_in_eval_but_trains_weights():
    model = ResNet(18, norm_eval=True).train()
    assert model.training
    assert all(not bn.training for bn in _bns(model))
    stats = model.layer3[0].bn1.running_var.clone()
    model(torch.randn(2, 3, 64, 64))[0].mean().backward()
    assert torch.equal(model.layer3[0].bn1.running_var, stats)
    assert all(p.requires_grad for p in model.parameters())
    assert model.layer3[0].bn1.weight.grad is not None


# --- weights loading -------------------------------------------------------------------------------------------------


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    source = _randomize(ResNet(50, num_classes=1000), seed=1).eval()
    path = tmp_path / "resnet50-test.pth"
    torch.save(source.state_dict(), path)

    torch.manual_seed(1)
    target = ResNet(50, num_classes=1000)
    report = load_pretrained(target, path, strict=True)
    assert report["missing"] == [] and report["unexpected"] == [] and report["shape_mismatch"] == {}
    assert report["loaded"] == list(source.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(source(x), target.eval()(x))
    assert target.layer1[0].bn1.num_batches_tracked.item() == 7


def test_round_trip_into_backbone_skips_fc(tmp_path):
    source = _randomize(ResNet(18, num_classes=1000), seed=2).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    target = ResNet(18, out_indices=(1, 2, 3, 4))
    report = load_pretrained(target, path, strict=True)
    assert sorted(report["skipped"]) == ["fc.bias", "fc.weight"]
    assert report["unexpected"] == [] and len(report["loaded"]) == 120
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        reference = source.layer4(source.layer3(source.layer2(source.layer1(
            source.maxpool(source.relu(source.bn1(source.conv1(x))))))))
        assert torch.equal(target.eval()(x)[-1], reference)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"state_dict": {**{f"backbone.{k}": v for k, v in sd.items()}, "neck.conv.weight": torch.ones(1)}},
        lambda sd: {f"module.img_backbone.{k}": v for k, v in sd.items()},
    ],
    ids=["state_dict", "model+module", "detector", "sparse4d"],
)
def test_wrapped_and_prefixed_checkpoints(tmp_path, wrap):
    source = _randomize(ResNet(18), seed=3).eval()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    target = ResNet(18)
    report = load_pretrained(target, path)
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["skipped"] in ([], ["neck.conv.weight"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x)[0], target.eval()(x)[0])


def test_all_projections_reports_the_extra_projections(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(ResNet(18, num_classes=1000).state_dict(), path)
    model = _tao_detectnet_r18()
    extra = model.layer2[1].downsample[0].weight.detach().clone()
    report = load_pretrained(model, path)
    projected = ["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]  # torchvision has none there
    assert report["missing"] == [
        f"{b}.downsample.{p}" for b in projected for p in ("0.weight", "1.weight", "1.bias", "1.running_mean",
                                                             "1.running_var")
    ]
    assert report["unexpected"] == [] and report["shape_mismatch"] == {}
    assert len(report["loaded"]) == 120
    assert torch.equal(model.layer2[1].downsample[0].weight, extra)  # left as initialised
    with pytest.raises(RuntimeError, match="strict=True"):
        load_pretrained(_tao_detectnet_r18(), path, strict=True)


def test_shape_mismatch_is_reported_not_loaded(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(ResNet(18, num_classes=1000).state_dict(), path)
    model = ResNet(18, num_classes=10)
    fc = model.fc.weight.detach().clone()
    report = load_pretrained(model, path)
    assert report["shape_mismatch"] == {
        "fc.weight": {"checkpoint": [1000, 512], "model": [10, 512]},
        "fc.bias": {"checkpoint": [1000], "model": [10]},
    }
    assert torch.equal(model.fc.weight, fc)
    assert report["missing"] == [] and len(report["loaded"]) == 120


def test_state_dict_without_num_batches_tracked_loads(tmp_path):
    # Old torchvision files predate BatchNorm's num_batches_tracked buffer.
    sd = {k: v for k, v in ResNet(18).state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(sd, path)
    report = load_pretrained(ResNet(18), path, strict=True)
    assert report["missing"] == [] and len(report["loaded"]) == 100


def test_loading_uses_weights_only_and_refuses_custom_objects(tmp_path, monkeypatch):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": ResNet(18).state_dict(), "meta": _CustomMeta("trained by someone")}, path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    with pytest.raises(ValueError, match=r"weights_only=True") as info:
        load_pretrained(ResNet(18), path)
    assert "_CustomMeta" in str(info.value) and "state_dict()" in str(info.value)
    assert calls == [{"map_location": "cpu", "weights_only": True}]


class _CustomMeta:
    """A picklable user class: torch.load(weights_only=True) must refuse to rebuild it."""

    def __init__(self, note: str) -> None:
        self.note = note


# --- weights loading errors ------------------------------------------------------------------------------------------


def test_missing_file_names_it_and_gives_torchvision_urls(tmp_path):
    path = tmp_path / "nope" / "resnet50-0676ba61.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_pretrained(ResNet(50), path)
    message = str(info.value)
    assert str(path) in message
    assert TORCHVISION_URLS["resnet50"] in message and TORCHVISION_URLS["resnet50_v2"] in message
    assert "resnet18" not in message


def test_depth_mismatch_says_what_the_file_is(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(ResNet(18, num_classes=1000).state_dict(), path)
    with pytest.raises(ValueError, match=r"looks like ResNet-18 .*BasicBlock.* but the model is ResNet-50"):
        load_pretrained(ResNet(50), path)
    path50 = tmp_path / "r50.pth"
    torch.save(ResNet(50).state_dict(), path50)
    with pytest.raises(ValueError, match=r"looks like ResNet-50 .* but the model is ResNet-101"):
        load_pretrained(ResNet(101), path50)
    with pytest.raises(ValueError, match=r"looks like ResNet-18 .* but the model is ResNet-34"):
        load_pretrained(ResNet(34), path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ([torch.zeros(3)], "does not hold a state dict"),
        ({"conv1.weight": torch.zeros(3), "epoch": 5}, "not a state dict"),
        ({"head.weight": torch.zeros(3)}, "none of its 1 tensors matches"),
    ],
    ids=["list", "mixed-dict", "foreign-keys"],
)
def test_not_a_resnet_state_dict(tmp_path, content, match):
    path = tmp_path / "x.pth"
    torch.save(content, path)
    with pytest.raises(ValueError, match=match):
        load_pretrained(ResNet(18), path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_pretrained(ResNet(18), path)


# --- construction errors ---------------------------------------------------------------------------------------------


def test_build_resnet_names():
    assert build_resnet("ResNet50").depth == 50
    assert build_resnet("resnet34", out_indices=(3,)).out_channels == [256]
    with pytest.raises(ValueError, match="resnet18"):
        build_resnet("resnet152")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 152}, "depth"),
        ({"depth": 50, "out_indices": (0, 1, 2, 3)}, "mmdet"),
        ({"depth": 50, "out_indices": (3, 2)}, "increasing"),
        ({"depth": 50, "out_indices": ()}, "non-empty"),
        ({"depth": 18, "last_stage_stride": 4}, "last_stage_stride"),
        ({"depth": 18, "frozen_stages": 5}, "frozen_stages"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet(**kwargs)
