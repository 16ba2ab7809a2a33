#!/usr/bin/env bash
# The CUDA configuration, verified without a GPU: builds the addon against the CUDA 13 build of
# torch (torch==2.14.1 with its nvidia-* wheels, about 5 GB, installed once into
# .libtorch/cuda-torch or taken from $DFKD_CUDA_TORCH), in a clean clone of this checkout's HEAD
# so the checkout's own build stays as it is; checks that it loads and reports no CUDA on a
# machine without a GPU, with the GPU-only code (CUDA graphs) compiled in; then runs the whole test
# suite against that libtorch on the CPU.
# About 15-25 minutes on 2 cores (a full build, then the suite). Not part of `npm test`.
#
# Usage: bash scripts/cuda_build_check.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TORCH_DIR=${DFKD_CUDA_TORCH:-$ROOT/.libtorch/cuda-torch}
# The CUDA C runtime's and CCCL's headers (crt/, nv/), which pip's CUDA wheels leave out and the
# CUDA-graph path includes (CMakeLists.txt): a few MB, into the same nvidia/cu13 folder.
HEADERS="nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85"
if [ ! -f "$TORCH_DIR/torch/share/cmake/Torch/TorchConfig.cmake" ]; then
  echo "cuda_build_check: installing torch==2.14.1 (CUDA 13) into $TORCH_DIR"
  python3 -m pip install --disable-pip-version-check -q --target "$TORCH_DIR" torch==2.14.1 $HEADERS
elif [ ! -f "$TORCH_DIR/nvidia/cu13/include/crt/host_config.h" ] || [ ! -e "$TORCH_DIR/nvidia/cu13/include/nv/target" ]; then
  echo "cuda_build_check: adding the CUDA C runtime and CCCL headers to $TORCH_DIR/nvidia/cu13/include"
  HDR=$(mktemp -d)
  python3 -m pip install --disable-pip-version-check -q --no-deps --target "$HDR" $HEADERS
  cp -rn "$HDR/nvidia/cu13/include/." "$TORCH_DIR/nvidia/cu13/include/"
  rm -rf "$HDR"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone -q "$ROOT" "$WORK/dfkd"
cd "$WORK/dfkd"
export LIBTORCH=$TORCH_DIR/torch PYTHONPATH=$TORCH_DIR
npm ci --ignore-scripts --no-audit --no-fund --prefer-offline >/dev/null
node scripts/install.mjs
npx tsc -p tsconfig.json
node --input-type=module -e "
import { runtime } from './dist/index.js';
const r = runtime();
console.log('cuda_build_check: runtime', JSON.stringify(r));
if (!r.torch.startsWith('2.14')) { console.error('cuda_build_check: expected torch 2.14.x'); process.exit(1); }
if (!r.cudaGraphs) { console.error('cuda_build_check: the CUDA-graph path was not compiled in'); process.exit(1); }
"
npm test
