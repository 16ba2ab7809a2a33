#!/usr/bin/env node
// `prepare` (npm install in a checkout) compiles src/ to dist/; `prepack` (npm pack / publish)
// also makes the prebuilt addon (scripts/prebuild.mjs). Both need the dev dependencies: say so
// plainly instead of failing on 'tsc: not found'.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { ROOT } from "./libtorch.mjs";

const pack = process.argv.includes("--pack");
const require = createRequire(import.meta.url);
const resolve = (name) => { try { return require.resolve(name); } catch { return null; } };
const missing = ["typescript/package.json", ...(pack ? ["prebuildify/package.json"] : [])].filter((n) => !resolve(n));
if (missing.length) {
  console.error(`dfkd: ${pack ? "npm pack" : "this step"} needs the dev dependencies (${missing.map((n) => n.split("/")[0]).join(", ")}): ` +
    "run 'npm ci' (or 'npm install') in this checkout first; it also builds the addon that the package's prebuild is made from.");
  process.exit(1);
}
// npm pack runs prepack, then prepare: tsc once, in prepare.
const tsc = path.join(path.dirname(resolve("typescript/package.json")), "bin", "tsc");
if (!pack) execFileSync(process.execPath, [tsc, "-p", path.join(ROOT, "tsconfig.json")], { stdio: "inherit", cwd: ROOT });
else execFileSync(process.execPath, [path.join(ROOT, "scripts", "prebuild.mjs")], { stdio: "inherit", cwd: ROOT });
