"""The compiled-model blob: a versioned JSON header plus raw tensor bytes, 64-byte aligned.

Layout (little endian)::

    0   8 bytes   magic b"MGBLOB\\x00\\x01"
    8   8 bytes   header length H (uint64)
    16  32 bytes  SHA-256 of the header
    48  H bytes   header: UTF-8 JSON
    ..  padding to a multiple of 64
    D   data: every tensor at a 64-byte aligned offset relative to D

The header holds the format and runtime versions, the cache key, the total file size,
the graph after passes (nodes, attributes, inputs, outputs, opset), one entry per tensor
(name, dtype, shape, offset, nbytes), the memory plan of the static signature, the
external data files the model read (with size and mtime), and the SHA-256 of the data.

What is checked on import: always the magic, the header checksum (so any bit flip in
the header, or a truncated header, is caught), the format/runtime version, the key,
the total file size (so any truncation is caught), and that every tensor lies inside
the data. With ``cache_verify="full"`` the data checksum is checked too; without it a
bit flip inside the weights is *not* detected (the cost would be reading every byte
on every compile, which defeats mmap). Nothing in the blob can execute code: no pickle.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import Error
from ..ir import Graph, Node, TensorInfo, ValueInfo
from ..memory import MemoryPlan
from .atomic import atomic_write

MAGIC = b"MGBLOB\x00\x01"
FORMAT_VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sQ32s")


class BlobError(Error):
    """A blob is truncated, corrupt, foreign or stale; the caller recompiles."""


def _pad(n: int) -> int:
    return (-n) % ALIGN


# ---------------------------------------------------------------- encoding


class _TensorTable:
    """Collects arrays into the data region and hands out references."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.entries: list[dict[str, Any]] = []
        self.size = 0

    def add(self, name: str, array: np.ndarray) -> int:
        arr = np.require(array, requirements="C")  # keeps 0-d arrays 0-d
        if arr.dtype.kind not in "biuf" or arr.dtype.byteorder == ">":
            raise BlobError(f"tensor '{name}' of dtype {arr.dtype} cannot go into a blob")
        self.size += _pad(self.size)
        self.entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                             "offset": self.size, "nbytes": int(arr.nbytes)})
        self.arrays.append(arr)
        self.size += int(arr.nbytes)
        return len(self.entries) - 1


def _encode_value(value: Any, table: _TensorTable, where: str) -> Any:
    if isinstance(value, np.ndarray):
        return {"__tensor__": table.add(where, value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, table, where) for v in value]
    if isinstance(value, dict):
        return {"__dict__": {k: _encode_value(v, table, where) for k, v in value.items()}}
    return value


def _decode_value(value: Any, tensors: list[np.ndarray]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        return {k: _decode_value(v, tensors) for k, v in value["__dict__"].items()}
    if isinstance(value, list):
        return [_decode_value(v, tensors) for v in value]
    return value


def _info_json(info: TensorInfo) -> dict[str, Any]:
    return {"dtype": info.dtype.str, "shape": list(info.shape)}


def _info_from(d: dict[str, Any]) -> TensorInfo:
    return TensorInfo(np.dtype(d["dtype"]), tuple(d["shape"]))


def plan_to_json(plan: MemoryPlan) -> dict[str, Any]:
    return {
        "mode": plan.mode, "buffers": plan.buffers, "place": {k: list(v) for k, v in plan.place.items()},
        "scratch": [[list(p) for p in s] for s in plan.scratch], "dynamic": plan.dynamic,
        "alloc_start": plan.alloc_start, "alloc_before": plan.alloc_before, "free_after": plan.free_after,
        "zero_start": [list(z) for z in plan.zero_start],
        "zero_before": [[list(z) for z in s] for s in plan.zero_before],
        "retained": sorted(plan.retained), "lower_bound": plan.lower_bound, "arena": plan.arena,
        "dynamic_peak": plan.dynamic_peak, "inplace_pairs": plan.inplace_pairs,
    }


def plan_from_json(d: dict[str, Any]) -> MemoryPlan:
    return MemoryPlan(
        mode=d["mode"], buffers=[int(b) for b in d["buffers"]],
        place={k: (int(v[0]), int(v[1])) for k, v in d["place"].items()},
        scratch=[[(int(p[0]), int(p[1])) for p in s] for s in d["scratch"]], dynamic=bool(d["dynamic"]),
        alloc_start=list(d["alloc_start"]), alloc_before=[list(a) for a in d["alloc_before"]],
        free_after=[list(a) for a in d["free_after"]], zero_start=[tuple(z) for z in d["zero_start"]],
        zero_before=[[tuple(z) for z in s] for s in d["zero_before"]], retained=set(d["retained"]),
        lower_bound=int(d["lower_bound"]), arena=bool(d["arena"]), dynamic_peak=int(d["dynamic_peak"]),
        inplace_pairs=int(d["inplace_pairs"]),
    )


@dataclass
class BlobContents:
    graph: Graph
    plan: MemoryPlan | None
    meta: dict[str, Any]


def encode(
    graph: Graph, plan: MemoryPlan | None, meta: dict[str, Any],
) -> tuple[dict[str, Any], list[np.ndarray], list[dict[str, Any]], int]:
    """(header-without-size, arrays, table entries, data size) for ``graph``."""
    table = _TensorTable()
    constants = {name: table.add(name, arr) for name, arr in graph.constants.items()}
    defaults = {name: table.add(name, arr) for name, arr in graph.defaults.items()}
    nodes = [{
        "name": n.name, "op_type": n.op_type, "domain": n.domain, "inputs": n.inputs, "outputs": n.outputs,
        "attrs": {k: _encode_value(v, table, f"{n.name}.{k}") for k, v in n.attrs.items()},
        "activation": n.activation,
    } for n in graph.nodes]
    header = {
        **meta,
        "graph": {
            "name": graph.name, "opset": graph.opset, "nodes": nodes, "constants": constants, "defaults": defaults,
            "inputs": [{"name": v.name, **_info_json(v.info)} for v in graph.inputs],
            "outputs": [{"name": v.name, **_info_json(v.info)} for v in graph.outputs],
        },
        "plan": plan_to_json(plan) if plan is not None else None,
        "tensors": table.entries,
        "data_size": table.size,
    }
    return header, table.arrays, table.entries, table.size


def _iter_data(arrays: list[np.ndarray], entries: list[dict[str, Any]]) -> Iterator[bytes | memoryview]:
    pos = 0
    for arr, e in zip(arrays, entries):
        if e["offset"] > pos:
            yield b"\x00" * (e["offset"] - pos)
        yield arr.reshape(-1).view(np.uint8).data  # the array's memoryview: no copy
        pos = e["offset"] + e["nbytes"]


def write_blob(path: Path, graph: Graph, plan: MemoryPlan | None, meta: dict[str, Any]) -> int:
    """Write atomically: temporary file in the same folder, fsync, rename, fsync the folder."""
    header, arrays, entries, data_size = encode(graph, plan, meta)
    digest = hashlib.sha256()
    for chunk in _iter_data(arrays, entries):
        digest.update(chunk)
    header["data_sha256"] = digest.hexdigest()
    # The file size depends on the header length, which contains the file size: iterate to a fixpoint.
    header["file_size"] = 0
    for _ in range(4):
        raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        data_start = _PREFIX.size + len(raw) + _pad(_PREFIX.size + len(raw))
        total = data_start + data_size
        if header["file_size"] == total:
            break
        header["file_size"] = total
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    def write(f: BinaryIO) -> None:
        f.write(_PREFIX.pack(MAGIC, len(raw), hashlib.sha256(raw).digest()))
        f.write(raw)
        f.write(b"\x00" * _pad(_PREFIX.size + len(raw)))
        for chunk in _iter_data(arrays, entries):
            f.write(chunk)

    atomic_write(path, write)
    return header["file_size"]


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The verified header and the data start offset; BlobError on anything wrong."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                raise BlobError(f"{path.name}: truncated before the header")
            magic, hlen, hsum = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                raise BlobError(f"{path.name}: not a memgate blob (bad magic)")
            if hlen > 1 << 30:
                raise BlobError(f"{path.name}: implausible header length {hlen}")
            raw = f.read(hlen)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise BlobError(f"{path.name}: cannot read: {e}") from e
    if len(raw) != hlen or hashlib.sha256(raw).digest() != hsum:
        raise BlobError(f"{path.name}: header checksum mismatch (truncated or corrupt)")
    try:
        header = json.loads(raw)
    except ValueError as e:
        raise BlobError(f"{path.name}: header is not JSON: {e}") from e
    if header.get("format_version") != FORMAT_VERSION:
        raise BlobError(f"{path.name}: blob format {header.get('format_version')} != {FORMAT_VERSION}")
    if header.get("file_size") != size:
        raise BlobError(f"{path.name}: file has {size} bytes, header says {header.get('file_size')} (truncated?)")
    data_start = _PREFIX.size + hlen + _pad(_PREFIX.size + hlen)
    for entry in header["tensors"]:
        if entry["offset"] % ALIGN or entry["offset"] + entry["nbytes"] > header["data_size"]:
            raise BlobError(f"{path.name}: tensor '{entry['name']}' lies outside the data")
    if data_start + header["data_size"] != size:
        raise BlobError(f"{path.name}: data region does not match the file size")
    return header, data_start


def read_blob(
    path: Path, header: dict[str, Any], data_start: int, *, mmap_weights: bool, verify_data: bool,
) -> BlobContents:
    """Tensors mapped in place (``mmap_weights``) or read into anonymous memory."""
    size = header["data_size"]
    if size == 0:
        data: Any = np.zeros(0, np.uint8)
    elif mmap_weights:
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        data = np.frombuffer(mm, np.uint8, count=size, offset=data_start)
    else:
        data = np.empty(size, np.uint8)
        with open(path, "rb") as f:
            f.seek(data_start)
            if f.readinto(memoryview(data)) != size:
                raise BlobError(f"{path.name}: short read of the data")
    if verify_data and hashlib.sha256(memoryview(data)).hexdigest() != header.get("data_sha256"):
        raise BlobError(f"{path.name}: data checksum mismatch (corrupt weights)")
    tensors = []
    for e in header["tensors"]:
        dtype = np.dtype(e["dtype"])
        raw = data[e["offset"]:e["offset"] + e["nbytes"]]
        tensors.append(raw.view(dtype).reshape(e["shape"]))
    g = header["graph"]
    nodes = [Node(n["name"], n["op_type"], list(n["inputs"]), list(n["outputs"]),
                  {k: _decode_value(v, tensors) for k, v in n["attrs"].items()}, n["domain"], n["activation"])
             for n in g["nodes"]]
    graph = Graph(
        nodes=nodes,
        inputs=[ValueInfo(v["name"], _info_from(v)) for v in g["inputs"]],
        outputs=[ValueInfo(v["name"], _info_from(v)) for v in g["outputs"]],
        constants={name: tensors[i] for name, i in g["constants"].items()},
        opset=int(g["opset"]), name=g["name"],
        defaults={name: tensors[i] for name, i in g["defaults"].items()},
    )
    plan = plan_from_json(header["plan"]) if header.get("plan") else None
    return BlobContents(graph, plan, header)
