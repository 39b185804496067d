"""One exception hierarchy for everything the runtime raises on bad input.

Callers catch ``runtime.Error``; the subclasses say which stage refused and why.
Internal invariants use ``assert``; these classes are for what a user can cause.
"""

from __future__ import annotations


class Error(Exception):
    """Root of every error the runtime raises on purpose."""


class ModelLoadError(Error):
    """The model could not be read: missing, truncated or garbage file, bad external data."""


class GraphError(Error):
    """The graph is malformed: a cycle, a missing input or initializer, a duplicate output."""


class UnsupportedOperatorError(Error):
    """No kernel for this operator in this domain and opset."""

    def __init__(self, op_type: str, domain: str, opset: int, node: str, detail: str = "") -> None:
        self.op_type, self.domain, self.opset, self.node = op_type, domain, opset, node
        where = f"domain '{domain or 'ai.onnx'}', opset {opset}"
        msg = f"unsupported operator {op_type} ({where}) at node '{node}'"
        super().__init__(msg + (f": {detail}" if detail else ""))


class ShapeError(Error):
    """Shapes or dtypes do not fit an operator, or cannot be inferred."""


class DataDependentShapeError(ShapeError):
    """An output shape needs a value that is only known at run time (a shape fed as an input)."""

    node: str = ""
    tensor: str = ""  # the input whose value was needed, when known
    info: object = None


class InputError(Error):
    """A feed is missing, unknown, or has the wrong dtype or shape."""


class KernelError(Error):
    """A kernel failed while running; the message names the node."""


class DataRemovedError(Error):
    """The tensor asked for was released by the memory mode (ailia's AILIA_STATUS_DATA_REMOVED)."""

    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode
        super().__init__(
            f"tensor '{name}' was released by memory mode '{mode}'; "
            f"pass keep=['{name}'] to compile_model to retrieve it"
        )


class ConfigError(Error, ValueError):
    """An option has an invalid value."""


class ConcurrencyError(Error):
    """Two inferences tried to use one shared arena at the same time."""


class CacheWarning(RuntimeWarning):
    """The compiled-model cache could not be used; compilation went on without it."""
