"""Train the example's DS-CNN on the synthesised data set and convert it to a full-int8 .tflite.

The float model trains on the data set's int8 features dequantized with the model's input
quantization (common.py), i.e. on exactly the values the device's front end produces. The
converter calibrates the input tensor from the representative data; one of its samples has a
feature pinned at int8 127 (no clip reaches it), so the calibrated range is exactly
[-128, 127] x scale around the zero point and the converted model's input quantization equals
the front end's. The script checks this after conversion and fails if it does not hold.

Conversion runs in a subprocess (TensorFlow's converter can crash the process on some graphs).

    python examples/kws_example/train.py [--epochs 30]     # writes kws_ds_cnn.tflite and labels.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (FRONTEND, INPUT_SCALE, INPUT_ZERO_POINT, LABELS, LABELS_PATH, MODEL_PATH, cache_dir,  # noqa: E402
                    dequantize)

SEED = 7
FILTERS = 64
REPRESENTATIVE = 400  # calibration samples for the int8 converter


def build_model(batch_size: int | None, dropout: float = 0.2):
    """Arm's DS-CNN S: conv 10x4 stride 2, four depthwise-separable 3x3 blocks, 64 channels, average pool, dense.

    batch_size=1 for conversion: with a free batch, Flatten lowers to SHAPE/STRIDED_SLICE/PACK/RESHAPE."""
    from tensorflow import keras
    from tensorflow.keras import layers

    x = inp = keras.Input(shape=(FRONTEND.num_frames, FRONTEND.num_coefficients, 1), batch_size=batch_size, name="mfcc")
    x = layers.Conv2D(FILTERS, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(FILTERS, (1, 1), use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Dropout(dropout)(x)
    x = layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(len(LABELS))(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="kws_ds_cnn")


def load_split(data_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = data_dir / f"{name}.npz"
    if not path.exists():
        sys.exit(f"{path}: missing; run make_dataset.py first")
    d = np.load(path)
    return d["features"], d["labels"].astype(np.int64)


def representative_set(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A label-stratified calibration set as float model inputs, with one value pinned at int8 127.

    The pinned value is the loudest clip's c0 raised from its maximum (about 125) to 127, so the
    calibrated input range becomes exactly the front end's while the sample stays speech-like."""
    rng = np.random.default_rng(SEED)
    per = REPRESENTATIVE // len(LABELS)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per, replace=False) for c in range(len(LABELS))])
    idx = np.append(idx, np.flatnonzero(labels == 0)[np.argmin(features[labels == 0].min(axis=(1, 2)))])  # has -128
    q = features[idx].copy()
    loud = int(np.argmax(q.reshape(len(q), -1).max(axis=1)))
    frame = int(np.argmax(q[loud, :, 0]))
    q[loud, frame, 0] = 127
    assert q.min() == -128 and q.max() == 127, (q.min(), q.max())
    return dequantize(q)[..., None]


def train(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    xq, y = load_split(args.data, "train")
    vq, vy = load_split(args.data, "val")
    x, v = dequantize(xq)[..., None], dequantize(vq)[..., None]
    model = build_model(None)
    steps = args.epochs * int(np.ceil(len(x) / args.batch))
    lr = tf.keras.optimizers.schedules.CosineDecay(args.lr, steps, alpha=0.02)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.time()
    hist = model.fit(x, y, batch_size=args.batch, epochs=args.epochs, validation_data=(v, vy), shuffle=True, verbose=2)
    seconds = time.time() - t0
    args.work.mkdir(parents=True, exist_ok=True)
    weights = args.work / "kws_ds_cnn.weights.h5"
    model.save_weights(weights)
    np.save(args.work / "representative.npy", representative_set(xq, y))
    tq, ty = load_split(args.data, "test")
    probs = model.predict(dequantize(tq)[..., None], batch_size=256, verbose=0)
    np.save(args.work / "float_test_probs.npy", probs.astype(np.float32))
    return {"train_seconds": round(seconds, 1), "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
            "params": int(model.count_params()), "val_accuracy": float(hist.history["val_accuracy"][-1]),
            "train_accuracy": float(hist.history["accuracy"][-1]),
            "float_test_accuracy": float(np.mean(probs.argmax(axis=1) == ty))}


def convert(weights: Path, representative: Path, out: Path) -> None:
    """Subprocess entry: batch-1 model with the trained weights -> full int8 TFLite (int8 in and out)."""
    import tensorflow as tf

    model = build_model(1)
    model.load_weights(weights)
    rep = np.load(representative)

    def samples():
        for r in rep:
            yield [r[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out.write_bytes(conv.convert())


def check_input_quantization(path: Path) -> None:
    """The converted model must quantize its input exactly as the front end does (see module docstring)."""
    from kwsgen.frontend import model_input_quant

    q = model_input_quant(path, FRONTEND)
    if q.zero_point != INPUT_ZERO_POINT or np.float32(q.scale) != np.float32(INPUT_SCALE):
        sys.exit(f"{path}: converted input quantization (scale {q.scale!r}, zero point {q.zero_point}) differs from the "
                 f"front end's (scale {INPUT_SCALE!r}, zero point {INPUT_ZERO_POINT}); training and device features would differ")
    print(f"input quantization: scale {q.scale!r}, zero point {q.zero_point} (same as the features trained on)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=cache_dir(), help="data set directory (default: %(default)s)")
    ap.add_argument("--work", type=Path, default=cache_dir() / "train", help="training artefacts (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=MODEL_PATH, help="the .tflite to write (default: the committed model)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--convert", nargs=3, type=Path, metavar=("WEIGHTS", "REPRESENTATIVE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.convert:
        convert(*args.convert)
        return 0
    info = train(args)
    t0 = time.time()
    tmp = args.work / "kws_ds_cnn.tflite"
    proc = subprocess.run([sys.executable, __file__, "--convert", str(args.work / "kws_ds_cnn.weights.h5"),
                           str(args.work / "representative.npy"), str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.exists():
        sys.exit(f"int8 conversion failed (exit {proc.returncode}): {proc.stderr[-3000:]}")
    info["convert_seconds"] = round(time.time() - t0, 1)
    check_input_quantization(tmp)
    args.out.write_bytes(tmp.read_bytes())
    LABELS_PATH.write_text("\n".join(LABELS) + "\n")
    info["model_bytes"] = args.out.stat().st_size
    info["model_sha256"] = hashlib.sha256(args.out.read_bytes()).hexdigest()  # ties float_test_probs.npy to this model
    (args.work / "train.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))
    print(f"wrote {args.out} ({info['model_bytes']} bytes) and {LABELS_PATH}")
    return 0


if __name__ == "__main__":
    from kwsgen.errors import KwsgenError

    try:
        sys.exit(main())
    except KwsgenError as e:
        sys.exit(f"train: {e.one_line()}")
