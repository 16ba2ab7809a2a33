import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // 2 cores in CI: one test file at a time keeps libtorch's threads from fighting.
    poolOptions: { forks: { singleFork: true } },
    fileParallelism: false,
    // The MNIST method tests take about a minute each on 2 idle cores; leave room for a loaded machine.
    testTimeout: 600_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
