"""Expected failures of ONNX node conformance cases for the NN kernels: case name -> reason.

The Resize, Upsample and Pad cases feed scales/sizes/pads/axes as graph inputs, so the
output shape depends on input data, which static planning does not support.
``tests/ops/test_resize.py`` and ``tests/ops/test_pad.py`` run the same cases with
those inputs frozen as initializers, so their numbers are still checked.
"""

from onnx.backend.test.case.node import collect_testcases

_TRAINING = "BatchNormalization training_mode=1 is not supported: the runtime does inference only"
_DATA_SHAPE = "output shape depends on a graph input ({}), and data-dependent shapes are not supported"

_NAMES = [c.name for c in collect_testcases(None)]

XFAIL: dict[str, str] = {
    "test_batchnorm_epsilon_training_mode": _TRAINING,
    "test_batchnorm_example_training_mode": _TRAINING,
    "test_upsample_nearest": _DATA_SHAPE.format("Upsample scales"),
    **{n: _DATA_SHAPE.format("Resize scales/sizes") for n in _NAMES
       if n.startswith("test_resize_") and not n.endswith("_expanded")},
    **{n: _DATA_SHAPE.format("Pad pads/axes") for n in _NAMES
       if n in ("test_constant_pad", "test_constant_pad_axes", "test_constant_pad_negative_axes",
                "test_edge_pad", "test_reflect_pad", "test_wrap_pad")},
    **{n: _DATA_SHAPE.format("CenterCropPad shape, through Pad") for n in _NAMES
       if n.startswith("test_center_crop_pad_") and n.endswith("_expanded")},
}
