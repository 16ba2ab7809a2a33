// libtorch discovery, in the order DESIGN.md documents:
//   1. LIBTORCH (an unpacked libtorch, or a torch package folder)
//   2. the Python torch that `python3` imports (torch.utils.cmake_prefix_path)
//   3. system libtorch (Debian's libtorch-dev: /usr/lib/*/cmake/Torch)
//   4. the pinned CPU wheel, installed by pip into a project-local folder (.libtorch/)
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const LOCAL_PY = path.join(ROOT, ".libtorch", "python");
export const PINNED_TORCH = "torch==2.13.0";

const torchDirUnder = (prefix) => {
  for (const rel of ["share/cmake/Torch", "Torch", "cmake/Torch", "torch/share/cmake/Torch"]) {
    const dir = path.join(prefix, rel);
    if (existsSync(path.join(dir, "TorchConfig.cmake"))) return dir;
  }
  return null;
};

const python = () => process.env.PYTHON || "python3";

function fromPython(extraPath) {
  const env = { ...process.env };
  if (extraPath) env.PYTHONPATH = [extraPath, env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  const r = spawnSync(python(), ["-c", "import torch.utils; print(torch.utils.cmake_prefix_path)"], {
    env, encoding: "utf8",
  });
  if (r.status !== 0) return null;
  return torchDirUnder(r.stdout.trim());
}

function fromSystem() {
  for (const base of ["/usr/lib", "/usr/local/lib", "/usr/lib64"]) {
    if (!existsSync(base)) continue;
    const cands = [path.join(base, "cmake", "Torch")];
    for (const d of readdirSync(base)) cands.push(path.join(base, d, "cmake", "Torch"));
    for (const c of cands) if (existsSync(path.join(c, "TorchConfig.cmake"))) return c;
  }
  return null;
}

/** Returns { torchDir, source } or throws an Error whose message names the fix. */
export function findLibtorch({ allowInstall = true, log = console.log } = {}) {
  if (process.env.LIBTORCH) {
    const dir = torchDirUnder(process.env.LIBTORCH);
    if (!dir) throw new Error(`LIBTORCH=${process.env.LIBTORCH} holds no share/cmake/Torch/TorchConfig.cmake; ` +
      "point it at an unpacked libtorch or at a torch package folder (.../site-packages/torch)");
    return { torchDir: dir, source: "LIBTORCH" };
  }
  if (!process.env.DFKD_IGNORE_PYTHON_TORCH) {
    const dir = fromPython();
    if (dir) return { torchDir: dir, source: "python3's torch" };
  }
  const sys = fromSystem();
  if (sys) return { torchDir: sys, source: "system libtorch" };
  const local = fromPython(LOCAL_PY);
  if (local && local.startsWith(ROOT)) return { torchDir: local, source: `project-local ${PINNED_TORCH}` };
  if (!allowInstall) throw new Error("no libtorch found");

  log(`dfkd: no libtorch found (LIBTORCH unset, python3 has no torch, no system libtorch-dev).\n` +
    `dfkd: installing the pinned CPU wheel (${PINNED_TORCH}) into ${LOCAL_PY} ...\n` +
    `dfkd: to use another libtorch (e.g. a CUDA build on a GPU server), set LIBTORCH=/path/to/libtorch ` +
    `and run 'npm run build:native'.`);
  const pip = spawnSync(python(), ["-m", "pip", "install", "--disable-pip-version-check", "--target", LOCAL_PY,
    PINNED_TORCH], { stdio: "inherit" });
  if (pip.error || pip.status !== 0) {
    throw new Error(`could not install ${PINNED_TORCH} with '${python()} -m pip' ` +
      `(${pip.error ? pip.error.message : "exit " + pip.status}). Fix: install Python 3 with pip, ` +
      `or download libtorch and set LIBTORCH=/path/to/libtorch, then run 'npm run build:native'.`);
  }
  const dir = fromPython(LOCAL_PY);
  if (!dir) throw new Error(`installed ${PINNED_TORCH} into ${LOCAL_PY} but found no TorchConfig.cmake in it`);
  return { torchDir: dir, source: `project-local ${PINNED_TORCH} (just installed)` };
}

/** PYTHONPATH that makes `import torch` work for our Python scripts (fixtures, references). */
export function pythonEnv() {
  const env = { ...process.env };
  if (existsSync(LOCAL_PY)) env.PYTHONPATH = [LOCAL_PY, env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  return env;
}

export function cmakeJs(args, torchDir) {
  const bin = path.join(ROOT, "node_modules", "cmake-js", "bin", "cmake-js");
  const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(Math.max(1, (globalThis.navigator?.hardwareConcurrency) || 2));
  execFileSync(process.execPath, [bin, ...args, `--CDTorch_DIR=${torchDir}`, "--parallel", jobs], {
    cwd: ROOT, stdio: "inherit",
  });
}
