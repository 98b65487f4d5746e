/**
 * The leak guard's worker side (a vitest setup file): every stdout/stderr write of a test worker
 * (a test, the library or a child process's output the test forwards) is also appended to the
 * registry folder, which the reporter (vitest.leak-guard.ts) scans at the end of the run.
 * Console calls do not come through here: vitest sends them to the reporter itself.
 */
import { LeakGuard } from "@takumi/testing"

const dir = process.env[LeakGuard.DIR_ENV]
const installed = Symbol.for("@takumi/testing/LeakGuard/capture")
const global: Record<symbol, unknown> = globalThis

// Setup files run again for every test file in the same worker: capture once.
if (dir !== undefined && dir !== "" && global[installed] !== true) {
  global[installed] = true
  LeakGuard.captureWrites(process.stdout, (text) => LeakGuard.appendOutputUnsafe(dir, "stdout", text))
  LeakGuard.captureWrites(process.stderr, (text) => LeakGuard.appendOutputUnsafe(dir, "stderr", text))
}
