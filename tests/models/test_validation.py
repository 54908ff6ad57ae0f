"""The input checks shared by the models: conversion, devices, masks, counts, values."""

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pyro_frmdn as pf
from pyro_frmdn.models.validation import (
    as_real,
    as_tensor,
    check_count,
    check_mask,
    check_positive,
    check_sequences,
    largest_value,
)

CPU = torch.device("cpu")
F32, F64 = torch.float32, torch.float64


# -- as_tensor: what may come in, and where it must be ---------------------------------------


def test_a_tensor_on_the_device_is_returned_as_it_is():
    t = torch.randn(2, 3)
    assert as_tensor("y", t, CPU) is t


@pytest.mark.parametrize(
    "value", [np.ones((2, 3)), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], ((1, 2, 3), (4, 5, 6))]
)
def test_arrays_and_lists_become_tensors_on_the_device(value):
    t = as_tensor("y", value, CPU)
    assert isinstance(t, torch.Tensor) and t.device == CPU
    np.testing.assert_array_equal(t.numpy(), np.asarray(value))


def test_a_tensor_on_another_device_names_the_argument_and_both_devices():
    with pytest.raises(ValueError, match=r"prime is on meta but the model is on cpu"):
        as_tensor("prime", torch.empty(2, 3, device="meta"), CPU)


@pytest.mark.parametrize(
    "value",
    ["abc", {"y": 1}, None, object(), np.array(["a", "b"]), [None, 1.0]],
)
def test_what_is_not_numbers_is_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, a numpy array or a "):
        as_tensor("x", value, CPU)


def test_a_ragged_list_names_the_argument():
    with pytest.raises(ValueError, match=r"^y could not be made a tensor"):
        as_tensor("y", [[1.0, 2.0], [3.0]], CPU)


# -- as_real: the model's dtype, finite values ------------------------------------------------


@pytest.mark.parametrize(
    "source", [torch.float16, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]
)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_real_values_are_converted_to_the_model_dtype_exactly(source, dtype):
    values = torch.tensor([[0, 1, 1, 0], [1, 0, 1, 1]]).to(source)  # exact in every dtype
    out = as_real("y", values, dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), values.numpy().astype(np.float64))


def test_complex_values_are_a_type_error():
    with pytest.raises(TypeError, match=r"^y must hold real numbers .* got complex64"):
        as_real("y", torch.ones(2, dtype=torch.complex64), F32)


@pytest.mark.parametrize(
    ("dtype", "value", "shown"),
    [(F32, 1e39, r"1e\+39"), (F32, -1e20, r"-1e\+20"), (F64, 1e160, r"1e\+160")],
)
def test_values_whose_squares_overflow_the_model_dtype_are_refused(dtype, value, shown):
    y = torch.tensor([[1.0, value]], dtype=F64)
    with pytest.raises(ValueError, match=rf"^y holds {shown} at position \(0, 1\), beyond"):
        as_real("y", y, dtype)
    limit = math.sqrt(np.finfo(np.float32 if dtype == F32 else np.float64).max)
    assert as_real("y", torch.tensor([limit, -limit], dtype=F64), dtype).abs().max() <= limit


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        elements=st.floats(-1.8e19, 1.8e19, allow_nan=False),
    )
)
@settings(max_examples=50, deadline=None, database=None)
def test_float64_within_the_float32_range_converts_as_numpy_does(a):
    out = as_real("y", torch.from_numpy(a), F32)
    np.testing.assert_array_equal(out.numpy(), a.astype(np.float32))


@pytest.mark.parametrize(("value", "kind"), [(math.nan, "NaN"), (math.inf, "Inf")])
def test_non_finite_values_name_the_argument_and_position(value, kind):
    y = torch.zeros(2, 3)
    y[1, 2] = value
    with pytest.raises(ValueError, match=rf"^y has {kind} at position \(1, 2\)"):
        as_real("y", y, F32)
    where = torch.ones(2, 3, dtype=torch.bool)
    where[1, 2] = False
    assert as_real("y", y, F32, where=where) is y  # unscored: not read


# -- check_mask --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "shown"),
    [
        (torch.full((2, 3), 0.5), "float32 values such as 0.5"),
        (torch.full((2, 3), 2), "int64 values such as 2"),
        (torch.full((2, 3), math.nan), "float32 values such as nan"),
        (torch.ones(2, 3), "float32 values such as 1.0"),
        (torch.ones(2, 3, dtype=torch.int32), "int32 values such as 1"),
        (np.ones((2, 3)), "float64 values such as 1.0"),
        ([[1, 0, 1], [1, 1, 1]], "int64 values such as 1"),
    ],
)
def test_a_mask_that_is_not_boolean_is_refused_not_binarised(mask, shown):
    with pytest.raises(ValueError, match=r"^mask must be boolean \(True where a step is scored\)"):
        check_mask(mask, (2, 3), device=CPU)
    with pytest.raises(ValueError, match=shown):
        check_mask(mask, (2, 3), device=CPU)


def test_a_non_boolean_mask_shows_a_value_that_is_not_0_or_1_first():
    mask = torch.ones(2, 3)
    mask[1, 1] = 0.25
    with pytest.raises(ValueError, match=r"such as 0\.25"):
        check_mask(mask, (2, 3), device=CPU)


@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.uint8]), (2, 3)))
@settings(max_examples=30, deadline=None, database=None)
def test_no_array_but_a_boolean_one_passes_as_a_mask(a):
    with pytest.raises(ValueError, match="mask must be boolean"):
        check_mask(a, (2, 3), device=CPU)


@pytest.mark.parametrize("mask", [np.array([[True, False, True]] * 2), [[True, False, True]] * 2])
def test_boolean_arrays_and_lists_are_masks(mask):
    out = check_mask(mask, (2, 3), device=CPU)
    assert out.dtype == torch.bool and out.tolist() == [[True, False, True]] * 2


def test_a_mask_of_the_wrong_shape_or_device_is_refused():
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\) to match y"):
        check_mask(torch.ones(2, 3, 1, dtype=torch.bool), (2, 3), device=CPU)
    with pytest.raises(ValueError, match="mask is on meta but the model is on cpu"):
        check_mask(torch.empty(2, 3, dtype=torch.bool, device="meta"), (2, 3), device=CPU)


# -- counts and positive numbers ----------------------------------------------------------------


@pytest.mark.parametrize("value", [3, np.int64(3), torch.tensor(3)])
def test_counts_accept_integers(value):
    assert check_count("num", value) == 3


@pytest.mark.parametrize("value", [0, -1, -5])
def test_counts_below_one_are_refused(value):
    with pytest.raises(ValueError, match=rf"^num must be >= 1, got {value}"):
        check_count("num", value)


@pytest.mark.parametrize("value", [2.5, 3.0, True, "3", None, torch.tensor(3.0)])
def test_counts_that_are_not_integers_are_type_errors(value):
    with pytest.raises(TypeError, match=r"^steps must be an integer"):
        check_count("steps", value)


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf])
def test_positive_numbers_refuse_zero_negative_and_non_finite(value):
    with pytest.raises(ValueError, match=r"^pi_temperature must be a finite number > 0"):
        check_positive("pi_temperature", value)


@pytest.mark.parametrize("value", ["1", None, True])
def test_positive_numbers_must_be_numbers(value):
    with pytest.raises(TypeError, match=r"^scale_temperature must be a number"):
        check_positive("scale_temperature", value)


# -- check_sequences ---------------------------------------------------------------------------


def test_sequences_are_converted_and_their_padding_zeroed():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 4, 3, generator=g, dtype=F64)
    y[1, 3] = math.nan  # padding
    mask = torch.tensor([[True] * 4, [True] * 3 + [False]])
    x = torch.randint(0, 3, (2, 4, 1), generator=g)
    y32, x32, m = check_sequences(y.numpy(), x.tolist(), mask, 3, 1, dtype=F32, device=CPU)
    expected = np.where(mask.numpy()[..., None], y.numpy(), 0.0).astype(np.float32)
    np.testing.assert_array_equal(y32.numpy(), expected)
    assert x32.dtype == F32 and torch.equal(x32, x.float()) and torch.equal(m, mask)


def test_sequences_on_another_device_are_refused():
    y = torch.empty(2, 4, 3, device="meta")
    with pytest.raises(ValueError, match="y is on meta but the model is on cpu"):
        check_sequences(y, None, None, 3, 0, dtype=F32, device=CPU)
    with pytest.raises(ValueError, match="x is on meta but the model is on cpu"):
        check_sequences(
            torch.zeros(2, 4, 3),
            torch.empty(2, 4, 1, device="meta"),
            None,
            3,
            1,
            dtype=F32,
            device=CPU,
        )


# -- far values: refused beyond the computable range, never NaN within it ----------------------


def _sequences(**kwargs):
    def build(dtype):
        torch.manual_seed(0)
        config = dict(hidden_dim=8, num_components=2, rank=1, flow_layers=2) | kwargs
        return pf.FRMDN(3, **config).to(dtype)

    return build


def _mdn(dtype):
    torch.manual_seed(0)
    return pf.MDN(2, 3, num_components=2, hidden_dims=[8], rank=1).to(dtype)


def _boosted_flow(dtype):
    torch.manual_seed(0)
    m = pf.BoostedFlow(3, flow_layers=1, hidden_dims=[8]).to(dtype)
    m.add_component()
    m.add_component(rho=0.3)
    return m


SCORERS = {
    "FRMDN covariance": _sequences(),
    "FRMDN precision": _sequences(parameterization="precision"),
    "FRMDN spline": _sequences(flow="spline"),
    "FRMDN householder": _sequences(mixing="householder", flow_layers=4),
    "RMDN low rank": _sequences(flow_layers=0),
    "RMDN diagonal": _sequences(flow_layers=0, rank=0),
    "MDN low rank": _mdn,
    "BoostedFlow": _boosted_flow,
}


def _score(m, y: torch.Tensor) -> torch.Tensor:
    """log p of ``y`` (2, 4, 3): of the sequences, or of their first steps as 2 examples."""
    if isinstance(m, pf.FRMDN):
        return m.log_prob(y)
    if isinstance(m, pf.MDN):
        return m.log_prob(torch.linspace(-1, 1, 4, dtype=y.dtype).reshape(2, 2), y[:, 0])
    return m.log_prob(y[:, 0])


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("label", SCORERS)
@given(exponent=st.floats(0.9, 1), sign=st.sampled_from([-1.0, 1.0]), everywhere=st.booleans())
@example(exponent=1.0, sign=1.0, everywhere=False)
@example(exponent=1.0, sign=-1.0, everywhere=True)
@settings(max_examples=10, deadline=None, database=None)
def test_far_values_score_a_tiny_density_never_nan(label, dtype, exponent, sign, everywhere):
    # |y| up to the largest accepted value (1.8e19 in float32), with weights as large as a
    # trained model's: a squared distance beyond the dtype made the low-rank covariance density
    # Inf - Inf = NaN
    m = SCORERS[label](dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3)
    y = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    far = sign * largest_value(dtype) ** exponent
    if everywhere:
        y[1] = far
    else:
        y[1, 0, 0] = far
    lp = _score(m, y)
    assert not torch.isnan(lp).any(), lp
    assert torch.isfinite(lp[0])


@pytest.mark.parametrize(("dtype", "far"), [(F32, 1e20), (F64, 1e160)], ids=str)
@pytest.mark.parametrize("label", SCORERS)
def test_values_beyond_the_computable_range_are_refused(label, dtype, far):
    y = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    y[1, 0, 0] = far
    with pytest.raises(
        ValueError, match=rf"^y holds {far:g} at position .*, beyond".replace("+", r"\+")
    ):
        _score(SCORERS[label](dtype), y)
