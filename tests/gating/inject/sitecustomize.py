"""Test-only regressions injected into the runtime of a harness child (found on PYTHONPATH as sitecustomize).

``MEMGATE_TEST_CONV_SCRATCH=<bytes>``: every Conv kernel declares that much more scratch and fills
it on every run, as a kernel whose workspace grew would. The runtime's own code is not touched.
"""

from __future__ import annotations

import os

_EXTRA = int(os.environ.get("MEMGATE_TEST_CONV_SCRATCH", "0") or 0)


def _inject_conv_scratch(nbytes: int) -> None:
    import numpy as np

    from runtime.ops import common, registry

    for opdef in registry.REGISTRY["Conv"]:
        original = opdef.prepare

        def prepare(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            kernel = _original(*args, **kwargs)
            kernel.scratch.append(common.info(np.dtype(np.float32), [nbytes // 4]))
            index, run = len(kernel.scratch) - 1, kernel.run

            def bigger(ins, outs, scratch, _run=run, _index=index):  # type: ignore[no-untyped-def]
                scratch[_index].fill(1.0)  # touched: the pages count in RSS
                if _run is not None:
                    _run(ins, outs, scratch)

            kernel.run = bigger
            bind = kernel.bind
            if bind is not None:  # static plans run what bind returns: it must fill the workspace too

                def bind_bigger(ins, outs, scratch, _bind=bind, _index=index):  # type: ignore[no-untyped-def]
                    bound = _bind(ins, outs, scratch)

                    def run_bound(i, o, s, _bound=bound):  # type: ignore[no-untyped-def]
                        s[_index].fill(1.0)
                        _bound(i, o, s)

                    return run_bound

                kernel.bind = bind_bigger
            return kernel

        opdef.prepare = prepare


if _EXTRA:
    _inject_conv_scratch(_EXTRA)
