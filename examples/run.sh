#!/usr/bin/env bash
# The README's main command: on a fresh Debian machine (as root), install kwsgen and its tools, then
# compile the example keyword spotter for the emulated Cortex-M4 board mps2_an386, run it under QEMU
# on a ~25 s stream of spoken keywords and print its detections (see examples/kws_demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if command -v apt-get > /dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        gcc libc6-dev make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm espeak-ng sox > /dev/null
fi
python3 -m pip install -q -e .

python3 examples/kws_demo.py "$@"
