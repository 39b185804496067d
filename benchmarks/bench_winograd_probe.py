"""Would Winograd F(2x2,3x3) in numpy beat im2col + one GEMM on ResNet-50's 3x3 convolutions?

A probe, not a kernel of the runtime: for each stride-1 3x3 layer shape of ResNet-50 it
times (a) im2col into a preallocated buffer plus one matmul, as the runtime's Conv does,
and (b) Winograd F(2x2,3x3) with every buffer preallocated and the filters transformed
ahead of time (16 batched GEMMs, input and output transforms as strided numpy adds),
and prints the speed-up and the relative error. Bias and activation are left out of both.

    python benchmarks/bench_winograd_probe.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


import numpy as np  # noqa: E402
from fresh import markdown_table  # noqa: E402
from timing import median_time  # noqa: E402

from runtime.ops.conv import window_view  # noqa: E402

# (channels in = out, spatial size, how many such layers ResNet-50 v1.5 has)
LAYERS = [(64, 56, 3), (128, 28, 3), (256, 14, 5), (512, 7, 2)]
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


class Im2col:
    def __init__(self, w: np.ndarray, c: int, h: int) -> None:
        self.w = w.reshape(w.shape[0], -1)
        self.xp = np.zeros((c, h + 2, h + 2), np.float32)
        self.col = np.empty((c, 3, 3, h, h), np.float32)
        self.win = window_view(self.xp, (3, 3), (1, 1), (1, 1), (h, h))

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        h = x.shape[1]
        self.xp[:, 1:h + 1, 1:h + 1] = x
        np.copyto(self.col, self.win)
        np.matmul(self.w, self.col.reshape(self.w.shape[1], -1), out=out.reshape(out.shape[0], -1))


class Winograd:
    """F(2x2,3x3): 4x4 input tiles, 2x2 output tiles, filters transformed once."""

    def __init__(self, w: np.ndarray, c: int, h: int) -> None:
        m = w.shape[0]
        u = np.einsum("ai,bj,mcij->abmc", G, G, w.astype(np.float64)).astype(np.float32)
        self.u = np.ascontiguousarray(u.reshape(16, m, c))
        self.t = (h + 1) // 2
        t = self.t
        self.xp = np.zeros((c, 2 * t + 2, 2 * t + 2), np.float32)
        self.rows = np.empty((4, c, t, 2 * t + 2), np.float32)
        self.v = np.empty((4, 4, c, t, t), np.float32)
        self.prod = np.empty((16, m, t * t), np.float32)
        self.s = np.empty((2, 4, m, t, t), np.float32)
        self.y = np.empty((m, t, t), np.float32)

    @staticmethod
    def _bt(r: list[np.ndarray], out: np.ndarray) -> None:  # B^T along one axis
        np.subtract(r[0], r[2], out=out[0])
        np.add(r[1], r[2], out=out[1])
        np.subtract(r[2], r[1], out=out[2])
        np.subtract(r[1], r[3], out=out[3])

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        c, h, _ = x.shape
        t = self.t
        self.xp[:, 1:h + 1, 1:h + 1] = x
        self._bt([self.xp[:, a:a + 2 * t:2, :] for a in range(4)], self.rows)
        for a in range(4):
            self._bt([self.rows[a][:, :, b:b + 2 * t:2] for b in range(4)], self.v[a])
        np.matmul(self.u, self.v.reshape(16, c, t * t), out=self.prod)
        p = self.prod.reshape(4, 4, -1, t, t)
        np.add(p[0], p[1], out=self.s[0])
        self.s[0] += p[2]
        np.subtract(p[1], p[2], out=self.s[1])
        self.s[1] -= p[3]
        for r in range(2):  # A^T along the other axis, written into every other output pixel
            s, rows_out = self.s[r], out[:, r::2, :]
            n = rows_out.shape[1]
            np.add(s[0], s[1], out=self.y)
            self.y += s[2]
            rows_out[:, :, 0::2] = self.y[:, :n, :(h + 1) // 2]
            np.subtract(s[1], s[2], out=self.y)
            self.y -= s[3]
            rows_out[:, :, 1::2] = self.y[:, :n, :h // 2]


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    saved = 0.0
    for c, h, count in LAYERS:
        x = rng.standard_normal((c, h, h), dtype=np.float32)
        w = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        direct, wino = Im2col(w, c, h), Winograd(w, c, h)
        a, b = np.empty((c, h, h), np.float32), np.empty((c, h, h), np.float32)
        direct(x, a)
        wino(x, b)
        err = float(np.abs(a - b).max() / np.abs(a).max())
        ms_direct = median_time(lambda: direct(x, a), 20) * 1e3
        ms_wino = median_time(lambda: wino(x, b), 20) * 1e3
        saved += count * (ms_direct - ms_wino)
        rows.append([f"{c}x{h}x{h}", count, f"{ms_direct:.2f}", f"{ms_wino:.2f}", f"{ms_direct / ms_wino:.2f}",
                     f"{err:.1e}", f"{16 / 9:.2f}x"])
        print(" | ".join(str(v) for v in rows[-1]), flush=True)
    print(markdown_table(["layer (C=M, HxW)", "layers in ResNet-50", "im2col+GEMM ms", "Winograd ms", "speed-up",
                          "max rel error", "filter bytes"], rows))
    print(f"\nper ResNet-50 inference, Winograd on every such layer would save {saved:.1f} ms")


if __name__ == "__main__":
    main()
