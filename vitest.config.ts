import { defineConfig } from "vitest/config"

// Integration tests start real PostgreSQL servers: forks (not threads) so that a server
// spawned with a parent-death signal dies with the worker process that owns it.
export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    // One initdb for the whole run; servers copy it (see vitest.global-setup.ts).
    globalSetup: ["./vitest.global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
