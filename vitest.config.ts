import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

// Integration tests start real PostgreSQL servers: forks (not threads) so that a server
// spawned with a parent-death signal dies with the worker process that owns it.
export default defineConfig({
  // `@takumi/*` resolve to their TypeScript sources here (the "@takumi/source" export
  // condition), so tests need no build; the consumer test runs the built `dist/` instead.
  // Vitest also hands these to its workers as `--conditions` (for what Node loads itself, e.g.
  // the AWS SDK): no "module" here, or Node would pick the SDK's extension-less `dist-es`.
  ssr: { resolve: { conditions: ["@takumi/source", "node", "development|production"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    // Vitest runs cores − 1 forks, so one on a 2-core machine: the whole suite in a row. Most files
    // spend their time waiting on the PostgreSQL servers they start (startups, restarts, failover
    // timeouts), so a second fork there overlaps those waits: on a slow 2-core VM the suite took
    // 716 s with one fork and 467 s with two (session 9, Node 20). More cores: Vitest's default.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // One initdb for the whole run; servers copy it (see vitest.global-setup.ts).
    globalSetup: ["./vitest.global-setup.ts"],
    // The leak guard: workers capture their stdout/stderr, the reporter (last) scans the whole
    // run's output for every secret the fixtures registered and fails the run on a leak.
    setupFiles: ["./vitest.leak-guard-setup.ts"],
    reporters: ["default", "./vitest.leak-guard.ts"],
    // The AWS SDK warns once per process that its releases after January 2027 need Node 22 (the
    // dependency is pinned to ~3.1164 for that reason, see README); in test output it is noise.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
