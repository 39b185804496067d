"""onnx's ReferenceEvaluator: the slow, plain-numpy oracle, ``default`` mode only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import Adapter

if TYPE_CHECKING:
    import numpy as np

    from ..spec import CoreOptions


class Reference(Adapter):
    name = "reference"
    modes = ("default",)

    def __init__(self) -> None:
        from onnx.reference import ReferenceEvaluator

        self.evaluator = ReferenceEvaluator

    def version(self) -> str:
        import onnx

        return str(onnx.__version__)

    def create_core(self, options: CoreOptions) -> Any:
        return options

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        self.check_mode(mode)
        return self.evaluator(model)

    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any:
        return request.run(None, dict(feeds))
