"""Front-end configuration: what the model was trained on, as one frozen value.

A KWS model only works on the features it was trained with, so the front end is a configuration,
not a fixed function. The field names follow TensorFlow's `AudioSpectrogram` + `Mfcc` ops, whose
semantics `reference.py` reproduces in float and `fixed.py` in integers. Presets name the
settings of published models; users can pass their own (keyword arguments, a mapping, or a
TOML/JSON file). Every invalid setting is a one-line `KwsgenError` naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import KwsgenError

WINDOWS = ("hann", "hamming")
FILTERBANK_INPUTS = ("magnitude", "power")
MAX_FFT_LENGTH = 4096  # keeps the generated tables and the device's scratch small

# The Arm DS-CNN models' int8 input quantization (identical in ds_cnn_s/m/l). It was calibrated
# on this very MFCC and spans its whole range, including the digital-silence floor c0 = -247.
DS_CNN_INPUT_SCALE = 1.0809112787246704
DS_CNN_INPUT_ZERO_POINT = 101


class ConfigError(KwsgenError):
    """An invalid front-end configuration."""


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class FrontendConfig:
    """MFCC settings with TensorFlow's meaning (AudioSpectrogram + Mfcc).

    `filterbank_input="magnitude"` is TF's `Mfcc` (it takes the square root of the power
    spectrogram before the mel triangles); "power" sums the power spectrum instead.
    `default_input_scale/zero_point` quantize the features when no model is given.
    """

    name: str = "custom"
    sample_rate: int = 16000
    window_length: int = 640
    stride: int = 320
    window: str = "hann"  # periodic, as TF's AudioSpectrogram
    fft_length: int | None = None  # None: next power of two >= window_length (TF's choice)
    filterbank_input: str = "magnitude"
    num_channels: int = 40
    lower_frequency: float = 20.0
    upper_frequency: float = 4000.0
    num_coefficients: int = 10
    log_floor: float = 1e-12
    clip_samples: int = 16000  # the model's input window: frames = (clip - window) // stride + 1
    default_input_scale: float = DS_CNN_INPUT_SCALE
    default_input_zero_point: int = DS_CNN_INPUT_ZERO_POINT

    def __post_init__(self) -> None:
        validate(self)

    @property
    def fft_size(self) -> int:
        return self.fft_length if self.fft_length is not None else next_power_of_two(self.window_length)

    @property
    def num_bins(self) -> int:
        return self.fft_size // 2 + 1

    @property
    def num_frames(self) -> int:
        """Frames in one model input (49 for 1 s at 16 kHz, window 640, stride 320)."""
        return frames_in(self.clip_samples, self)

    @property
    def num_features(self) -> int:
        return self.num_frames * self.num_coefficients

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frames_in(num_samples: int, cfg: FrontendConfig) -> int:
    """TF's AudioSpectrogram frame count: no padding at either end."""
    return 0 if num_samples < cfg.window_length else (num_samples - cfg.window_length) // cfg.stride + 1


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"front-end config: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def validate(c: FrontendConfig) -> None:
    """Reject settings TF would reject, settings whose mel bands get no FFT bins, and sizes the device cannot hold."""
    for f in ("sample_rate", "window_length", "stride", "num_channels", "num_coefficients", "clip_samples", "default_input_zero_point"):
        _require(_is_int(getattr(c, f)), f"{f} must be an integer, got {getattr(c, f)!r}")
    for f in ("lower_frequency", "upper_frequency", "log_floor", "default_input_scale"):
        _require(_is_num(getattr(c, f)), f"{f} must be a finite number, got {getattr(c, f)!r}")
    _require(isinstance(c.name, str) and c.name != "", "name must be a non-empty string")
    _require(c.sample_rate > 0, f"sample_rate must be positive, got {c.sample_rate}")
    _require(c.window_length >= 2, f"window_length must be at least 2, got {c.window_length}")
    _require(c.stride >= 1, f"stride must be positive, got {c.stride}")
    _require(c.window in WINDOWS, f"window must be one of {', '.join(WINDOWS)}, got {c.window!r}")
    _require(c.filterbank_input in FILTERBANK_INPUTS, f"filterbank_input must be one of {', '.join(FILTERBANK_INPUTS)}, got {c.filterbank_input!r}")
    if c.fft_length is not None:
        _require(_is_int(c.fft_length), f"fft_length must be an integer, got {c.fft_length!r}")
        _require(c.fft_length >= 4 and c.fft_length & (c.fft_length - 1) == 0, f"fft_length must be a power of two >= 4, got {c.fft_length}")
        _require(c.fft_length >= c.window_length, f"fft_length ({c.fft_length}) must be >= window_length ({c.window_length})")
    _require(4 <= c.fft_size <= MAX_FFT_LENGTH, f"FFT length {c.fft_size} outside 4..{MAX_FFT_LENGTH} (window_length {c.window_length})")
    _require(c.num_channels >= 1, f"num_channels must be positive, got {c.num_channels}")
    _require(1 <= c.num_coefficients <= c.num_channels,
             f"num_coefficients must be between 1 and num_channels ({c.num_channels}), got {c.num_coefficients}")
    _require(c.lower_frequency >= 0, f"lower_frequency must be >= 0, got {c.lower_frequency}")
    _require(c.upper_frequency > c.lower_frequency,
             f"upper_frequency ({c.upper_frequency}) must be greater than lower_frequency ({c.lower_frequency})")
    _require(c.upper_frequency <= c.sample_rate / 2, f"upper_frequency ({c.upper_frequency}) must not exceed the Nyquist frequency ({c.sample_rate / 2})")
    _require(0 < c.log_floor < 1, f"log_floor must be in (0, 1), got {c.log_floor}")
    _require(c.clip_samples >= c.window_length, f"clip_samples ({c.clip_samples}) must hold at least one window ({c.window_length})")
    _require(c.default_input_scale > 0, f"default_input_scale must be positive, got {c.default_input_scale}")
    _require(-128 <= c.default_input_zero_point <= 127, f"default_input_zero_point must be in -128..127, got {c.default_input_zero_point}")
    from .reference import empty_channels  # late import: reference needs this module

    empty = empty_channels(c)
    shown = ", ".join(map(str, empty[:6])) + (f", ... ({len(empty)} in all)" if len(empty) > 6 else "")
    _require(not empty, f"mel channel(s) {shown} get less than half an FFT bin of weight: "
                        f"too many channels ({c.num_channels}) for FFT length {c.fft_size} between "
                        f"{c.lower_frequency:g} and {c.upper_frequency:g} Hz")


PRESETS: dict[str, FrontendConfig] = {
    # Arm ML-examples DS-CNN (tflu-kws-cortex-m): TF AudioSpectrogram(640, 320, magnitude_squared) + Mfcc(20-4000 Hz, 40 ch, 10 coeffs)
    "ds-cnn-mfcc": FrontendConfig(name="ds-cnn-mfcc"),
    # Arm's MicroNet KWS models: same but 20-7600 Hz
    "micronet-mfcc": FrontendConfig(name="micronet-mfcc", upper_frequency=7600.0),
}


def preset(name: str) -> FrontendConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown front-end preset {name!r} (presets: {', '.join(sorted(PRESETS))}; or give a .toml/.json config file)") from None


_FIELDS = {f.name for f in fields(FrontendConfig)}


def from_mapping(values: Mapping[str, Any], base: FrontendConfig | None = None) -> FrontendConfig:
    """A config from a mapping; key `preset` picks the base, other keys override its fields."""
    values = dict(values)
    if "preset" in values:
        base = preset(str(values.pop("preset")))
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ConfigError(f"front-end config: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS | {'preset'}))})")
    if base is None:
        base = FrontendConfig()
        values.setdefault("name", "custom")
    elif "name" not in values:
        values["name"] = base.name if not values else f"{base.name}+custom"
    return replace(base, **values)


def _parse_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such front-end preset or config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read front-end config ({e})") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ConfigError(f"{path}: TOML configs need Python 3.11 or newer; use JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from None
        data = data.get("frontend", data)  # allow a [frontend] table
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: invalid JSON ({e})") from None
    else:
        raise ConfigError(f"{path}: front-end config files must end in .toml or .json")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: front-end config must be a table/object of fields")
    return data


def load_config_file(path: str | Path) -> FrontendConfig:
    path = Path(path)
    data = dict(_parse_file(path))
    data.setdefault("name", path.stem)
    return from_mapping(data)


def resolve_config(spec: str | Path | FrontendConfig | Mapping[str, Any], **overrides: Any) -> FrontendConfig:
    """A preset name, a config file, a mapping or a config, plus keyword overrides."""
    if isinstance(spec, FrontendConfig):
        cfg = spec
    elif isinstance(spec, Mapping):
        cfg = from_mapping(spec)
    elif isinstance(spec, str) and spec in PRESETS:
        cfg = PRESETS[spec]
    elif isinstance(spec, (str, Path)) and (Path(spec).suffix.lower() in (".toml", ".json")):
        cfg = load_config_file(spec)
    elif isinstance(spec, str):
        cfg = preset(spec)
    else:
        raise ConfigError(f"front-end config must be a preset name, a file, a mapping or a FrontendConfig, got {type(spec).__name__}")
    return from_mapping(overrides, base=cfg) if overrides else cfg
