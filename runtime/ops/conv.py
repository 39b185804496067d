"""Conv: columns in a planned scratch buffer plus one BLAS matmul per image (batched over groups).

- 1x1, stride 1, no padding: a plain batched GEMM on the input (over groups too), no scratch.
- 2-d convs whose taps can be read as contiguous runs (``flat_taps``): at stride 1 with
  horizontal "same" padding straight from the unpadded input, at larger strides from its
  phases (split once); the padding is zero-filled in the columns, not copied into a padded
  image. Most convs of the zoo take this path, dense, grouped and depthwise alike.
- Grouped convolution: one batched matmul over groups, no Python loop over channels.
- Depthwise (one filter per channel) is the grouped case with one output per group: the
  batched matmul (a GEMV per channel) beat a shift-and-accumulate over taps, einsum and
  multiply-and-sum in both layouts (measured on MobileNetV2's and ShuffleNet's shapes).
- Other grouped and depthwise stride-1 2-d convs gather their columns over wide rows
  (see ``wide_rows``); the rest use a strided im2col in tiles of output rows.
Where a padded copy is needed it goes into a planned scratch buffer whose borders are
re-zeroed on every run, because a planned scratch buffer shares memory with other tensors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import auto_pads, conv_out_dim, info
from .registry import Kernel, OpContext, RunFn, register

COL_BUDGET = 2 << 20  # bytes of column buffer per conv (tiles of output rows): L2-sized, as fast as 8 MiB or faster
WIDE_ROWS = True  # stride-1 2-d grouped convs use wide_rows (a switch for A/B timing)
FLAT_TAPS = True  # stride-1 2-d convs with horizontal "same" padding use flat_taps (a switch for A/B timing)
BIND_POINTWISE = True  # static plans bind 1x1 convs to their fixed arrays (a switch for A/B timing)
PAIR_CAST = True  # stride-2 phase splits copy float pairs by a uint64 -> uint32 cast (a switch for A/B timing)
STRIDED_TAPS = True  # flat_taps reads an interior tile's taps as one strided view (a switch for A/B timing)
GROUP_COL_BUDGET = 2 << 20  # grouped/depthwise column block: L2-sized blocks measured fastest


def window_view(
    xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
    out_spatial: Sequence[int],
) -> np.ndarray:
    """View (lead..., k1..kn, o1..on) of the last n axes of ``xp`` as sliding windows."""
    n = len(kernel)
    lead_shape, lead_strides = xp.shape[:-n], xp.strides[:-n]
    sp_strides = xp.strides[-n:]
    shape = tuple(lead_shape) + tuple(kernel) + tuple(out_spatial)
    st = (
        tuple(lead_strides)
        + tuple(s * d for s, d in zip(sp_strides, dilations))
        + tuple(s * t for s, t in zip(sp_strides, strides))
    )
    # Read-only, set after the fact: as_strided(writeable=False) leaves Python blocks behind as it goes
    # (0.03 per call, ~260 after 6,000 calls), which conv-heavy models showed as 1-4 blocks per inference.
    view = as_strided(xp, shape=shape, strides=st)
    view.setflags(write=False)
    return view


def pad_into(x: np.ndarray, xp: np.ndarray, pads: Sequence[int], value: float = 0.0) -> None:
    """Copy ``x`` into the centre of ``xp`` and fill only the border slabs with ``value``."""
    n = len(pads) // 2
    lead = x.ndim - n
    inner = tuple(slice(None) for _ in range(lead)) + tuple(
        slice(pads[i], pads[i] + x.shape[lead + i]) for i in range(n)
    )
    for i in range(n):
        b, e = pads[i], pads[i + n]
        ax = lead + i
        if b:
            idx = [slice(None)] * xp.ndim
            idx[ax] = slice(0, b)
            xp[tuple(idx)] = value
        if e:
            idx = [slice(None)] * xp.ndim
            idx[ax] = slice(xp.shape[ax] - e, None)
            xp[tuple(idx)] = value
    xp[inner] = x


def conv_geometry(
    x: TensorInfo, kernel: Sequence[int], auto_pad: str, dilations: Sequence[int] | None,
    pads: Sequence[int] | None, strides: Sequence[int] | None, ceil_mode: int = 0,
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(strides, dilations, pads, output spatial dims) for a sliding-window op."""
    n = len(kernel)
    spatial = list(x.dims[2:])
    if len(spatial) != n:
        raise ShapeError(f"input of rank {len(x.shape)} does not fit a {n}-d kernel")
    st = list(strides) if strides else [1] * n
    dl = list(dilations) if dilations else [1] * n
    if len(st) != n or len(dl) != n:
        raise ShapeError(f"strides {st} / dilations {dl} must have {n} entries")
    if min(st) < 1 or min(dl) < 1:
        raise ShapeError(f"strides {st} and dilations {dl} must be positive")
    p = auto_pads(auto_pad, spatial, kernel, st, dl, pads)
    out = [conv_out_dim(spatial[i], kernel[i], st[i], dl[i], p[i], p[i + n], bool(ceil_mode)) for i in range(n)]
    return st, dl, p, out


@register("Conv", 1, fusable=True)
def Conv(
    ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None = None, *,
    auto_pad: str = "NOTSET", dilations: list[int] | None = None, group: int = 1,
    kernel_shape: list[int] | None = None, pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Kernel:
    if len(x.shape) < 3 or len(w.shape) != len(x.shape):
        raise ShapeError(f"input {list(x.shape)} and weight {list(w.shape)} ranks do not fit")
    N, C = x.dims[0], x.dims[1]
    M, Cg = w.dims[0], w.dims[1]
    k = list(w.dims[2:])
    if kernel_shape and list(kernel_shape) != k:
        raise ShapeError(f"kernel_shape {kernel_shape} differs from weight shape {k}")
    G = int(group)
    if G < 1 or C != Cg * G or M % G:
        raise ShapeError(f"channels {C} / weight {list(w.shape)} do not fit group={G}")
    if b is not None and tuple(b.shape) != (M,):
        raise ShapeError(f"bias shape {list(b.shape)} should be [{M}]")
    st, dl, p, out_sp = conv_geometry(x, k, auto_pad, dilations, pads, strides)
    n = len(k)
    dtype = x.dtype
    out = info(dtype, [N, M, *out_sp])
    padded = any(p)
    pshape = [N, C] + [x.dims[2 + i] + p[i] + p[i + n] for i in range(n)]
    osz = int(np.prod(out_sp))
    ksz = int(np.prod(k))
    act = ctx.activation
    bias_view = (M,) + (1,) * n

    def epilogue(o: np.ndarray, bias: np.ndarray | None) -> None:
        """Bias (already shaped to broadcast) and the fused activation, in place."""
        if bias is not None:
            np.add(o, bias, out=o)
        if act is not None:
            act(o)

    def finish(ins: Sequence[Any], o: np.ndarray) -> None:
        epilogue(o, ins[2].reshape(bias_view) if len(ins) > 2 and ins[2] is not None else None)

    plan = flat_plan(x.dims, out_sp, k, st, dl, p) if FLAT_TAPS and n == 2 and ksz > 1 else None
    if plan is not None:
        # Stride 1 with horizontal "same" padding reads the unpadded input; larger strides its phases.
        return flat_taps(out, finish, G, M // G, Cg, x.dims, out_sp, k, plan, st)

    scratch: list[TensorInfo] = []
    if padded:
        scratch.append(info(dtype, pshape))

    def source(ins: Sequence[Any], scr: Sequence[np.ndarray]) -> np.ndarray:
        if padded:
            pad_into(ins[0], scr[0], p)
            return scr[0]
        return ins[0]

    pointwise = ksz == 1 and not padded

    if pointwise and all(s == 1 for s in st):
        # Grouped 1x1 (ShuffleNet) too: the input already is the column matrix of every group,
        # so one matmul batched over (image, group) needs no copy and no scratch.
        def run_pointwise(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
            o = outs[0]
            np.matmul(ins[1].reshape(G, M // G, Cg), ins[0].reshape(N, G, Cg, osz),
                      out=o.reshape(N, G, M // G, osz))
            finish(ins, o)

        def bind_pointwise(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> RunFn:
            # Static plans: the reshaped operands and the bias view made once (34 such steps in MobileNetV2).
            x0, o0 = ins[0], outs[0]
            wv, xv, ov = ins[1].reshape(G, M // G, Cg), x0.reshape(N, G, Cg, osz), o0.reshape(N, G, M // G, osz)
            bv = ins[2].reshape(bias_view) if len(ins) > 2 and ins[2] is not None else None

            def run_bound(ins_: Sequence[Any], outs_: Sequence[np.ndarray], scr_: Sequence[np.ndarray]) -> None:
                if ins_[0] is not x0 or outs_[0] is not o0:  # not the arrays it was bound to
                    run_pointwise(ins_, outs_, scr_)
                    return
                np.matmul(wv, xv, out=ov)
                epilogue(o0, bv)

            return run_bound

        return Kernel([out], run_pointwise, bind=bind_pointwise if BIND_POINTWISE else None)

    Kg = Cg * ksz
    Mg = M // G
    # Grouped only: for G == 1 the GEMM dominates and wide rows measured 1-3% slower (DenseNet-121,
    # SqueezeNet, Inception v2), depthwise/grouped models 8-11% faster (MobileNetV2, ShuffleNet).
    if WIDE_ROWS and G > 1 and n == 2 and st == [1, 1]:
        return wide_rows(ctx, out, scratch, source, finish, G, Mg, Cg, pshape, out_sp, k, dl)
    # im2col in tiles of whole output rows (first spatial axis), so the column buffer stays
    # under COL_BUDGET: at 320x320 a 3x3 conv over 128 channels would otherwise need 470 MB.
    rows_total = int(out_sp[0])
    row_px = osz // rows_total if rows_total else 0
    per_row = G * Kg * row_px * dtype.itemsize
    rows = max(1, min(rows_total, COL_BUDGET // max(per_row, 1)))
    scratch.append(info(dtype, [G, Kg, rows * row_px]))
    col_i = len(scratch) - 1
    tiles = [(r, min(r + rows, rows_total)) for r in range(0, rows_total, rows)]

    def run_im2col(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        src = source(ins, scr)
        o = outs[0]
        col = scr[col_i]
        wg = ins[1].reshape(G, Mg, Kg)
        for i in range(N):
            windows = window_view(src[i], k, st, dl, out_sp)  # (C, k..., o...)
            out_i = o[i].reshape(G, Mg, osz)
            for r0, r1 in tiles:
                p = (r1 - r0) * row_px
                chunk = col[:, :, :p] if p != col.shape[2] else col
                np.copyto(chunk.reshape((C,) + tuple(k) + (r1 - r0,) + tuple(out_sp[1:])),
                          windows[(Ellipsis, slice(r0, r1)) + (slice(None),) * (n - 1)])
                # A column block of the row-major output is still a BLAS matrix (ldc = osz).
                np.matmul(wg, chunk, out=out_i[:, :, r0 * row_px:r0 * row_px + p])
        finish(ins, o)

    return Kernel([out], run_im2col, scratch=scratch)


Finish = Callable[[Sequence[Any], np.ndarray], None]


def _matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    np.matmul(a, b, out=out)
Source = Callable[[Sequence[Any], Sequence[np.ndarray]], np.ndarray]


def _float_pairs(x: np.ndarray, start: int, shape: tuple[int, int, int], pitch: tuple[int, int]) -> np.ndarray | None:
    """Every other float32 of ``x`` from element ``start`` on, as uint64 pairs whose low half is it.

    ``shape`` is (channels, rows, columns) and ``pitch`` the element steps of the first two; the
    column step is two floats. None where that does not apply (another dtype, a big-endian
    machine, a non-contiguous ``x``, or a last pair that would end past ``x``'s buffer).
    """
    if x.dtype != np.float32 or not x.flags.c_contiguous or sys.byteorder != "little":
        return None
    c, r, n = shape
    end = 4 * (start + (c - 1) * pitch[0] + (r - 1) * pitch[1] + 2 * (n - 1)) + 8
    if end > x.nbytes:
        return None
    return np.ndarray(shape, np.uint64, buffer=x, offset=4 * start, strides=(4 * pitch[0], 4 * pitch[1], 8))


def _low_halves_into(dst: np.ndarray, pairs: np.ndarray) -> None:
    # A truncating uint64 -> uint32 cast keeps each pair's low half: the even float's bits on a
    # little-endian machine. Contiguous on both sides, 1.4-2x faster than a stride-2 float copy
    # (MobileNetV2's phase splits); bit-exact, NaN payloads included.
    np.copyto(dst, pairs, casting="unsafe")


def wide_rows(
    ctx: OpContext, out: TensorInfo, scratch: list[TensorInfo], source: Source, finish: Finish,
    G: int, Mg: int, Cg: int, pshape: Sequence[int], out_sp: Sequence[int], k: Sequence[int],
    dl: Sequence[int],
) -> Kernel:
    """Stride-1 2-d conv as im2col over *wide rows*: output rows as long as the padded input's.

    With output width Wp instead of Wo, tap (i, j) of every output pixel is one contiguous
    slice of the flattened padded image, at offset i*Wp + j: each im2col copy is a plain
    memcpy-like run per channel instead of a 5-d strided gather whose inner loop is only Wo
    long. The GEMM writes Wp - Wo extra columns per row into a scratch buffer and one strided
    copy keeps the valid ones. Groups are tiled in blocks so column block and wide output stay
    near L2 size (depthwise on MobileNetV2/ShuffleNet shapes: 20-45% faster than one big block).
    """
    dtype = out.dtype
    N, C, Hp, Wp = (int(d) for d in pshape)
    Ho, Wo = (int(d) for d in out_sp)
    Kg = Cg * int(np.prod(k))
    offs = [i * dl[0] * Wp + j * dl[1] for i in range(k[0]) for j in range(k[1])]
    budget = GROUP_COL_BUDGET if G > 1 else COL_BUDGET
    row_bytes = Kg * Wp * dtype.itemsize  # column bytes of one output row of one group
    gb = max(1, min(G, budget // max(row_bytes * Ho, 1)))
    rows = Ho if gb > 1 else max(1, min(Ho, budget // max(row_bytes, 1)))
    col_i = len(scratch)
    scratch = scratch + [info(dtype, [gb, Kg, rows * Wp]), info(dtype, [gb, Mg, rows * Wp])]
    tiles = [(g, min(g + gb, G), r, min(r + rows, Ho)) for g in range(0, G, gb) for r in range(0, Ho, rows)]

    def run_wide(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        src = source(ins, scr)
        o = outs[0]
        col, wide = scr[col_i], scr[col_i + 1]
        wg = ins[1].reshape(G, Mg, Kg)
        for i in range(N):
            xf = src[i].reshape(G, Cg, Hp * Wp)
            og = o[i].reshape(G, Mg, Ho, Wo)
            for g0, g1, r0, r1 in tiles:
                # The last wide row only needs its Wo valid columns: no tap reads past the image.
                ln = (r1 - r0 - 1) * Wp + Wo
                base = r0 * Wp
                c = col[:g1 - g0, :, :ln]
                taps = c.reshape(g1 - g0, Cg, len(offs), ln)
                for t, off in enumerate(offs):
                    np.copyto(taps[:, :, t], xf[g0:g1, :, base + off:base + off + ln])
                w_out = wide[:g1 - g0]
                np.matmul(wg[g0:g1], c, out=w_out[:, :, :ln])
                rows_view = w_out[:, :, :(r1 - r0) * Wp].reshape(g1 - g0, Mg, r1 - r0, Wp)
                np.copyto(og[g0:g1, :, r0:r1], rows_view[..., :Wo])
        finish(ins, o)

    return Kernel([out], run_wide, scratch=scratch)


def flat_plan(
    x_dims: Sequence[int], out_sp: Sequence[int], k: Sequence[int], st: Sequence[int], dl: Sequence[int],
    pads: Sequence[int],
) -> tuple[list[tuple[int, int]], list[int], list[tuple[int, int, tuple[int, ...]]]] | None:
    """How ``flat_taps`` reads a 2-d conv, or None where it cannot.

    Returns (phases, phase_rows, taps): the (row, column) phases of the input to gather (one,
    the input itself, at stride 1), each phase's real row count, and per tap its phase index,
    flat shift and the output columns it must zero. Every phase is stored at the output's row
    pitch ``Wo``; that works when no tap reads a real phase column at or past ``Wo`` (true for
    "same"-style padding), and at stride 1 only when ``Wo == W`` (the input is read in place).
    """
    H, W = int(x_dims[2]), int(x_dims[3])
    Wo = int(out_sp[1])
    sy, sx = int(st[0]), int(st[1])
    if (sy, sx) == (1, 1) and Wo != W:
        return None
    phases: list[tuple[int, int]] = []
    rows: list[int] = []
    taps = []
    for i in range(int(k[0])):
        for j in range(int(k[1])):
            oy, ox = i * dl[0] - pads[0], j * dl[1] - pads[1]
            a, b = oy % sy, ox % sx
            ry, rx = oy // sy, ox // sx
            real_cols = -(-(W - b) // sx) if b < W else 0
            if rx > 0 and real_cols > Wo:
                return None  # would wrap onto real data of the next row
            if (a, b) not in phases:
                phases.append((a, b))
                rows.append(-(-(H - a) // sy) if a < H else 0)
            ok_cols = min(real_cols, Wo)
            bad = tuple(w for w in range(Wo) if not 0 <= w + rx < ok_cols)
            taps.append((phases.index((a, b)), ry * Wo + rx, bad))
    return phases, rows, taps


def flat_taps(
    out: TensorInfo, finish: Finish, G: int, Mg: int, Cg: int, x_dims: Sequence[int], out_sp: Sequence[int],
    k: Sequence[int], plan: tuple[list[tuple[int, int]], list[int], list[tuple[int, int, tuple[int, ...]]]],
    st: Sequence[int],
) -> Kernel:
    """2-d conv whose taps are contiguous runs of a flattened image at the output's row pitch.

    At stride 1 with ``Wo == W`` that image is the *unpadded* input itself: output pixel
    ``p = r*W + w`` of tap (i, j) reads input pixel ``p + s``, ``s = (i*d0 - pad_top)*W +
    (j*d1 - pad_left)``. At stride ``s > 1`` the input is first split once into its phases
    ``x[a::s, b::s]`` (one strided pass, instead of a strided gather per tap), and each tap
    reads one phase at a shift. Where ``p + s`` leaves the image the column is zero (vertical
    padding); where the column leaves the row it would read the neighbouring row, so those
    few columns (1 in Wo for a 3x3) are zeroed too (horizontal padding). The GEMM writes
    straight into the output: no pad buffer, no wide rows to crop. Groups are tiled in
    L2-sized blocks, a plain conv in tiles of output rows.
    """
    phases, phase_rows, taps = plan
    dtype = out.dtype
    N, C, H, W = (int(d) for d in x_dims)
    Ho, Wo = int(out_sp[0]), int(out_sp[1])
    T = int(k[0]) * int(k[1])
    Kg = Cg * T
    strided = tuple(st) != (1, 1)
    pitch = max(phase_rows) * Wo  # one phase of one channel, flattened
    flat_len = [r * Wo for r in phase_rows]
    budget = GROUP_COL_BUDGET if G > 1 else COL_BUDGET
    row_bytes = Kg * Wo * dtype.itemsize  # column bytes of one output row of one group
    gb = max(1, min(G, budget // max(row_bytes * Ho, 1)))
    rows = Ho if gb > 1 else max(1, min(Ho, budget // max(row_bytes, 1)))
    scratch = [info(dtype, [gb, Kg, rows * Wo])]
    if strided:
        scratch.append(info(dtype, [len(phases), G, Cg, pitch]))
    tiles = [(g, min(g + gb, G), r, min(r + rows, Ho)) for g in range(0, G, gb) for r in range(0, Ho, rows)]
    sy, sx = int(st[0]), int(st[1])
    kh, kw = int(k[0]), int(k[1])
    # The columns a tap must zero depend on its kernel column j only: one fill per (j, run of
    # columns) covers every kernel row at once, instead of a strided fill per tap and column.
    fills = []
    for j in range(kw):
        bad = taps[j][2]
        runs = [[w, w + 1] for w in bad]
        merged: list[list[int]] = []
        for r in runs:
            if merged and merged[-1][1] == r[0]:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        fills += [(j, w0, w1) for w0, w1 in merged]

    # Per tile, the integer work of every tap, decided once: (t, lo, hi) runs to zero and
    # (t, phase, lo, hi, src_lo, src_hi) copies. ``plan_image`` then only makes views.
    specs = []
    for g0, g1, r0, r1 in tiles:
        ln, base = (r1 - r0) * Wo, r0 * Wo
        zeros, copies = [], []
        for t, (q, shift, _) in enumerate(taps):
            lo, hi = max(0, -(base + shift)), min(ln, flat_len[q] - base - shift)
            if hi <= lo:
                zeros.append((t, 0, ln))
                continue
            if lo:
                zeros.append((t, 0, lo))
            if hi < ln:
                zeros.append((t, hi, ln))
            copies.append((t, q, lo, hi, base + shift + lo, base + shift + hi))
        # An interior tile of a stride-1 conv (every tap wholly inside the image) reads all
        # its taps as one strided view, tap (i, j) at flat shift i*d0*W + j*d1 past the first:
        # one copy instead of kh*kw (u2netp at 320x320 has ~150 such tiles per 3x3 conv).
        whole = STRIDED_TAPS and not strided and not zeros
        specs.append((g0, g1, r1 - r0, ln, base, zeros, copies, base + taps[0][1] if whole else -1))

    item = dtype.itemsize
    dl0, dl1 = (taps[kw][1] - taps[0][1]) if kh > 1 else 0, (taps[1][1] - taps[0][1]) if kw > 1 else 0
    tap_strides = (Cg * H * W * item, H * W * item, dl0 * item, dl1 * item, item)

    pair_cast = PAIR_CAST and sx == 2

    def sources(x: np.ndarray, scr: Sequence[np.ndarray], ops: list[Any]) -> list[np.ndarray]:
        """Each phase of image ``x`` as (G, Cg, rows * Wo); the phase split is planned into ``ops``."""
        if not strided:
            return [x.reshape(G, Cg, H * W)]
        ph = scr[1]
        for q, (a, b) in enumerate(phases):
            r = phase_rows[q]
            cols = min(-(-(W - b) // sx) if b < W else 0, Wo)
            if r and cols:
                dst = ph[q].reshape(C, pitch)[:, :r * Wo].reshape(C, r, Wo)[:, :, :cols]
                pairs = _float_pairs(x, a * W + b, (C, r, cols), (H * W, sy * W)) if pair_cast else None
                if pairs is not None:
                    ops.append((_low_halves_into, (dst.view(np.uint32), pairs)))
                else:
                    ops.append((np.copyto, (dst, x[:, a::sy, b::sx][:, :r, :cols])))
        return [ph[q] for q in range(len(phases))]

    def plan_image(x: np.ndarray, o: np.ndarray, w: np.ndarray, scr: Sequence[np.ndarray]) -> list[Any]:
        """Every copy, fill and matmul of one image, as (function, args) over fixed views."""
        ops: list[Any] = []
        col = scr[0]
        wg = w.reshape(G, Mg, Kg)
        srcs = sources(x, scr, ops)
        of = o.reshape(G, Mg, Ho * Wo)
        for g0, g1, nr, ln, base, zeros, copies, start in specs:
            c = col[:g1 - g0, :, :ln]
            tv = c.reshape(g1 - g0, Cg, T, ln)
            if start >= 0 and x.flags.c_contiguous:
                # The image's own buffer, so numpy checks the strided view stays inside it.
                taps_view = np.ndarray((g1 - g0, Cg, kh, kw, ln), dtype, buffer=x,
                                       offset=(g0 * Cg * H * W + start) * item, strides=tap_strides)
                ops.append((np.copyto, (tv.reshape(g1 - g0, Cg, kh, kw, ln), taps_view)))
            else:
                ops += [(np.copyto, (tv[:, :, t, lo:hi], 0)) for t, lo, hi in zeros]
                ops += [(np.copyto, (tv[:, :, t, lo:hi], srcs[q][g0:g1, :, a:b]))
                        for t, q, lo, hi, a, b in copies]
            if fills:
                grid = c.reshape(g1 - g0, Cg, kh, kw, nr, Wo)
                ops += [(np.copyto, (grid[:, :, :, j, :, w0:w1], 0)) for j, w0, w1 in fills]
            # A column block of the row-major output is still a BLAS matrix (ldc = Ho*Wo).
            ops.append((_matmul_into, (wg[g0:g1], c, of[g0:g1, :, base:base + ln])))
        return ops

    def run_flat(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        # Dynamic plans: the views are made anew each run (936 per MobileNetV2 inference, 0.67 ms of
        # its ~17); static plans make them once, in bind_flat.
        o = outs[0]
        for n in range(N):
            for fn, args in plan_image(ins[0][n], o[n], ins[1], scr):
                fn(*args)
        finish(ins, o)

    def bind_flat(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> RunFn:
        ops = [op for n in range(N) for op in plan_image(ins[0][n], outs[0][n], ins[1], scr)]
        x0, o0 = ins[0], outs[0]

        def run_bound(ins_: Sequence[Any], outs_: Sequence[np.ndarray], scr_: Sequence[np.ndarray]) -> None:
            if ins_[0] is not x0 or outs_[0] is not o0:  # not the arrays it was bound to
                run_flat(ins_, outs_, scr_)
                return
            for fn, args in ops:
                fn(*args)
            finish(ins_, o0)

        return run_bound

    return Kernel([out], run_flat, scratch=scratch, bind=bind_flat)
