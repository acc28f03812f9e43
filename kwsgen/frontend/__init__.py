"""The audio front end: configuration, TF-faithful float reference, fixed-point twin, C generator.

    config     FrontendConfig, presets ("ds-cnn-mfcc", "micronet-mfcc"), user configs
    reference  mfcc_float: TensorFlow's AudioSpectrogram + Mfcc in NumPy (the fidelity yardstick)
    fixed      mfcc_int8 / FrontendStream: the device's integer MFCC, bit-exact with the C
    codegen    render_frontend: kws_frontend.h/.c from Jinja2 templates
    api        compute_features: `kwsgen features` (twin, host C, or QEMU)

Training pipelines should call `mfcc_int8` so the model learns exactly the device's features.
"""

from .api import compute_features, model_input_quant, read_wav
from .codegen import Quantization, render_frontend
from .config import PRESETS, FrontendConfig, frames_in, load_config_file, preset, resolve_config
from .fixed import FrontendStream, make_tables, mfcc_int8, stream_frames
from .reference import mfcc_float, quantize_float

__all__ = [
    "PRESETS", "FrontendConfig", "FrontendStream", "Quantization", "compute_features", "frames_in", "load_config_file",
    "make_tables", "mfcc_float", "mfcc_int8", "model_input_quant", "preset", "quantize_float", "read_wav", "render_frontend",
    "resolve_config", "stream_frames",
]
