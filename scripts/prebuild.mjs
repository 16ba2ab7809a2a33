#!/usr/bin/env node
// `npm run prebuild`: the prebuilt addon for this platform, made by prebuildify (N-API, stripped,
// tagged glibc/musl) with our cmake-js build standing in for node-gyp, plus a record of the
// libtorch it was built against (prebuilds/<platform>-<arch>/dfkd.json): the install step uses
// the prebuild only with that libtorch version, and builds from source otherwise.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { copyFileSync, existsSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { findLibtorch, ROOT } from "./libtorch.mjs";

const torch = findLibtorch();
const dir = path.join(ROOT, "prebuilds", `${process.platform}-${process.arch}`);
rmSync(dir, { recursive: true, force: true });
// prebuildify moves build/Release/dfkd.node away and strips it, and GNU strip rewrites the file
// in place: a process that has this very file loaded (a test run packing the package) would
// have its code changed under it and crash. Give prebuildify a fresh copy (a new inode) instead.
const addon = path.join(ROOT, "build", "Release", "dfkd.node");
if (existsSync(addon)) {
  copyFileSync(addon, `${addon}.tmp-${process.pid}`);
  renameSync(`${addon}.tmp-${process.pid}`, addon);
}
const require = createRequire(import.meta.url);
const bin = path.join(path.dirname(require.resolve("prebuildify/package.json")), "bin.js");
const r = spawnSync(process.execPath, [bin, "--napi", "--strip", "--tag-libc", "--node-gyp", path.join(ROOT, "scripts", "install.mjs")],
  { cwd: ROOT, stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);
const file = readdirSync(dir).find((f) => f.endsWith(".node"));
// prebuildify moved the checkout's build/Release/dfkd.node there: put it back (stripped, the same
// code), again as a new file rather than written over one that may be loaded.
copyFileSync(path.join(dir, file), `${addon}.tmp-${process.pid}`);
renameSync(`${addon}.tmp-${process.pid}`, addon);
const record = { file, torch: torch.version, cuda: torch.cuda, builtWith: torch.source, node: process.version, date: new Date().toISOString() };
writeFileSync(path.join(dir, "dfkd.json"), JSON.stringify(record, null, 2) + "\n");
console.log(`dfkd: prebuilt ${path.relative(ROOT, path.join(dir, file))} for torch ${torch.version}${torch.cuda ? " (CUDA)" : " (CPU)"}`);
