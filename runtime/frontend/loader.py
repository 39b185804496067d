"""Read ONNX models from a path, bytes or a ModelProto, and resolve external data safely."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from ..errors import ModelLoadError
from ..ops.common import onnx_dtype

ModelSource = Union[str, os.PathLike, bytes, bytearray, memoryview, onnx.ModelProto, "Model"]


@dataclass
class Model:
    """A read model: the protobuf, and where it came from (for external data and the cache)."""

    proto: onnx.ModelProto | None
    path: Path | None = None
    base_dir: Path | None = None
    source: str = "proto"
    _digest: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        if self.path is not None:
            return self.path.name
        return (self.proto.graph.name if self.proto is not None else "") or "model"

    def release(self) -> None:
        """Drop the protobuf (ailia's reduce_constant): only compiled copies remain."""
        self.proto = None

    def reload(self) -> None:
        """Read the protobuf again from the model's file (after ``release``)."""
        if self.path is None:
            raise ModelLoadError("the model's protobuf was released and it has no file to read again")
        data = read_file(self.path)
        self.proto = _parse(data, str(self.path))
        self._digest = digest_of(data)


def _parse(data: bytes | bytearray | memoryview, where: str) -> onnx.ModelProto:
    if len(data) == 0:
        raise ModelLoadError(f"{where}: empty input, not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{where}: not a valid ONNX protobuf (truncated or garbage): {e}") from e
    check_proto(proto, where)
    return proto


def check_proto(proto: onnx.ModelProto, where: str) -> None:
    """Reject protobufs that parsed but are not models (garbage often parses)."""
    if not proto.HasField("graph"):
        raise ModelLoadError(f"{where}: no graph in the protobuf (not an ONNX model)")
    if proto.ir_version <= 0:
        raise ModelLoadError(f"{where}: ir_version {proto.ir_version} is not a valid ONNX IR version")
    if len(proto.graph.output) == 0:
        raise ModelLoadError(f"{where}: the graph declares no outputs")


def read_model(source: ModelSource, *, digest: str | None = None, hash_bytes: bool = True) -> Model:
    """A :class:`Model` from a path, serialized bytes, a ModelProto or a Model.

    ``digest`` and ``hash_bytes`` are passed to :func:`model_from_bytes` for paths and bytes.
    """
    if isinstance(source, Model):
        return source
    if isinstance(source, onnx.ModelProto):
        check_proto(source, "ModelProto")
        return Model(proto=source, source="proto")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return model_from_bytes(bytes(source), None, digest, hash_bytes=hash_bytes)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return model_from_bytes(read_file(path), path, digest, hash_bytes=hash_bytes)
    raise ModelLoadError(f"cannot read a model from {type(source).__name__}; pass a path, bytes or ModelProto")


def read_file(path: Path) -> bytes:
    """The bytes of a model file, with typed errors."""
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ModelLoadError(f"{path}: no such model file") from e
    except IsADirectoryError as e:
        raise ModelLoadError(f"{path}: is a directory, not a model file") from e
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read: {e}") from e


def model_from_bytes(
    data: bytes, path: Path | None = None, digest: str | None = None, *, hash_bytes: bool = True,
) -> Model:
    """Parse model bytes; ``path`` (if the bytes came from a file) anchors external data.

    The model keeps the SHA-256 of ``data`` (the cache key's part), given as ``digest`` when the
    caller already hashed the bytes; ``hash_bytes=False`` skips it for a compile without a cache
    (168 MiB of U^2-Net take 0.1 s to hash, a fifth of its compile).
    """
    if digest is None and hash_bytes:
        digest = digest_of(data)
    if path is None:
        return Model(proto=_parse(data, "model bytes"), source="bytes", _digest=digest)
    proto = _parse(data, str(path))
    return Model(proto=proto, path=path.resolve(), base_dir=path.resolve().parent, source="path", _digest=digest)


def digest_of(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def model_digest(model: Model) -> str:
    """SHA-256 of the model's bytes (kept from reading, else of the serialized protobuf).

    Never of the file again: it may have changed since it was parsed, and a key from the new
    bytes over a graph from the old ones would serve a stale blob.
    """
    if model._digest is None:
        if model.proto is None:
            raise ModelLoadError("the model's protobuf was released; read the model again")
        model._digest = digest_of(model.proto.SerializeToString())
    return model._digest


def external_location(base_dir: Path | None, location: str, tensor: str) -> Path:
    """The file of an external tensor; a location that escapes the model's folder is an error."""
    if base_dir is None:
        raise ModelLoadError(
            f"tensor '{tensor}' uses external data '{location}' but the model was not read "
            "from a path; read it with core.read_model(path)"
        )
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")):
        raise ModelLoadError(f"tensor '{tensor}': external data location '{location}' must be relative")
    root = base_dir.resolve()
    target = (root / location).resolve()
    if root != target and root not in target.parents:
        raise ModelLoadError(
            f"tensor '{tensor}': external data location '{location}' escapes the model folder {root}"
        )
    return target


def load_external(tensor: onnx.TensorProto, base_dir: Path | None, mmap: bool) -> np.ndarray:
    """The data of an external tensor: mapped in place when ``mmap`` and the layout allows."""
    meta = {e.key: e.value for e in tensor.external_data}
    path = external_location(base_dir, meta.get("location", ""), tensor.name)
    dtype = onnx_dtype(tensor.data_type).newbyteorder("<")
    shape = tuple(int(d) for d in tensor.dims)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    try:
        offset = int(meta.get("offset", "0"))
        length = int(meta["length"]) if "length" in meta else nbytes
    except ValueError as e:
        raise ModelLoadError(f"tensor '{tensor.name}': bad external data offset/length {meta}") from e
    if offset < 0 or length != nbytes:
        raise ModelLoadError(
            f"tensor '{tensor.name}': external data length {length} does not match {nbytes} bytes for "
            f"{dtype.name}{list(shape)}"
        )
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ModelLoadError(f"tensor '{tensor.name}': external data file {path} cannot be read: {e}") from e
    if offset + nbytes > size:
        raise ModelLoadError(
            f"tensor '{tensor.name}': external data file {path} has {size} bytes, "
            f"needs {offset + nbytes} (truncated?)"
        )
    if nbytes == 0:
        return np.zeros(shape, dtype.newbyteorder("="))
    native = dtype.newbyteorder("=") == dtype
    if mmap and native and offset % dtype.itemsize == 0:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    out = np.empty(shape, dtype.newbyteorder("="))
    with open(path, "rb") as f:
        f.seek(offset)
        view = out.reshape(-1).view(np.uint8).data  # the array's memoryview, writable
        got = f.readinto(view)
    if got != nbytes:
        raise ModelLoadError(f"tensor '{tensor.name}': short read from {path}")
    return out
