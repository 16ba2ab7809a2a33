#!/usr/bin/env node
// `npm run test:native`: the core's unit tests (test/native/*.cpp, ctest). Reuses the addon's
// build folder (build/, made by `npm install`), so only the test program compiles: the option
// DFKD_TESTS adds a target that `npm install` never builds (EXCLUDE_FROM_ALL).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUILD = path.join(ROOT, "build");
const run = (cmd, args) => {
  console.log(`> ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!existsSync(path.join(BUILD, "CMakeCache.txt"))) run("node", ["scripts/install.mjs"]);
if (!existsSync(path.join(ROOT, "test", "fixtures", "tiny_bn.pt"))) run("node", ["scripts/python.mjs", "scripts/make_fixtures.py"]);
run("cmake", ["-S", ROOT, "-B", BUILD, "-DDFKD_TESTS=ON"]);
run("cmake", ["--build", BUILD, "--target", "dfkd_core_tests"]);
run("ctest", ["--test-dir", BUILD, "--output-on-failure"]);
