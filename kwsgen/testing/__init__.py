"""Test support: a TensorFlow-free TFLite model builder and the TFLM oracle wrapper.

Shipped inside the package (not under tests/) so benchmarks, property tests and fuzzers share one
implementation. Importing `kwsgen.testing.oracle` needs the `tflite-micro` test extra; the builder
needs only the runtime dependencies.
"""

from .builder import (
    ABSENT,
    OpSpec,
    TensorSpec,
    build_model,
    const_int8,
    const_int32,
    const_spec,
    conv_output_size,
    float_spec,
    int8_spec,
    option_fields,
    options_table,
    single_op_model,
)

__all__ = [
    "ABSENT",
    "OpSpec",
    "TensorSpec",
    "build_model",
    "const_int8",
    "const_int32",
    "const_spec",
    "conv_output_size",
    "float_spec",
    "int8_spec",
    "option_fields",
    "options_table",
    "single_op_model",
]
