"""Command line: `kwsgen inspect | run | compile | verify | boards | features | detect`.

Every user error becomes one line on stderr and a non-zero exit (2 for bad input, 1 for a failed
verification, 3 for a missing tool); a traceback would be a kwsgen bug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from .errors import KwsgenError
from .fixedpoint import Rounding

EXIT_USAGE = 2
EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise KwsgenError(f"{message} (see `{self.prog} --help`)")


def _load(path: str, rounding: str = "double"):
    from .legalize import load_model

    return load_model(path, Rounding(rounding))


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise KwsgenError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as e:
        raise KwsgenError(f"{path}: not a readable .npy file ({e})") from None


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import format_table, to_json

    model = _load(args.model)
    print(to_json(model) if args.json else format_table(model))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .interpreter import run

    model = _load(args.model, args.rounding)
    inputs = [_load_npy(p) for p in args.input]
    outputs = run(model, inputs).outputs
    out_paths = args.output
    if len(out_paths) != len(outputs):
        raise KwsgenError(f"model has {len(outputs)} output(s), {len(out_paths)} --output given")
    for path, value in zip(out_paths, outputs):
        try:
            np.save(path, value)
        except OSError as e:
            raise KwsgenError(f"{path}: cannot write ({e.strerror})") from None
    return 0


def _cmsis_path(arg: str | None) -> Path | None:
    value = arg or os.environ.get("CMSIS_NN_PATH")
    return Path(value) if value else None


def cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import compile_model

    report = compile_model(
        Path(args.model), board=args.board, out_dir=Path(args.output), kernels=args.kernels, force=args.force,
        cmsis_nn=_cmsis_path(args.cmsis_nn), rounding=Rounding(args.rounding), alignment=args.alignment,
        frontend=args.frontend, labels=args.labels, audio=Path(args.audio) if args.audio else None,
    )
    print(f"wrote {args.output}: arena {report['arena_bytes']:,} B (lower bound {report['arena_lower_bound_bytes']:,} B), "
          f"weights {report['weights_bytes']:,} B, {len(report['layers'])} layers, kernels {report['kernels']}, board {report['board']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .compiler import verify_model

    given = _load_npy(args.input) if args.input else None
    result = verify_model(
        Path(args.model), board=args.board, kernels=args.kernels, n=args.n, given=given,
        cmsis_nn=_cmsis_path(args.cmsis_nn), rounding=Rounding(args.rounding), sanitize=args.sanitize,
    )
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        verdict = "bit-exact" if result.ok else f"MISMATCH in {result.mismatching_inputs} input(s), {result.mismatches} element(s)"
        line = f"{result.board} / {result.kernels}: {result.inputs} inputs, {verdict}"
        if result.first_bad_layer:
            line += f"; first differing layer: {result.first_bad_layer}"
        if result.instructions_per_inference is not None:
            line += f"; {result.instructions_per_inference:,} instructions/inference"
        if result.flash_bytes is not None:
            line += f"; flash {result.flash_bytes:,} B, RAM {result.ram_bytes:,} B"
        print(line)
    return 0 if result.ok else 1


def cmd_boards(args: argparse.Namespace) -> int:
    from .targets import boards_report

    print(boards_report(args.json))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .frontend.api import compute_features

    feats = compute_features(Path(args.audio), args.frontend, model_path=Path(args.model) if args.model else None, board=args.board)
    try:
        np.save(args.output, feats)
    except OSError as e:
        raise KwsgenError(f"{args.output}: cannot write ({e.strerror})") from None
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from .detect import detect_cli

    return detect_cli(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kwsgen", description="Compile int8 keyword-spotting TFLite models into C for Cortex-M.")
    p.add_argument("--version", action="version", version=f"kwsgen {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def model_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("model", help="int8 .tflite model")

    def rounding_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--rounding", choices=[r.value for r in Rounding], default="double",
                        help="requantization rounding: TFLM's default double rounding, or single rounding")

    sp = sub.add_parser("inspect", help="per-layer table of a model")
    model_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("run", help="run the reference interpreter on a batch of inputs")
    model_arg(sp)
    sp.add_argument("--input", action="append", required=True, help="IN.npy of shape [N, *input_shape] (repeat per input)")
    sp.add_argument("--output", action="append", required=True, help="OUT.npy to write (repeat per output)")
    rounding_arg(sp)
    sp.set_defaults(func=cmd_run)

    def target_args(sp: argparse.ArgumentParser, default_board: str | None) -> None:
        sp.add_argument("--board", default=default_board, required=default_board is None, help="target board (see `kwsgen boards`)")
        sp.add_argument("--kernels", choices=["portable", "cmsis-nn"], default=None,
                        help="kernel backend (default: cmsis-nn on Arm boards, portable on the host)")
        sp.add_argument("--cmsis-nn", metavar="DIR", help="CMSIS-NN v7.0.0 source tree (default: $CMSIS_NN_PATH)")
        rounding_arg(sp)

    sp = sub.add_parser("compile", help="generate the C library / project for a board")
    model_arg(sp)
    target_args(sp, None)
    sp.add_argument("-o", "--output", required=True, help="output directory")
    sp.add_argument("--force", action="store_true", help="replace a non-empty directory kwsgen did not make")
    sp.add_argument("--alignment", type=int, default=16, help="arena buffer alignment in bytes (power of two)")
    sp.add_argument("--frontend", help="audio front-end preset: builds the complete keyword-spotting firmware")
    sp.add_argument("--labels", help="comma-separated class labels, in output order")
    sp.add_argument("--audio", help="emulated boards: a WAV stream to put in the project as audio.wav")
    sp.set_defaults(func=cmd_compile)

    sp = sub.add_parser("verify", help="build the generated C and compare it bit for bit with the reference")
    model_arg(sp)
    target_args(sp, "host")
    sp.add_argument("-n", type=int, default=100, help="number of random inputs (default 100)")
    sp.add_argument("--input", help="extra inputs IN.npy [N, *input_shape] in the model's input dtype")
    sp.add_argument("--sanitize", action="store_true", help="host only: build with ASan and UBSan")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.set_defaults(func=cmd_verify)

    sp = sub.add_parser("boards", help="list the target boards")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_boards)

    sp = sub.add_parser("features", help="compute the device's exact audio features of a WAV file")
    sp.add_argument("audio")
    sp.add_argument("--frontend", required=True, help="front-end preset (e.g. ds-cnn-mfcc) or a config file")
    sp.add_argument("--model", help="quantize into this model's int8 input scale/zero point")
    sp.add_argument("--board", default=None, help="compute with the generated C: host or an emulated board")
    sp.add_argument("-o", "--output", required=True)
    sp.set_defaults(func=cmd_features)

    sp = sub.add_parser("detect", help="run the streaming keyword spotter over a WAV file; JSON lines")
    model_arg(sp)
    sp.add_argument("audio")
    sp.add_argument("--frontend", required=True)
    sp.add_argument("--labels", required=True, help="comma-separated class labels, in output order")
    sp.add_argument("--board", default=None, help="run the generated firmware: host or an emulated board")
    sp.add_argument("--kernels", choices=["portable", "cmsis-nn"], default=None)
    sp.add_argument("--cmsis-nn", metavar="DIR")
    sp.add_argument("--every", dest="every_hops", type=int, metavar="N", help="infer every N hops (default 2)")
    sp.add_argument("--window-ms", dest="average_window_ms", type=int, metavar="MS",
                    help="score averaging window (default 1000)")
    sp.add_argument("--threshold", type=int, help="averaged score 0..255 a detection must exceed (default 120)")
    sp.add_argument("--suppression-ms", type=int, metavar="MS", help="no repeat of a label within MS (default 1500)")
    sp.add_argument("--min-count", dest="minimum_count", type=int, metavar="N",
                    help="results needed in the window before detecting (default 3)")
    sp.add_argument("--ignore", metavar="LABELS",
                    help="comma-separated labels never reported (default silence,unknown,_silence_,_unknown_,_background_noise_)")
    rounding_arg(sp)
    sp.set_defaults(func=cmd_detect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except KwsgenError as e:
        print(f"kwsgen: error: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("kwsgen: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a kwsgen bug: still one line, with what to report
        print(f"kwsgen: internal error: {type(e).__name__}: {' '.join(str(e).split())} (please report this)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
