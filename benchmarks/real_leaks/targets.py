"""Reproducers of documented leaks in released packages, as memgate targets (class targets: setup, call).

Each imports its package in ``__init__`` (the measured ``setup`` stage), so this one file serves
every venv whatever it has installed. The call repeats the leaking operation ``calls`` times, so a
leak of a few hundred bytes per operation is a clear slope per iteration.
"""

from __future__ import annotations

from typing import Any


class MsgspecTupleDecode:
    """msgspec#379: decoding a Struct whose tuple field has more than 16 items leaks the tuple (0.14.1)."""

    def __init__(self, calls: int = 1000) -> None:
        import msgspec

        class A(msgspec.Struct):
            tuple_field: tuple[int, ...]

        self.decode = msgspec.msgpack.Decoder(type=A).decode
        self.data = msgspec.msgpack.Encoder().encode(A(tuple_field=tuple(range(17))))
        self.calls = calls

    def __call__(self) -> None:
        for _ in range(self.calls):
            self.decode(self.data)


class FrozendictHash:
    """frozendict#55: hashing a frozendict leaks (2.3.0; fixed in 2.3.2)."""

    def __init__(self, calls: int = 100, items: int = 100) -> None:
        from frozendict import frozendict

        self.make = lambda: frozendict({i: i for i in range(items)})
        self.calls = calls

    def __call__(self) -> None:
        for _ in range(self.calls):
            hash(self.make())


class FrozendictRepr:
    """frozendict#59: repr() of a frozendict leaks (2.3.2; fixed in 2.3.3)."""

    def __init__(self, calls: int = 100, items: int = 100) -> None:
        from frozendict import frozendict

        self.value = frozendict({i: i for i in range(items)})
        self.calls = calls

    def __call__(self) -> None:
        for _ in range(self.calls):
            repr(self.value)


class UjsonDumpWriteFails:
    """ujson 5.12.0: dump() to a file whose write() raises leaks the serialized string (fixed in 5.12.1)."""

    def __init__(self, calls: int = 4, size: int = 65536) -> None:
        import ujson

        class Full:
            def write(self, text: Any) -> None:
                raise OSError("no space left on device")

        self.dump, self.out = ujson.dump, Full()
        self.payload = {"data": "x" * size}
        self.calls = calls

    def __call__(self) -> None:
        for _ in range(self.calls):
            try:
                self.dump(self.payload, self.out)
            except OSError:
                pass
