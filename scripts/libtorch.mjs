// libtorch discovery, in the order DESIGN.md documents:
//   1. LIBTORCH (an unpacked libtorch, or a torch package folder)
//   2. the Python torch that `python3` imports (torch.utils.cmake_prefix_path)
//   3. system libtorch (Debian's libtorch-dev: /usr/lib/*/cmake/Torch)
//   4. the pinned CPU wheel, installed by pip into a project-local folder (.libtorch/python)
//
// How the addon finds libtorch at load time, without LD_LIBRARY_PATH: its RUNPATH is
// `$ORIGIN/../../.libtorch/lib` (the same from build/Release/ and from prebuilds/<platform>/),
// and `.libtorch/lib` is a symbolic link, made at install time, to the lib folder of the
// libtorch chosen here. A prebuilt addon and a source build load the same way.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const LOCAL_DIR = path.join(ROOT, ".libtorch");
export const LOCAL_PY = path.join(LOCAL_DIR, "python");
/** The link the addon's RUNPATH points at (see above). */
export const TORCH_LINK = path.join(LOCAL_DIR, "lib");
/** The fallback: explicitly the CPU build, so pip can never pick a multi-GB CUDA wheel. */
export const PINNED_TORCH = "torch==2.13.0+cpu";
const CPU_INDEX = "https://download.pytorch.org/whl/cpu";

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

/** libtorch's version ("2.13.0") from its CMake package files. */
export function torchVersion(torchDir) {
  try {
    const m = /PACKAGE_VERSION\s+"([^"]+)"/.exec(readFileSync(path.join(torchDir, "TorchConfigVersion.cmake"), "utf8"));
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

/** The folder holding libc10.so / libtorch_cpu.so for a Torch CMake folder. */
export function torchLibDir(torchDir) {
  for (const up of ["../../../lib", "../..", "../../lib"]) {
    const dir = path.resolve(torchDir, up);
    if (existsSync(path.join(dir, "libc10.so")) || existsSync(path.join(dir, "libtorch_cpu.so"))) return dir;
  }
  return null;
}

/** Whether that libtorch is a CUDA build (it ships libtorch_cuda.so). */
export const torchHasCuda = (torchDir) => {
  const lib = torchLibDir(torchDir);
  return !!lib && existsSync(path.join(lib, "libtorch_cuda.so"));
};

const found = (torchDir, source) => ({ torchDir, source, version: torchVersion(torchDir), libDir: torchLibDir(torchDir), cuda: torchHasCuda(torchDir) });

/** Returns { torchDir, source, version, libDir, cuda } or throws an Error whose message names the fix. */
export function findLibtorch({ allowInstall = true, log = console.log } = {}) {
  if (process.env.LIBTORCH) {
    const dir = torchDirUnder(process.env.LIBTORCH);
    if (!dir) throw new Error(`LIBTORCH=${process.env.LIBTORCH} holds no share/cmake/Torch/TorchConfig.cmake; ` +
      "point it at an unpacked libtorch or at a torch package folder (.../site-packages/torch)");
    return found(dir, "LIBTORCH");
  }
  if (!process.env.DFKD_IGNORE_PYTHON_TORCH) {
    const dir = fromPython();
    if (dir) return found(dir, "python3's torch");
  }
  const sys = fromSystem();
  if (sys) return found(sys, "system libtorch");
  const local = fromPython(LOCAL_PY);
  if (local && local.startsWith(ROOT)) return found(local, `project-local ${PINNED_TORCH}`);
  if (!allowInstall) throw new Error("no libtorch found (LIBTORCH unset, python3 has no torch, no system libtorch-dev)");

  log(`dfkd: no libtorch found (LIBTORCH unset, python3 has no torch, no system libtorch-dev).\n` +
    `dfkd: installing the pinned CPU wheel (${PINNED_TORCH}, about 900 MB) into ${LOCAL_PY} ...\n` +
    `dfkd: to use another libtorch (e.g. a CUDA build on a GPU server), set LIBTORCH=/path/to/libtorch ` +
    `(or a torch package folder) and run 'npm rebuild dfkd'.`);
  const pip = (extra) => spawnSync(python(), ["-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
    "--target", LOCAL_PY, ...extra, PINNED_TORCH], { stdio: "inherit" });
  // First as pip is configured (a local wheel or a mirror may hold it); then from PyTorch's CPU
  // index, which is where the +cpu builds live (PyPI's torch for Linux is the CUDA build).
  let r = pip([]);
  if (!r.error && r.status !== 0) r = pip(["--extra-index-url", CPU_INDEX]);
  if (r.error || r.status !== 0) {
    throw new Error(`could not install ${PINNED_TORCH} with '${python()} -m pip' ` +
      `(${r.error ? r.error.message : "exit " + r.status}). Fix: install Python 3 with pip, ` +
      `or download libtorch and set LIBTORCH=/path/to/libtorch, then run 'npm rebuild dfkd'.`);
  }
  const dir = fromPython(LOCAL_PY);
  if (!dir) throw new Error(`installed ${PINNED_TORCH} into ${LOCAL_PY} but found no TorchConfig.cmake in it`);
  return found(dir, `project-local ${PINNED_TORCH} (just installed)`);
}

/** Points .libtorch/lib (the addon's RUNPATH) at `libDir`; atomic, so a loading process never sees it missing. */
export function linkLibtorch(libDir) {
  mkdirSync(LOCAL_DIR, { recursive: true });
  try {
    if (lstatSync(TORCH_LINK).isSymbolicLink() && readlinkSync(TORCH_LINK) === libDir) return;
  } catch { /* no link yet */ }
  const tmp = `${TORCH_LINK}.tmp-${process.pid}`;
  try { unlinkSync(tmp); } catch { /* none */ }
  symlinkSync(libDir, tmp);
  renameSync(tmp, TORCH_LINK);
}

/** PYTHONPATH that makes `import torch` work for our Python scripts (fixtures, references). */
export function pythonEnv() {
  const env = { ...process.env };
  if (existsSync(LOCAL_PY)) env.PYTHONPATH = [LOCAL_PY, env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  return env;
}

/**
 * CMake definitions for a CUDA torch from pip (torch==2.14.1 with its nvidia-* wheels): Torch's
 * CMake files look for a CUDA toolkit (FindCUDA: find_library(cudart) under the toolkit root),
 * and the wheels ship its headers and libraries under site-packages/nvidia/cu13 with versioned
 * names only (libcudart.so.13). So a toolkit root is laid out in .libtorch/cuda: include/ links
 * to the wheel's, lib/ links to each of its libraries plus the unversioned names. No nvcc is
 * needed, and the user's site-packages is not written to. Empty for a CPU torch, or where a
 * CUDA toolkit is given (CUDA_HOME, CUDAToolkit_ROOT).
 */
export function cudaDefines(torch) {
  if (!torch.cuda || process.env.CUDA_HOME || process.env.CUDAToolkit_ROOT) return [];
  const cu = ["cu13", "cu12"].map((v) => path.resolve(torch.libDir, "..", "..", "nvidia", v)).find((d) => existsSync(path.join(d, "include")));
  if (!cu) return [];
  const root = path.join(LOCAL_DIR, "cuda");
  rmSync(root, { recursive: true, force: true });
  mkdirSync(path.join(root, "lib"), { recursive: true });
  symlinkSync(path.join(cu, "include"), path.join(root, "include"));
  for (const f of readdirSync(path.join(cu, "lib"))) {
    symlinkSync(path.join(cu, "lib", f), path.join(root, "lib", f));
    const m = /^(lib[\w-]+)\.so\.\d+$/.exec(f);  // libcudart.so.13 -> libcudart.so
    if (m && !existsSync(path.join(root, "lib", `${m[1]}.so`))) symlinkSync(path.join(cu, "lib", f), path.join(root, "lib", `${m[1]}.so`));
  }
  // dfkd compiles no CUDA kernels: name the architectures instead of letting Torch's CMake
  // compile and run a probe program to detect the GPUs (which needs nvcc, and a GPU).
  const arch = process.env.TORCH_CUDA_ARCH_LIST || "8.0;9.0";
  // DFKD_CUDA_INCLUDE: the wheels' headers go first on the include path (CMakeLists.txt), so that
  // a partial system toolkit found through an nvcc on PATH (Torch's CMake prefers it) cannot
  // shadow them: the headers then match the libraries the addon links.
  return [`--CDCUDA_TOOLKIT_ROOT_DIR=${root}`, `--CDCUDAToolkit_ROOT=${root}`, `--CDCUDA_INCLUDE_DIRS=${path.join(root, "include")}`,
    `--CDDFKD_CUDA_INCLUDE=${path.join(root, "include")}`, `--CDTORCH_CUDA_ARCH_LIST=${arch}`];
}

/** Runs cmake-js, found by module resolution (npm hoists it; pnpm and yarn lay it out their own way). */
export function cmakeJs(args, torch) {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("cmake-js/package.json");
  const bin = path.join(path.dirname(pkg), JSON.parse(readFileSync(pkg, "utf8")).bin["cmake-js"]);
  const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(Math.max(1, (globalThis.navigator?.hardwareConcurrency) || 2));
  execFileSync(process.execPath, [bin, ...args, `--CDTorch_DIR=${torch.torchDir}`, ...cudaDefines(torch), "--parallel", jobs], {
    cwd: ROOT, stdio: "inherit",
  });
}
