"""The model contract every pyro-frmdn model follows, and saving and loading models."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import read_torch_file, save_verified

__all__ = [
    "CONTRACT",
    "MODEL_FORMAT",
    "PyroModel",
    "check_contract",
    "load",
    "model_classes",
]

MODEL_FORMAT = "pyro-frmdn-model/1"  #: The format tag of a file that ``save`` writes.
CHECKPOINT_FORMAT = "pyro-frmdn-checkpoint/1"  #: The format tag of fit's checkpoints.
CONTRACT = ("model", "guide", "log_prob", "sample", "config", "name", "save")

_CLASSES: dict[str, type[PyroModel]] = {}


class PyroModel(nn.Module):
    r"""The contract of a pyro-frmdn model: a ``torch.nn.Module`` holding a Pyro program.

    Every model of the package (MDN, RMDN, FRMDN, the boosted mixtures, WorldModel) derives from
    it, and so can a user's own model. A subclass provides

    - ``model(*data)`` and ``guide(*data)``: the Pyro program and its variational family
      (the guide is empty when nothing is latent, and the ELBO is then the log-likelihood);
    - ``log_prob(*data)``: log density in nats per sequence (per item for non-sequence
      models), the data given as to ``model``;
    - ``sample(num, ...)``: ``num`` draws (sequences, items, or draws per input row), the
      number always first;
    - ``config``: a dict of the constructor's keyword arguments, enough to rebuild it;
    - ``name``: the prefix of its parameters in Pyro's param store.

    and inherits persistence: :meth:`save` writes one file (class, config, weights, package
    version, optionally a data transform) that :func:`load` rebuilds in a new process; and
    ``torch.save(model)`` pickles the same (config and weights, not Pyro's param-store links).

    Subclasses whose structure is not fixed by ``config`` (a boosted mixture grows components)
    override :meth:`payload` and :meth:`from_payload`.
    """

    config: dict
    name: str
    renamed_config_keys: dict[str, str] = {}  # old config key -> new, for configs saved earlier

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls

    # -- rebuilding -------------------------------------------------------------------------

    @classmethod
    def upgrade_config(cls, config: dict) -> dict:
        """``config`` with the keys of earlier releases renamed (``renamed_config_keys``)."""
        return {cls.renamed_config_keys.get(k, k): v for k, v in config.items()}

    @classmethod
    def from_config(cls, config: dict) -> PyroModel:
        """An untrained model built from ``config`` (also one saved by an earlier release)."""
        return cls(**cls.upgrade_config(config))

    def payload(self) -> dict:
        """What :meth:`from_payload` rebuilds the model from: class, config and weights."""
        return {
            "model_class": type(self).__name__,
            "config": copy.deepcopy(self.config),
            "model": self.state_dict(),
        }

    @classmethod
    def from_payload(cls, payload: dict) -> PyroModel:
        """Rebuild a model from :meth:`payload`'s dict (or a checkpoint holding one), in the
        floating dtype it was saved in (a float64 model comes back float64)."""
        model = cls.from_config(payload["config"])
        state = payload["model"]
        floats = {v.dtype for v in state.values() if torch.is_tensor(v) and v.is_floating_point()}
        if len(floats) == 1:  # else (mixed dtypes) each tensor keeps the model's own
            model.to(floats.pop())
        model.load_state_dict(state)
        return model

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, transform: Any = None, **extra) -> Path:
        """Write the model to one file, atomically: read it back with :func:`load`.

        Arguments:
            path: the file (conventionally ``*.pt``).
            transform: the data transform the model was fitted in (a dict of tensors and
                plain values), stored beside the weights and given back by :func:`load`.
            extra: other plain values (numbers, strings, tensors) to store beside it.
        """
        from .. import __version__

        path = Path(path)
        state = {
            "format": MODEL_FORMAT,
            "version": __version__,
            **self.payload(),
            "transform": transform,
            "extra": extra,
        }
        return save_verified(state, path)

    def __reduce_ex__(self, protocol):
        # Pyro's param store hangs weakrefs on the parameters it holds, which pickle cannot
        # write; a model is pickled as what rebuilds it instead (class, config, weights).
        return _unpickle, (type(self), self.payload())

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        # a flow's transforms cache their last (x, y) and log-determinant (torch's and Pyro's
        # ``_cached_x_y``, ``_cached_logdet``, ``_cache_log_detJ``): tensors of the last
        # scoring's graph, which torch refuses to deep-copy; the copy starts with empty caches
        for m in self.modules():
            for key, value in vars(m).items():
                if key.startswith("_cache") and _holds_tensors(value):
                    memo[id(value)] = (None,) * len(value) if isinstance(value, tuple) else None
        for key, value in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        for m in new.modules():  # copied RNN weights are separate tensors: cuDNN wants one
            if isinstance(m, nn.RNNBase):  # block (else it copies them at every call; a
                m.flatten_parameters()  # no-op off CUDA)
        return new


def _holds_tensors(value) -> bool:
    """A tensor, or a tuple of tensors and Nones with at least one tensor."""
    if isinstance(value, tuple):
        return any(torch.is_tensor(v) for v in value) and all(
            v is None or torch.is_tensor(v) for v in value
        )
    return torch.is_tensor(value)


def _unpickle(cls: type[PyroModel], payload: dict) -> PyroModel:
    return cls.from_payload(payload)


def model_classes() -> dict[str, type[PyroModel]]:
    """Every model class :func:`load` can rebuild, by class name."""
    return dict(_CLASSES)


def check_contract(model: Any, needs: tuple[str, ...] = CONTRACT) -> None:
    """Raise a TypeError naming what ``model`` lacks of the model contract (:class:`PyroModel`).

    ``needs`` narrows the check to what a caller uses (``fit`` needs ``model``, ``guide``,
    ``log_prob`` and ``name``; checkpoints need ``config`` too).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module with a Pyro model, got {type(model).__name__}")
    missing = [m for m in needs if not hasattr(model, m)]
    if missing:
        raise TypeError(
            f"{type(model).__name__} lacks {', '.join(missing)} of the model contract "
            f"({', '.join(CONTRACT)}); derive it from pyro_frmdn.models.PyroModel and define them"
        )


def load(
    path: str | os.PathLike, map_location: str | torch.device | None = None, with_transform=False
):
    """Rebuild a model saved by :meth:`PyroModel.save` (or any checkpoint ``fit`` wrote).

    Read with ``weights_only=True`` (a file cannot run code); the model comes back in eval
    mode on ``map_location`` (default: where it was saved).

    Arguments:
        path: the file.
        map_location: as :func:`torch.load`, e.g. ``"cpu"`` or ``"cuda:0"``.
        with_transform: also return the data transform stored with the model.

    Example:
        >>> import tempfile, pyro_frmdn as pf
        >>> m = pf.FRMDN(obs_dim=2, hidden_dim=8, num_components=2, flow_layers=1)
        >>> path = m.save(tempfile.mkdtemp() + "/m.pt")
        >>> y = torch.randn(3, 4, 2)
        >>> bool((pf.load(path).log_prob(y) == m.log_prob(y)).all())
        True
    """
    state = read_torch_file(path, "model file", map_location)
    if not isinstance(state, dict) or state.get("format") not in (MODEL_FORMAT, CHECKPOINT_FORMAT):
        raise ValueError(f"{path} is not a pyro-frmdn model file (expected format {MODEL_FORMAT})")
    name = state.get("model_class")
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(
            f"{path} holds a {name}, which is not a known model class (known: "
            f"{', '.join(sorted(_CLASSES))}); import the module that defines it first"
        )
    version = state.get("version")
    if version is not None:
        from .. import __version__

        if version != __version__:
            warnings.warn(
                f"{path} was saved by pyro-frmdn {version}; this is {__version__}",
                stacklevel=2,
            )
    model = cls.from_payload(state)
    if map_location is not None:
        model.to(map_location)
    model.eval()
    return (model, state.get("transform")) if with_transform else model
