"""Every public entry point of the models, walked with every class of bad input.

Each bad input must give a ValueError or TypeError raised by pyro_frmdn itself (not by torch or
Pyro deep inside) whose message names the argument; each accepted conversion (numpy arrays,
lists, other real dtypes) must give exactly what the equivalent tensor gives. The table of what
each entry point refuses is docs/errors.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyro
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pyro_frmdn as pf
from pyro_frmdn.models import SequenceDistribution

PACKAGE = Path(pf.__file__).resolve().parent
B, T, D, X, N, P, S = 4, 5, 3, 2, 2, 2, 3  # batch, time, dims, inputs; samples, prime, steps
FRAME = (1, 8, 8)


def _frmdn(cls=pf.FRMDN, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    config = dict(input_dim=X, hidden_dim=8, num_components=2, rank=1) | kwargs
    if cls is pf.FRMDN:
        config.setdefault("flow_layers", 2)
    return cls(D, **config).to(dtype)


def _mdn(dtype=torch.float32):
    torch.manual_seed(0)
    return pf.MDN(X, D, num_components=2, hidden_dims=[8], rank=1).to(dtype)


def _boosted_flow(dtype=torch.float32):
    torch.manual_seed(0)
    m = pf.BoostedFlow(D, flow_layers=1, hidden_dims=[8]).to(dtype)
    m.add_component()
    m.add_component(rho=0.3)
    return m


def _boosted_frmdn(dtype=torch.float32):
    torch.manual_seed(0)
    m = pf.BoostedFRMDN(
        D, steps=T, input_dim=X, hidden_dim=4, num_components=2, rank=1, flow_layers=1
    ).to(dtype)
    m.add_component()
    m.add_component(rho=0.5)
    return m


def _world():
    torch.manual_seed(0)
    return pf.WorldModel(
        FRAME,
        latent_dim=D,
        action_dim=X,
        likelihood="bernoulli",
        channels=(4,),
        features=8,
        hidden_dim=8,
        rnn_dim=6,
        reward=True,
        done=True,
        prior_options={"num_components": 2},
    )


def _good() -> dict:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 3:] = False
    dones = torch.zeros(B, T)
    dones[:, -1] = 1
    return {
        "y": torch.randn(B, T, D, generator=g),
        "x": torch.randn(B, T, X, generator=g),
        "mask": mask,
        "value": torch.randn(B, T, D, generator=g),  # SequenceDistribution.log_prob's z
        "xy": torch.randn(B, D, generator=g),  # MDN's and BoostedFlow's y
        "xx": torch.randn(B, X, generator=g),  # MDN's x
        "prime": torch.randn(P, D, generator=g),
        "sample_x": torch.randn(N, P + S, X, generator=g),
        "boost_x": torch.randn(N, S, X, generator=g),
        "frames": (torch.rand(B, T, *FRAME, generator=g) < 0.3).float(),
        "actions": torch.randn(B, T, X, generator=g),
        "rewards": torch.randn(B, T, generator=g),
        "dones": dones,
        "sample_actions": torch.randn(N, S, X, generator=g),
        "context": (torch.rand(B, P, *FRAME, generator=g) < 0.3).float(),
        "dream_actions": torch.randn(B, P + S, X, generator=g),
        "num": N,
        "steps": S,
        "num_samples": 2,
        "batch_size": B,
        "pi_temperature": 0.5,
        "scale_temperature": 0.5,
    }


# key of the arguments -> (the argument's name, its class of input)
ARGS = {
    **{k: ("y", "data") for k in ("y", "xy")},
    **{k: ("x", "data") for k in ("x", "xx", "sample_x", "boost_x")},
    **{k: ("actions", "data") for k in ("actions", "sample_actions", "dream_actions")},
    **{k: ("frames", "frames") for k in ("frames", "context")},  # integers are uint8 levels
    **{k: (k, "data") for k in ("value", "prime", "rewards", "dones")},
    "mask": ("mask", "mask"),
    **{k: (k, "count") for k in ("num", "steps", "num_samples", "batch_size")},
    **{k: (k, "positive") for k in ("pi_temperature", "scale_temperature")},
}


@dataclass
class Entry:
    """A public entry point: its model, and a call with the arguments ``keys`` of ``a``."""

    name: str
    build: Callable
    call: Callable  # (model, a) -> result
    keys: tuple[str, ...]

    def of(self, kind: str) -> list[str]:
        return [k for k in self.keys if ARGS[k][1] == kind]


def method(name: str, *keys: str, **named: str) -> tuple[Callable, tuple[str, ...]]:
    """A call of ``model.name(a[key], ..., argument=a[key], ...)`` and the keys it reads."""

    def call(m, a):
        return getattr(m, name)(*(a[k] for k in keys), **{n: a[k] for n, k in named.items()})

    return call, (*keys, *named.values())


SEQ = ("y", "x", "mask")
WORLD = ("frames", "actions", "mask", "rewards", "dones")
TEMPS = {"pi_temperature": "pi_temperature", "scale_temperature": "scale_temperature"}
FRMDN_SAMPLE = method("sample", "num", "steps", x="sample_x", prime="prime", **TEMPS)


def _dream(m, a):
    keys = ("context", "dream_actions", "steps", "pi_temperature", "scale_temperature")
    return pf.dream(m, *(a[k] for k in keys))


def _sequence(m, a):
    return SequenceDistribution(m, a["x"], a["mask"]).batch_shape


def _sequence_log_prob(m, a):
    return SequenceDistribution(m, a["x"], a["mask"]).log_prob(a["value"])


def _sequence_sample(m, a):
    return SequenceDistribution(m, batch_size=a["batch_size"], steps=a["steps"]).sample()


def _rmdn():
    return _frmdn(pf.RMDN)


ENTRIES = [
    *(
        Entry(f"FRMDN.{f}", _frmdn, *method(f, *SEQ))
        for f in ("model", "log_prob", "step_log_prob")
    ),
    Entry("FRMDN.sample", _frmdn, *FRMDN_SAMPLE),
    Entry("RMDN.log_prob", _rmdn, *method("log_prob", *SEQ)),
    Entry("RMDN.sample", _rmdn, *FRMDN_SAMPLE),
    *(Entry(f"MDN.{f}", _mdn, *method(f, "xx", "xy")) for f in ("model", "log_prob")),
    Entry("MDN.sample", _mdn, *method("sample", "num", "xx", **TEMPS)),
    *(Entry(f"BoostedFlow.{f}", _boosted_flow, *method(f, "xy")) for f in ("model", "log_prob")),
    Entry("BoostedFlow.sample", _boosted_flow, *method("sample", "num")),
    *(Entry(f"BoostedFRMDN.{f}", _boosted_frmdn, *method(f, *SEQ)) for f in ("model", "log_prob")),
    Entry("BoostedFRMDN.sample", _boosted_frmdn, *method("sample", "num", "steps", x="boost_x")),
    *(Entry(f"WorldModel.{f}", _world, *method(f, *WORLD)) for f in ("model", "guide", "log_prob")),
    *(
        Entry(f"WorldModel.{f}", _world, *method(f, *WORLD, num_samples="num_samples"))
        for f in ("elbo", "iwae_bound")
    ),
    Entry("WorldModel.encode", _world, *method("encode", "frames", "mask")),
    Entry(
        "WorldModel.sample", _world, *method("sample", "num", "steps", "sample_actions", **TEMPS)
    ),
    Entry("dream", _world, _dream, ("context", "dream_actions", "steps", *TEMPS)),
    Entry("SequenceDistribution", _frmdn, _sequence, ("x", "mask")),
    Entry("SequenceDistribution.log_prob", _frmdn, _sequence_log_prob, ("value",)),
    Entry(
        "SequenceDistribution.sample",
        lambda: _frmdn(input_dim=0),
        _sequence_sample,
        ("batch_size", "steps"),
    ),
]


def _with_nan(v: torch.Tensor, value=math.nan) -> torch.Tensor:
    v = v.clone()
    v.view(-1)[0] = value
    return v


DATA_BAD = {
    "nan": lambda v: _with_nan(v),
    "inf": lambda v: _with_nan(v, math.inf),
    "meta device": lambda v: torch.empty(v.shape, device="meta"),
    "extra dim": lambda v: v.unsqueeze(-1),
    "last dim short": lambda v: v[..., :-1],
    "string": lambda v: "abc",
    "dict": lambda v: {"values": v},
    "complex": lambda v: v.to(torch.complex64),
}
MASK_BAD = {
    "0.5": lambda m: torch.where(m, 0.5, 0.0),
    "2": lambda m: m.long() * 2,
    "nan": lambda m: torch.where(m, math.nan, 0.0),
    "float 0/1": lambda m: m.float(),
    "int 0/1": lambda m: m.int(),
    "numpy float": lambda m: m.float().numpy(),
    "extra dim": lambda m: m.unsqueeze(-1),
    "time short": lambda m: m[:, :-1],
    "meta device": lambda m: torch.empty(m.shape, dtype=torch.bool, device="meta"),
    "all false": lambda m: torch.zeros_like(m),
}
COUNT_BAD = {"0": 0, "-1": -1, "2.5": 2.5, "True": True, "'2'": "2"}
POSITIVE_BAD = {"0": 0.0, "-1": -1.0, "nan": math.nan, "inf": math.inf, "'1'": "1"}


BAD = {"data": DATA_BAD, "frames": DATA_BAD, "mask": MASK_BAD}
BAD |= {
    kind: {k: (lambda _, b=b: b) for k, b in v.items()}
    for kind, v in (("count", COUNT_BAD), ("positive", POSITIVE_BAD))
}


def _cases():
    for e in ENTRIES:
        for key in e.keys:
            name, kind = ARGS[key]
            sep = "=" if kind in ("count", "positive") else "-"
            for label, bad in BAD[kind].items():
                yield pytest.param(e, key, name, bad, id=f"{e.name}-{name}{sep}{label}")


def _assert_refused(excinfo, name: str) -> None:
    """The error came from pyro_frmdn's own code and names the argument."""
    raised_in = Path(str(excinfo.traceback[-1].path)).resolve()
    assert PACKAGE in raised_in.parents, f"raised in {raised_in}: {excinfo.value!r}"
    assert re.search(rf"\b{re.escape(name)}\b", str(excinfo.value)), str(excinfo.value)


@pytest.mark.parametrize(("entry", "key", "name", "bad"), list(_cases()))
def test_every_bad_input_is_refused_by_the_package_naming_the_argument(entry, key, name, bad):
    model, a = entry.build(), _good()
    entry.call(model, a)  # the good arguments pass
    a[key] = bad(a[key])
    with pytest.raises((ValueError, TypeError)) as excinfo:
        entry.call(model, a)
    _assert_refused(excinfo, name)


CONVERSIONS = {  # (what is passed, the tensor it must score exactly as)
    "numpy": (lambda v: v.numpy(), lambda v: v),
    "list": (lambda v: v.tolist(), lambda v: v),
    "float64": (lambda v: v.double(), lambda v: v),
    "float16": (lambda v: v.half(), lambda v: v.half().float()),
    "int": (lambda v: v.round().long(), lambda v: v.round()),
    "bool": (lambda v: v > 0, lambda v: (v > 0).float()),
}


def _conversion_cases():
    for e in ENTRIES:
        for key in e.keys:
            kind = ARGS[key][1]
            labels = {"data": list(CONVERSIONS), "frames": [c for c in CONVERSIONS if c != "int"]}
            for label in labels.get(kind, ("numpy", "list") if kind == "mask" else ()):
                yield pytest.param(e, key, label, id=f"{e.name}-{key}-{label}")


def _run(entry, model, a):
    pyro.set_rng_seed(0)
    return entry.call(model, a)


@pytest.mark.parametrize(("entry", "key", "label"), list(_conversion_cases()))
def test_arrays_lists_and_other_real_dtypes_are_converted_exactly(entry, key, label):
    model, a = entry.build(), _good()
    passed, reference = CONVERSIONS[label]
    a_ref = dict(a, **{key: reference(a[key])})
    a_conv = dict(a, **{key: passed(a[key])})
    expected = _run(entry, model, a_ref)
    got = _run(entry, model, a_conv)
    if isinstance(expected, torch.Tensor):
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=False)
    elif hasattr(expected, "frames"):  # a Dream
        torch.testing.assert_close(got.latents, expected.latents, rtol=0, atol=0)
    else:
        assert got == expected


# -- hypothesis: whole families of bad values -----------------------------------------------------

LOG_PROBS = [e for e in ENTRIES if e.name.endswith("log_prob") and e.of("mask")]


@pytest.mark.parametrize("entry", LOG_PROBS, ids=lambda e: e.name)
@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 3),
        min_size=B * T,
        max_size=B * T,
    )
)
@settings(max_examples=15, deadline=None, database=None)
def test_no_mask_of_numbers_passes_as_a_boolean_one(entry, values):
    model, a = entry.build(), _good()
    a["mask"] = torch.tensor(values, dtype=torch.float64).reshape(B, T)
    with pytest.raises(ValueError, match=r"^mask must be boolean") as excinfo:
        entry.call(model, a)
    _assert_refused(excinfo, "mask")


COUNTED = [e for e in ENTRIES if e.of("count")]


@pytest.mark.parametrize("entry", COUNTED, ids=lambda e: e.name)
@given(n=st.integers(max_value=0) | st.floats(allow_nan=True) | st.booleans())
@settings(max_examples=15, deadline=None, database=None)
def test_no_count_but_a_positive_integer_is_accepted(entry, n):
    model, a = entry.build(), _good()
    key = entry.of("count")[0]
    a[key] = n
    with pytest.raises((ValueError, TypeError)) as excinfo:
        entry.call(model, a)
    _assert_refused(excinfo, ARGS[key][0])
