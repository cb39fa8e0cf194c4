import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // test/cluster/Leak.test.ts forces GCs to measure the heap.
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
  },
})
