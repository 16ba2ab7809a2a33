#!/usr/bin/env node
// `npm install` hook. Finds libtorch (scripts/libtorch.mjs), links it where the addon's RUNPATH
// looks (.libtorch/lib), then:
//   - uses the prebuilt addon (prebuilds/<platform>-<arch>/) when it was built against the same
//     libtorch version and loads: no compiler, no cmake, seconds;
//   - otherwise builds the addon from source with cmake-js (offline: Node's headers come from
//     the node-api-headers package, package.json "binary"), a few minutes on 2 cores.
// Installed as a dependency, a source build leaves only build/Release/dfkd.node behind.
//
//   node scripts/install.mjs            as above
//   node scripts/install.mjs --force    always build from source (npm run build:native)
//   node scripts/install.mjs --link     only (re)link libtorch (the loader's repair step)
//   node scripts/install.mjs rebuild ...  prebuildify's node-gyp call (scripts/prebuild.mjs)
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { findLibtorch, linkLibtorch, cmakeJs, ROOT } from "./libtorch.mjs";

const args = process.argv.slice(2);
const asNodeGyp = args[0] === "rebuild";  // called by prebuildify: an incremental build is enough
const force = args.includes("--force");
const linkOnly = args.includes("--link");
const addon = path.join(ROOT, "build", "Release", "dfkd.node");
const asDependency = ROOT.split(path.sep).includes("node_modules");

if (process.env.DFKD_SKIP_BUILD && !linkOnly) process.exit(0);

/** The prebuilt addon for this platform and its record ({ torch: "2.13.0", ... }), if any. */
function prebuild() {
  const dir = path.join(ROOT, "prebuilds", `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return null;
  const file = readdirSync(dir).find((f) => f.endsWith(".node"));
  if (!file) return null;
  let record = {};
  try { record = JSON.parse(readFileSync(path.join(dir, "dfkd.json"), "utf8")); } catch { /* unrecorded */ }
  return { file: path.join(dir, file), record };
}

/** Loads the addon in a child process (a failed dlopen must not take this one down). */
function loads(file) {
  const r = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(file)}).runtime()`], { encoding: "utf8" });
  return r.status === 0 ? null : (r.stderr.split("\n").find((l) => /Error|error/.test(l)) || `exit ${r.status}`).trim();
}

const base = (v) => (v || "").split("+")[0];

try {
  // Linking at load time (src/native.ts) never downloads a torch: that is for an install step.
  const torch = findLibtorch({ allowInstall: !linkOnly });
  if (!torch.libDir) throw new Error(`found libtorch at ${torch.torchDir} but no lib folder with libc10.so beside it`);
  linkLibtorch(torch.libDir);
  const what = `${torch.source} (torch ${torch.version ?? "?"}${torch.cuda ? ", CUDA" : ", CPU"}): ${torch.libDir}`;
  if (linkOnly) {
    console.log(`dfkd: linked ${what}`);
    process.exit(0);
  }
  // A checkout builds from source (its sources may be newer than a prebuild it packed earlier).
  const pre = asDependency || process.env.DFKD_USE_PREBUILD ? prebuild() : null;
  if (!force && !asNodeGyp && pre && !existsSync(addon)) {
    if (base(pre.record.torch) !== base(torch.version)) {
      console.log(`dfkd: the prebuilt addon is for torch ${pre.record.torch ?? "?"}, this libtorch is ${torch.version}: building from source`);
    } else {
      const err = loads(pre.file);
      if (!err) {
        console.log(`dfkd: using the prebuilt addon with ${what}`);
        process.exit(0);
      }
      console.log(`dfkd: the prebuilt addon does not load with this libtorch (${err}): building from source`);
    }
  }
  console.log(`dfkd: building the addon from source against ${what} (a few minutes; npm shows this output with --foreground-scripts)`);
  // "build" configures when needed and recompiles only what changed; --force starts clean.
  cmakeJs([force ? "rebuild" : "build"], torch);
  // A dependency keeps the addon, not the build tree (objects and a precompiled header: ~700 MB).
  if (asDependency && !asNodeGyp) {
    for (const entry of readdirSync(path.join(ROOT, "build"))) {
      if (entry !== "Release") rmSync(path.join(ROOT, "build", entry), { recursive: true, force: true });
    }
    for (const entry of readdirSync(path.join(ROOT, "build", "Release"))) {
      if (entry !== "dfkd.node") rmSync(path.join(ROOT, "build", "Release", entry), { recursive: true, force: true });
    }
  }
} catch (e) {
  console.error(`\ndfkd: install failed: ${e.message}`);
  process.exit(1);
}
