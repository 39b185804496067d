"""ONNX in: reading models (paths, bytes, protobufs, external data) and building the IR."""

from .convert import to_graph
from .loader import Model, ModelSource, read_model

__all__ = ["Model", "ModelSource", "read_model", "to_graph"]
