#!/usr/bin/env node
// `npm install` hook: find libtorch (see scripts/libtorch.mjs) and build the addon with cmake-js.
// Offline: cmake-js takes Node's headers from the node-api-headers package (package.json "binary").
// Also the build command of `npm run prebuild`: prebuildify calls it as node-gyp would
// ("rebuild --target=..."), then copies build/Release/dfkd.node to prebuilds/<platform>-<arch>/.
import { findLibtorch, cmakeJs, ROOT } from "./libtorch.mjs";
import { existsSync } from "node:fs";
import path from "node:path";

if (process.env.DFKD_SKIP_BUILD) process.exit(0);
const force = process.argv.includes("--force") || process.argv.includes("rebuild");
const addon = path.join(ROOT, "build", "Release", "dfkd.node");
try {
  const { torchDir, source } = findLibtorch();
  console.log(`dfkd: building the addon against ${source}: ${torchDir}`);
  cmakeJs([force || !existsSync(addon) ? "rebuild" : "build"], torchDir);
} catch (e) {
  console.error(`\ndfkd: build failed: ${e.message}`);
  process.exit(1);
}
