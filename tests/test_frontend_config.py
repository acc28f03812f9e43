"""Front-end configuration: presets, user configs, and one-line errors for every invalid field."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kwsgen.errors import KwsgenError
from kwsgen.frontend.config import PRESETS, ConfigError, FrontendConfig, frames_in, load_config_file, resolve_config


def test_ds_cnn_preset_matches_the_arm_models():
    c = PRESETS["ds-cnn-mfcc"]
    assert (c.sample_rate, c.window_length, c.stride, c.fft_size, c.num_bins) == (16000, 640, 320, 1024, 513)
    assert (c.num_channels, c.lower_frequency, c.upper_frequency, c.num_coefficients) == (40, 20.0, 4000.0, 10)
    assert (c.window, c.filterbank_input, c.log_floor) == ("hann", "magnitude", 1e-12)
    assert (c.num_frames, c.num_features) == (49, 490)


def test_micronet_preset_differs_only_in_upper_frequency():
    a, b = PRESETS["ds-cnn-mfcc"], PRESETS["micronet-mfcc"]
    assert b.upper_frequency == 7600.0
    assert replace(b, name=a.name, upper_frequency=a.upper_frequency) == a


def test_frames_follow_tf_framing():
    c = PRESETS["ds-cnn-mfcc"]
    assert [frames_in(n, c) for n in (0, 639, 640, 959, 960, 16000, 16319)] == [0, 0, 1, 1, 2, 49, 49]


@pytest.mark.parametrize("field, value, words", [
    ("sample_rate", 0, "sample_rate must be positive"),
    ("window_length", 1, "window_length must be at least 2"),
    ("window_length", 640.0, "window_length must be an integer"),
    ("stride", 0, "stride must be positive"),
    ("window", "kaiser", "window must be one of hann, hamming"),
    ("fft_length", 600, "fft_length must be a power of two"),
    ("fft_length", 512, "fft_length (512) must be >= window_length (640)"),
    ("filterbank_input", "log", "filterbank_input must be one of magnitude, power"),
    ("num_channels", 0, "num_channels must be positive"),
    ("num_coefficients", 41, "num_coefficients must be between 1 and num_channels (40)"),
    ("lower_frequency", -1.0, "lower_frequency must be >= 0"),
    ("upper_frequency", 10.0, "upper_frequency (10.0) must be greater than lower_frequency"),
    ("upper_frequency", 9000.0, "must not exceed the Nyquist frequency"),
    ("upper_frequency", float("nan"), "upper_frequency must be a finite number"),
    ("log_floor", 0.0, "log_floor must be in (0, 1)"),
    ("clip_samples", 100, "clip_samples (100) must hold at least one window"),
    ("default_input_scale", -1.0, "default_input_scale must be positive"),
    ("default_input_zero_point", 200, "default_input_zero_point must be in -128..127"),
    ("num_channels", 200, "mel channel(s) 0, 2, 4, 6, 8, 10, ... (22 in all) get less than half an FFT bin"),
])
def test_invalid_fields_are_one_line_errors(field, value, words):
    with pytest.raises(ConfigError) as info:
        replace(PRESETS["ds-cnn-mfcc"], **{field: value})
    assert words in str(info.value)
    assert isinstance(info.value, KwsgenError) and "\n" not in info.value.one_line()


def test_toml_and_json_files(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text('[frontend]\npreset = "ds-cnn-mfcc"\nnum_coefficients = 13\nupper_frequency = 6000.0\n')
    cfg = load_config_file(toml)
    assert (cfg.name, cfg.num_coefficients, cfg.upper_frequency, cfg.window_length) == ("mine", 13, 6000.0, 640)
    js = tmp_path / "other.json"
    js.write_text(json.dumps({"window_length": 480, "stride": 160, "num_channels": 32}))
    cfg = resolve_config(str(js))
    assert (cfg.name, cfg.fft_size, cfg.num_frames) == ("other", 512, 98)


@pytest.mark.parametrize("text, suffix, words", [
    ('num_chanels = 3\n', ".toml", "unknown field(s) num_chanels"),
    ('num_channels = "forty"\n', ".toml", "num_channels must be an integer"),
    ('preset = "nope"\n', ".toml", "unknown front-end preset 'nope'"),
    ("num_channels = \n", ".toml", "invalid TOML"),
    ("[1, 2]", ".json", "must be a table/object"),
    ("{", ".json", "invalid JSON"),
    ("x", ".yaml", "must end in .toml or .json"),
])
def test_bad_files(tmp_path, text, suffix, words):
    path = tmp_path / f"cfg{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_config_file(path)


def test_resolve_presets_mappings_and_overrides(tmp_path):
    assert resolve_config("ds-cnn-mfcc") is PRESETS["ds-cnn-mfcc"]
    assert resolve_config({"preset": "micronet-mfcc"}).upper_frequency == 7600.0
    c = resolve_config("ds-cnn-mfcc", num_coefficients=12)
    assert (c.num_coefficients, c.name) == (12, "ds-cnn-mfcc+custom")
    assert resolve_config(FrontendConfig(stride=160)).num_frames == 97
    with pytest.raises(ConfigError, match="no such front-end preset or config file"):
        resolve_config(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="unknown front-end preset 'mfcc'"):
        resolve_config("mfcc")


def test_configs_are_hashable_values():
    assert hash(FrontendConfig()) == hash(FrontendConfig())
    assert {PRESETS["ds-cnn-mfcc"]: 1}[FrontendConfig(name="ds-cnn-mfcc")] == 1
