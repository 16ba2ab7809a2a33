#!/usr/bin/env bash
# GPU check (issue 7), for a machine with an NVIDIA GPU and Python torch with CUDA:
#   1. builds the addon against that CUDA libtorch (LIBTORCH = the torch package folder),
#   2. runs the test suite with DFKD_DEVICE=cuda (the default device of every job),
#   3. runs DeepInversion and adversarial distillation of a CIFAR-sized ResNet teacher on the GPU
#      and prints a table of throughput and wall time.
# Needs Node >= 18 on PATH (carry a Node build to the device machine if it has none).
# Usage: bash scripts/gpu_check.sh [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}
mkdir -p "$OUT"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA in this torch'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
export LIBTORCH=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))")
[ -d node_modules ] || npm install --ignore-scripts --no-audit --no-fund
node scripts/install.mjs --force
npx tsc -p tsconfig.json
node scripts/python.mjs scripts/make_fixtures.py
node -e "const a=require('./build/Release/dfkd.node'); const r=a.runtime(); console.log(r); if(!r.cuda) process.exit(3)"
DFKD_DEVICE=cuda npx vitest run 2>&1 | tee "$OUT/tests.log" || true
node --input-type=module -e "
import { distill } from './dist/index.js';
const rows = [];
for (const [method, extra] of [['deepinversion', { synth: { rounds: 4, iterations: 200, batchSize: 256, bn: 10 }, train: { stepsPerRound: 100, batchSize: 256 } }],
                               ['adversarial', { adversarial: { epochs: 2, itersPerEpoch: 50, batchSize: 256 }, train: { batchSize: 256 } }]]) {
  const t0 = Date.now();
  let thr = {};
  const r = await distill({ teacher: 'test/fixtures/resnet_scripted.pt', student: 'resnet8', method, device: 'cuda', outDir: '$OUT/' + method, ...extra })
    .on('progress', (e) => { thr[e.phase] = e.throughput; });
  rows.push({ method, wall_s: ((Date.now() - t0) / 1000).toFixed(1), ...Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k + '_s', v.toFixed(2)])), ...Object.fromEntries(Object.entries(thr).map(([k, v]) => [k + '_per_s', Math.round(v)])) });
}
console.table(rows);
" | tee "$OUT/table.txt"
