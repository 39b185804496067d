"""Models for cells: a zoo name or a path becomes a model file plus its feeds, made in the parent.

Generating a zoo model costs memory (the zoo keeps serialized models cached), so the parent
writes each model once (weights as 64-byte aligned external data, so ``enable_mmap`` has
something to map) with its sample inputs in an ``.npz`` beside it; children only read files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class ModelError(ValueError):
    """A model that is neither a zoo name nor a readable file."""


def parse_option_value(text: str) -> Any:
    """``"96"`` -> 96, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def zoo_names() -> list[str]:
    try:
        from runtime import zoo
    except ImportError:
        return []
    return list(zoo.names())


def check_model(model: str) -> None:
    """Raise ModelError unless ``model`` is a zoo name or an existing file."""
    if Path(model).is_file() or model in zoo_names():
        return
    names = zoo_names()
    known = f"zoo models: {', '.join(names)}" if names else "the model zoo (runtime.zoo) is not available"
    raise ModelError(f"unknown model {model!r}: not a file and not a zoo name; {known}")


def materialize(model: str, options: Sequence[tuple[str, str]], directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """(model file, feeds .npz) for a zoo name or path; cached in ``directory`` by name, options and seed."""
    opts = {k: parse_option_value(v) for k, v in options}
    key = hashlib.sha256(json.dumps([model, sorted(opts.items()), seed], default=str).encode()).hexdigest()[:12]
    stem = Path(model).stem if Path(model).is_file() else model.replace(":", "_").replace("/", "_")
    target = directory / f"{stem}-{key}"
    in_place = Path(model).is_file() and not opts  # a user's file stays where its external data is
    model_path = Path(model).resolve() if in_place else target / "model.onnx"
    feeds_path = target / "feeds.npz"
    if model_path.exists() and feeds_path.exists():
        return model_path, feeds_path
    target.mkdir(parents=True, exist_ok=True)
    try:
        from runtime import zoo
    except ImportError as e:
        raise ModelError(f"the model zoo (runtime.zoo) cannot be imported: {e}") from e
    proto: Any = model_path
    if not in_place:
        check_model(model)
        proto = zoo.get(model, **opts)
        zoo.save(model, model_path, external_data=True, **opts)
    feeds = zoo.sample_inputs(proto, seed=seed)
    np.savez(feeds_path, **feeds)  # type: ignore[arg-type]
    clear = getattr(zoo, "clear_cache", None)
    if clear is not None:
        clear()
    return model_path, feeds_path


def load_feeds(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: np.ascontiguousarray(data[k]) for k in data.files}
