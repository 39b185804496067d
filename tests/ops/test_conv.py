"""Conv against onnxruntime: plain, padded, strided, dilated, grouped, depthwise, 1x1, fused."""

from __future__ import annotations

import numpy as np
import pytest

from .oracle import assert_matches, node_model

RNG = np.random.default_rng(0)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "c,m,k,attrs",
    [
        (3, 8, 3, {}),
        (3, 8, 3, {"pads": [1, 1, 1, 1]}),
        (4, 6, 3, {"pads": [0, 1, 2, 1], "strides": [2, 1]}),
        (4, 6, 3, {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
        (4, 6, 3, {"group": 2, "pads": [1, 1, 1, 1]}),
        (6, 6, 3, {"group": 6, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
        (6, 12, 3, {"group": 6}),
        (8, 4, 1, {}),
        (8, 4, 1, {"strides": [2, 2]}),
        (3, 5, 3, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        (3, 5, 2, {"auto_pad": "SAME_LOWER"}),
    ],
)
@pytest.mark.parametrize("batch", [1, 2])
def test_conv2d(c: int, m: int, k: int, attrs: dict, batch: int) -> None:
    group = attrs.get("group", 1)
    x, w, b = _rand(batch, c, 9, 10), _rand(m, c // group, k, k), _rand(m)
    model = node_model("Conv", {"x": x}, initializers={"w": w, "b": b}, **attrs)
    assert_matches(model, {"x": x})


def test_conv1d_and_3d() -> None:
    x, w = _rand(1, 3, 12), _rand(4, 3, 3)
    assert_matches(node_model("Conv", {"x": x}, initializers={"w": w}, pads=[1, 1]), {"x": x})
    x3, w3 = _rand(1, 2, 5, 6, 7), _rand(3, 2, 3, 3, 3)
    assert_matches(node_model("Conv", {"x": x3}, initializers={"w": w3}, strides=[1, 2, 1]), {"x": x3})


@pytest.mark.parametrize("attrs", [{"pads": [1, 1, 1, 1]}, {"strides": [2, 1], "group": 2}, {"dilations": [2, 2]}])
def test_conv_im2col_tiles_match_untiled(monkeypatch, attrs: dict) -> None:
    """A tiny column budget forces uneven row tiles; results must not change."""
    from runtime.ops import conv

    monkeypatch.setattr(conv, "COL_BUDGET", 3 * 4 * 18 * 11)  # a few output rows per tile
    group = attrs.get("group", 1)
    x, w = _rand(2, 4, 13, 11), _rand(6, 4 // group, 3, 3)
    model = node_model("Conv", {"x": x}, initializers={"w": w}, **attrs)
    assert_matches(model, {"x": x})


def test_conv3d_tiles(monkeypatch) -> None:
    from runtime.ops import conv

    monkeypatch.setattr(conv, "COL_BUDGET", 1)  # one output row per tile
    x3, w3 = _rand(1, 2, 5, 6, 7), _rand(3, 2, 3, 3, 3)
    assert_matches(node_model("Conv", {"x": x3}, initializers={"w": w3}, pads=[1] * 6), {"x": x3})


@pytest.mark.parametrize(
    "shape,w_shape,attrs",
    [
        ((1, 4, 9, 10), (6, 4, 3, 3), {"pads": [2, 0, 0, 2]}),  # taps shifted right only, rows cut below
        ((2, 4, 9, 10), (6, 2, 3, 3), {"pads": [1, 2, 1, 2], "dilations": [1, 2], "group": 2}),
        ((1, 3, 8, 9), (5, 3, 1, 7), {"pads": [0, 3, 0, 3]}),
        ((1, 3, 8, 9), (5, 3, 7, 1), {"pads": [3, 0, 3, 0]}),
        ((1, 2, 3, 3), (4, 2, 5, 5), {"pads": [2, 2, 2, 2]}),  # kernel wider than the image
        ((1, 2, 2, 2), (2, 2, 5, 5), {"pads": [4, 2, 0, 2]}),  # taps entirely outside the image
        ((1, 8, 6, 7), (8, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 8}),
        ((2, 6, 9, 10), (6, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 6, "strides": [2, 2]}),  # phases
        ((1, 6, 9, 10), (6, 1, 3, 3), {"pads": [0, 0, 1, 1], "group": 6, "strides": [2, 2]}),  # SAME_UPPER
        ((1, 3, 16, 15), (4, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),  # a ResNet stem
        ((1, 4, 11, 13), (6, 4, 3, 3), {"pads": [1, 2, 1, 2], "strides": [3, 3], "dilations": [1, 2]}),
        ((1, 4, 9, 10), (6, 4, 3, 3), {"pads": [0, 1, 2, 1], "strides": [2, 1]}),
    ],
)
def test_conv_flat_taps_zero_the_padding(monkeypatch, shape, w_shape, attrs) -> None:
    """Stride-1 convs with horizontal "same" padding read the unpadded image (``flat_taps``)."""
    from runtime.ops import conv

    built = []
    real = conv.flat_taps
    monkeypatch.setattr(conv, "flat_taps", lambda *a, **kw: built.append(1) or real(*a, **kw))
    x, w, b = _rand(*shape), _rand(*w_shape), _rand(w_shape[0])
    model = node_model("Conv", {"x": x}, initializers={"w": w, "b": b}, **attrs)
    assert_matches(model, {"x": x})
    assert built, "the flat-taps kernel was not the one built"


def test_conv_flat_plan_refuses_taps_that_would_wrap_onto_data() -> None:
    from runtime.ops.conv import flat_plan

    # Stride 2, no padding, W=10: Wo=4, but phase 0 has 5 real columns and tap j=2 reads column w+1.
    assert flat_plan((1, 1, 9, 10), (4, 4), (3, 3), (2, 2), (1, 1), (0, 0, 0, 0)) is None
    assert flat_plan((1, 1, 9, 10), (9, 8), (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)) is None  # Wo != W at stride 1
    phases, rows, taps = flat_plan((1, 1, 8, 8), (4, 4), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    assert sorted(phases) == [(0, 0), (0, 1), (1, 0), (1, 1)] and rows == [4, 4, 4, 4]
    assert taps[0] == (phases.index((1, 1)), -4 - 1, (0,))  # reads row r-1, column w-1: column 0 is padding
    x, w = _rand(1, 2, 9, 10), _rand(3, 2, 3, 3)  # the refused shape still runs (strided im2col)
    assert_matches(node_model("Conv", {"x": x}, initializers={"w": w}, strides=[2, 2]), {"x": x})


@pytest.mark.parametrize("group", [1, 4])
def test_conv_flat_taps_tiles_match_untiled(monkeypatch, group: int) -> None:
    from runtime.ops import conv

    monkeypatch.setattr(conv, "COL_BUDGET", 4 * 9 * 11 * 3)  # three output rows per tile
    monkeypatch.setattr(conv, "GROUP_COL_BUDGET", 9 * 11 * 13 * 4)  # one group per block
    x, w = _rand(2, 4, 13, 11), _rand(8, 4 // group, 3, 3)
    model = node_model("Conv", {"x": x}, initializers={"w": w}, pads=[1, 1, 1, 1], group=group)
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("mode", ["arena", "reduce"])
@pytest.mark.parametrize("k,attrs", [(3, {"pads": [1, 1, 1, 1]}), (3, {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
                                     (3, {"pads": [3, 1, 3, 1], "dilations": [3, 1]}), (5, {"pads": [2, 2, 2, 2]}),
                                     (3, {"pads": [0, 1, 2, 1]})])
def test_conv_interior_tiles_copy_every_tap_at_once(monkeypatch, mode: str, k: int, attrs: dict) -> None:
    """Tiles with every tap inside the image read them as one strided view: fewer copies, same bits."""
    import runtime as rt
    from runtime.ops import conv

    monkeypatch.setattr(conv, "COL_BUDGET", 4 * 25 * 11 * 2)  # two output rows per tile: interior tiles
    x, w, b = _rand(1, 4, 16, 11), _rand(5, 4, k, k), _rand(5)
    model = node_model("Conv", {"x": x}, initializers={"w": w, "b": b}, **attrs)
    calls = []
    real_copyto = np.copyto
    monkeypatch.setattr(np, "copyto", lambda *a, **kw: calls.append(1) or real_copyto(*a, **kw))
    counts, outs = [], []
    for strided_taps in (True, False):
        monkeypatch.setattr(conv, "STRIDED_TAPS", strided_taps)
        req = rt.Core().compile_model(model, memory_mode=mode).create_infer_request()
        req.infer({"x": x})
        calls.clear()
        outs.append(req.infer({"x": x})["y"].copy())
        counts.append(len(calls))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert counts[0] < counts[1], f"no tile took the one-copy path: {counts[0]} vs {counts[1]} copies"
    assert_matches(model, {"x": x})


def test_conv_bound_steps_fall_back_when_handed_other_arrays() -> None:
    """A static plan's bound Conv step precomputes views; called with other arrays it must still be right."""
    import runtime as rt

    x, w = _rand(1, 4, 9, 10), _rand(6, 4, 3, 3)
    model = node_model("Conv", {"x": x}, initializers={"w": w}, pads=[1, 1, 1, 1])
    req = rt.Core().compile_model(model, memory_mode="arena").create_infer_request()
    want = req.infer({"x": x})["y"].copy()
    (run, ins, outs, scr), = [s for s in req._bound.steps]
    x2 = _rand(1, 4, 9, 10)
    o2 = np.empty_like(outs[0])
    run([x2, ins[1]], [o2], scr)  # other arrays: the generic path
    fresh = rt.Core().compile_model(model, memory_mode="reduce").infer({"x": x2})["y"]
    np.testing.assert_array_equal(o2, fresh)
    outs[0][...] = 0
    run(ins, outs, scr)  # its own arrays again: the bound path, still reading the bound input
    np.testing.assert_array_equal(outs[0], want)


def test_phase_split_by_pair_cast_is_bit_exact_and_stays_in_the_buffer() -> None:
    """Stride-2 phase splits read float pairs as uint64 and keep the low half: the same bits as a
    strided copy (NaN payloads too), and never a pair that ends past the image's buffer."""
    from runtime.ops.conv import _float_pairs, _low_halves_into

    x = _rand(3, 7, 9)  # odd width: the last pair of a row reads the next row's first float
    x.view(np.uint32)[0, 0, 2] = 0x7FC0_1234  # a NaN with a payload
    for a, b in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        rows, cols = len(range(a, 7, 2)), len(range(b, 9, 2))
        pairs = _float_pairs(x, a * 9 + b, (3, rows, cols), (63, 18))
        want = x[:, a::2, b::2]
        if pairs is None:  # only where the very last pair would end past the buffer
            assert 4 * ((2 * 63) + (rows - 1) * 18 + a * 9 + b + 2 * (cols - 1)) + 8 > x.nbytes
            continue
        got = np.empty((3, rows, cols), np.float32)
        _low_halves_into(got.view(np.uint32), pairs)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert _float_pairs(x, 0, (3, 4, 5), (63, 18)) is None  # ends on x's last float: its pair would pass it
    assert _float_pairs(x, 0, (3, 3, 4), (63, 18)) is not None
    assert _float_pairs(x.astype(np.float64), 0, (3, 3, 4), (63, 18)) is None
    assert _float_pairs(np.asfortranarray(x), 0, (3, 3, 4), (63, 18)) is None


@pytest.mark.parametrize("mode", ["arena", "reduce"])
@pytest.mark.parametrize("shape", [(1, 3, 16, 15), (2, 5, 9, 10), (1, 4, 7, 7)])
def test_stride2_convs_match_with_and_without_the_pair_cast(monkeypatch, mode: str, shape: tuple) -> None:
    import runtime as rt
    from runtime.ops import conv

    x, w = _rand(*shape), _rand(4, shape[1], 3, 3)
    model = node_model("Conv", {"x": x}, initializers={"w": w}, pads=[1, 1, 1, 1], strides=[2, 2])
    outs = []
    for flag in (True, False):
        monkeypatch.setattr(conv, "PAIR_CAST", flag)
        outs.append(rt.Core().compile_model(model, memory_mode=mode).infer({"x": x})["y"].copy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("group", [1, 2])
def test_bound_pointwise_conv_matches_and_falls_back(group: int) -> None:
    """A static plan's 1x1 Conv binds its reshaped operands and bias once; other arrays take ``run``."""
    import runtime as rt

    x, w, b = _rand(1, 4, 5, 6), _rand(6, 4 // group, 1, 1), _rand(6)
    model = node_model("Conv", {"x": x}, initializers={"w": w, "b": b}, group=group)
    req = rt.Core().compile_model(model, memory_mode="arena").create_infer_request()
    got = req.infer({"x": x})["y"].copy()
    np.testing.assert_array_equal(got, rt.Core().compile_model(model, memory_mode="reduce").infer({"x": x})["y"])
    assert_matches(model, {"x": x})
    (run, ins, outs, scr), = req._bound.steps
    x2, o2 = _rand(1, 4, 5, 6), np.empty_like(outs[0])
    run([x2, *ins[1:]], [o2], scr)
    np.testing.assert_array_equal(o2, rt.Core().compile_model(model, memory_mode="reduce").infer({"x": x2})["y"])
