/**
 * The leak guard's reporter (runs in the vitest main process, listed last in vitest.config.ts).
 *
 * It creates the secret registry folder before the workers fork (they inherit
 * TAKUMI_LEAK_GUARD_DIR, see @takumi/testing LeakGuard), records what reaches the main process
 * (its own stdout/stderr writes, every console log of a test, every test, module and unhandled
 * error), and at the end of the run scans that together with the workers' captured
 * stdout/stderr (vitest.leak-guard-setup.ts) for every registered secret. A leak fails the run
 * (exit code 1) with a report naming the secret's label and encoding, never its value.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { UserConsoleLog } from "vitest"
import type { Reporter, TestModule } from "vitest/node"
import { LeakGuard } from "@takumi/testing"

/**
 * An error as JSON text for the scan. Vitest hands errors over as they were thrown, so a field
 * `JSON.stringify` cannot write (a BigInt, a cycle) would throw here and skip the whole scan: a
 * BigInt is written as its digits, an object met again as "[seen]".
 */
const errorText = (error: unknown): string => {
  const seen = new WeakSet<object>()
  const text: string | undefined = JSON.stringify(error, (_key, value: unknown) => {
    if (typeof value === "bigint") return value.toString()
    if (typeof value !== "object" || value === null) return value
    if (seen.has(value)) return "[seen]"
    seen.add(value)
    return value
  })
  return text ?? String(error)
}

export default class LeakGuardReporter implements Reporter {
  private readonly dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-leak-guard-"))
  private readonly outputs: Array<LeakGuard.Output> = []
  private readonly restores: Array<() => void> = []

  onInit(): void {
    process.env[LeakGuard.DIR_ENV] = this.dir
    for (const [name, stream] of [["stdout", process.stdout], ["stderr", process.stderr]] as const) {
      this.restores.push(LeakGuard.captureWrites(stream, (text) => this.outputs.push({ origin: `main ${name}`, text })))
    }
  }

  onUserConsoleLog(log: UserConsoleLog): void {
    this.outputs.push({ origin: `console ${log.type} (${log.taskId ?? "no task"})`, text: log.content })
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    for (const module of testModules) {
      const errors = [...module.errors(), ...[...module.children.allTests()].flatMap((test) => test.result().errors ?? [])]
      for (const error of errors) this.outputs.push({ origin: `error in ${module.moduleId}`, text: errorText(error) })
    }
    for (const error of unhandledErrors) this.outputs.push({ origin: "unhandled error", text: errorText(error) })
    for (const restore of this.restores) restore()
    const leaks = LeakGuard.scan([...this.outputs, ...LeakGuard.readOutputs(this.dir)], LeakGuard.readSecrets(this.dir))
    Fs.rmSync(this.dir, { recursive: true, force: true })
    if (leaks.length > 0) {
      process.stderr.write(`\n${LeakGuard.formatReport(leaks)}\n`)
      process.exitCode = 1
    }
  }
}
