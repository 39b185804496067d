"""The built-in model zoo: deterministic ONNX generators and onnx's light zoo, by name.

    from runtime import zoo
    zoo.names()                             # ['bert', 'mlp', ..., 'unet', 'light:bvlc_alexnet', ...]
    model = zoo.get("u2net", size=96)       # an onnx.ModelProto; options: the generator's keywords
    feeds = zoo.sample_inputs(model)        # {'input': float32[1, 3, 96, 96]}
    zoo.save("u2net", "u2net.onnx", external_data=True)

Nothing is ever downloaded. The same name, options and seed give byte-identical models; weights
depend on the seed only, not on the input size. Generated models are kept in memory as serialized
bytes (``clear_cache()`` drops them) and every ``get`` parses a fresh proto, so callers may mutate it.
Wherever a name is accepted, a path to an existing model file works too. Each generator's keywords
(``size``, ``batch``, ``seed``, ``opset`` and per-model ones) are documented in ``GENERATORS[name]``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx

from ..errors import ConfigError, ModelLoadError
from . import bert, light, mlp, mobilenet, resnet, u2net, unet
from .feeds import sample_feeds

NameOrPath = Union[str, "os.PathLike[str]"]

GENERATORS: dict[str, Callable[..., onnx.ModelProto]] = {
    "bert": bert.bert, "mlp": mlp.mlp, "mobilenetv2": mobilenet.mobilenetv2, "resnet18": resnet.resnet18,
    "resnet50": resnet.resnet50, "u2net": u2net.u2net, "u2netp": u2net.u2netp, "unet": unet.unet,
}
_EXTERNAL_THRESHOLD = 1024  # bytes: smaller tensors stay inside the model file, as onnx does
_ALIGN = 64  # external tensors start on 64-byte boundaries: any dtype can be mapped in place


def names() -> list[str]:
    """Every model name ``get`` knows: the generators, then ``light:<name>`` for onnx's light zoo."""
    return sorted(GENERATORS) + light.names()


def get(name: NameOrPath, **options: Any) -> onnx.ModelProto:
    """A fresh ModelProto for a zoo name (with generator options) or an existing model file."""
    target = resolve(name, **options)
    if isinstance(target, Path):
        try:
            return onnx.load(str(target))
        except Exception as e:  # noqa: BLE001  (protobuf and onnx raise many kinds)
            raise ModelLoadError(f"{target}: cannot be read as an ONNX model: {e}") from e
    return target


def resolve(name_or_path: NameOrPath, **options: Any) -> onnx.ModelProto | Path:
    """A zoo name -> its ModelProto; an existing file -> its Path (not parsed).

    A string that is a zoo name means the zoo model even if a file of that name exists.
    """
    name = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and name in GENERATORS:
        return onnx.ModelProto.FromString(_generate(name, _canonical(name, options)))
    if isinstance(name_or_path, str) and name.startswith(light.PREFIX):
        _no_options(name, options)
        return light.load(name)
    path = Path(name)
    if path.is_file():
        _no_options(name, options)
        return path
    raise ModelLoadError(f"unknown model {name!r}: not a zoo name nor an existing file; known: {', '.join(names())}")


def sample_inputs(model: onnx.ModelProto | NameOrPath, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic feeds of the right dtypes and shapes for every graph input.

    Zoo-generated models (also once saved to a file) get seeded random data: standard normal floats,
    token ids within the vocabulary, attention masks with padded tails. Any other model (the light
    zoo, foreign files) gets onnx's runner feed for floats, ``arange(n).reshape(shape) / n``, which
    is what the light zoo's stored outputs were made from.
    """
    if not isinstance(model, onnx.ModelProto):
        target = resolve(model)
        model = target if isinstance(target, onnx.ModelProto) else onnx.load(str(target), load_external_data=False)
    return sample_feeds(model, seed)


def expected_outputs(name: str) -> dict[str, np.ndarray]:
    """The stored reference outputs of a light-zoo model for ``sample_inputs``, keyed by output name."""
    if not name.startswith(light.PREFIX):
        if name in GENERATORS:
            raise ConfigError(f"{name!r} is generated: it has no stored outputs; compare against a peer runtime")
        raise ModelLoadError(f"unknown light model {name!r}; known: {', '.join(light.names())}")
    return light.expected_outputs(name)


def save(name: NameOrPath, path: str | os.PathLike[str], external_data: bool = False, **options: Any) -> Path:
    """Write a model to ``path``; with ``external_data`` its tensors go to ``<file>.data`` beside it.

    External tensors start at 64-byte aligned offsets so they can be memory-mapped in place.
    """
    model = get(name, **options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data:
        location = path.name + ".data"
        with open(path.parent / location, "wb") as f:
            for tensor in model.graph.initializer:
                if tensor.HasField("raw_data") and len(tensor.raw_data) >= _EXTERNAL_THRESHOLD:
                    f.write(b"\0" * (-f.tell() % _ALIGN))
                    offset = f.tell()
                    f.write(tensor.raw_data)
                    onnx.external_data_helper.set_external_data(tensor, location, offset, len(tensor.raw_data))
                    tensor.data_location = onnx.TensorProto.EXTERNAL
                    tensor.ClearField("raw_data")
    path.write_bytes(model.SerializeToString())
    return path


def clear_cache() -> None:
    """Forget the generated models kept in memory (u2net alone holds about 176 MB)."""
    _generate.cache_clear()


@functools.lru_cache(maxsize=8)
def _generate(name: str, options: tuple[tuple[str, Any], ...]) -> bytes:
    return GENERATORS[name](**dict(options)).SerializeToString()


def _canonical(name: str, options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Options bound to the generator's signature with defaults, hashable and sorted (the cache key)."""
    params = inspect.signature(GENERATORS[name]).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"{name} has no option(s) {unknown}; options: {', '.join(params)}")
    bound = {k: options.get(k, p.default) for k, p in params.items()}
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in bound.items()))


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(f"{name} is a stored model: it takes no options (got {sorted(options)})")


__all__ = ["GENERATORS", "clear_cache", "expected_outputs", "get", "names", "resolve", "sample_inputs", "save"]
