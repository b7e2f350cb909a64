"""``auto`` precision: bf16 autocast where the hardware has it natively, fp32 elsewhere."""

from __future__ import annotations

import pytest

from visionops.training import precision as precision_module
from visionops.training.precision import resolve_precision


def test_auto_is_bf16_on_cuda_whatever_the_cpu(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cuda=True) == "bf16-mixed"


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_cpu_follows_native_bf16_support(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", cuda=False) == expected


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed"])
def test_explicit_values_pass_through(monkeypatch, value):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision(value, cuda=False) == value


def test_unknown_value_names_the_choices():
    with pytest.raises(ValueError, match=r"precision must be one of .*'16-mixed'"):
        resolve_precision("16-mixed")


def test_probe_answers_a_bool():
    assert isinstance(precision_module.cpu_has_native_bf16(), bool)


def test_detectnet_params_reject_unknown_precision():
    from pydantic import ValidationError

    from visionops.config.detectnet_params import DetectNetParams

    assert DetectNetParams().precision == "auto"
    with pytest.raises(ValidationError, match="precision"):
        DetectNetParams(precision="fp8")
