#!/usr/bin/env node
// Runs a Python script of ours with the project-local torch on PYTHONPATH when there is one.
import { spawnSync } from "node:child_process";
import { pythonEnv } from "./libtorch.mjs";
const r = spawnSync(process.env.PYTHON || "python3", process.argv.slice(2), { stdio: "inherit", env: pythonEnv() });
process.exit(r.status ?? 1);
