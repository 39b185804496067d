"""Shared by the stress suites: the allocator and settings the environment chose, a model folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def zoo_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``zoo_model(name, **options)`` -> (path of the saved model with external weights, its sample feeds)."""
    from runtime import zoo

    folder = tmp_path_factory.mktemp("zoo")
    made: dict[tuple, tuple[Path, dict[str, np.ndarray]]] = {}

    def make(name: str, **options: object) -> tuple[Path, dict[str, np.ndarray]]:
        key = (name, tuple(sorted(options.items())))
        if key not in made:
            path = folder / f"{name}-{len(made)}.onnx"
            zoo.save(name, path, external_data=True, **options)
            made[key] = (path, zoo.sample_inputs(zoo.get(name, **options)))
        return made[key]

    return make
