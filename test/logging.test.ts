/**
 * The production logging setup of the README's "Logging" section, as a service runs it:
 * `examples/logging.ts` in its own Node process under `NodeRuntime.runMain` with `Logger.json`,
 * `disablePrettyLogger` and `disableErrorReporting`, and `TakumiDb.reportStartupFailure`. What
 * reaches stdout and stderr is read line by line.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))

interface Run {
  readonly code: number
  readonly lines: ReadonlyArray<string>
}

/** This process's environment without what would configure the example's database from outside. */
const inherited = Object.fromEntries(
  Object.entries(process.env).filter(([name, value]) =>
    value !== undefined && !/^(npm_|PG|NODE_ENV$|DB_|DATABASE_URL$|SECRETS_|VAULT_|AWS_|LOG_LEVEL$)/i.test(name)
  )
)

/** Runs the example; every line of stdout and stderr, empty ones dropped. */
const runExample = (env: Record<string, string>) =>
  Effect.async<Run>((resume) => {
    const child = execFile(
      process.execPath,
      ["--conditions=@takumi/source", "--import", "tsx", "examples/logging.ts"],
      { cwd: repoRoot, env: { ...inherited, ...env }, timeout: 90_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        const lines = `${stdout}\n${stderr}`.split("\n").filter((line) => line.length > 0)
        resume(Effect.succeed({ code, lines }))
      }
    )
    child.stdin?.end()
    return Effect.sync(() => child.kill())
  })

/** One event as `Logger.json` prints it. */
const JsonLine = Schema.parseJson(Schema.Struct({
  message: Schema.String,
  logLevel: Schema.String,
  timestamp: Schema.String,
  fiberId: Schema.String,
  annotations: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  cause: Schema.optional(Schema.String)
}))

/** The line as one JSON event; fails the test with the line when it is anything else. */
const parse = (line: string) => {
  const event = Schema.decodeUnknownEither(JsonLine)(line)
  assert.isTrue(Either.isRight(event), `not one JSON log event: ${line}`)
  return Either.getOrThrow(event)
}

/** The assertions both runs share: JSON lines only, none twice, one ERROR line with the fix. */
const checkCommon = (run: Run) => {
  assert.strictEqual(run.code, 1, run.lines.join("\n"))
  const events = run.lines.map(parse)
  assert.strictEqual(new Set(run.lines).size, run.lines.length, "a line appears twice")
  const keys = events.map((event) => `${event.timestamp} ${event.fiberId} ${event.logLevel} ${event.message}`)
  assert.strictEqual(new Set(keys).size, keys.length, "an event is printed twice")
  assert.isTrue(events.some((event) => event.message === "connected"), "the service's own event is logged")
  const errors = events.filter((event) => event.logLevel === "ERROR")
  assert.strictEqual(errors.length, 1, run.lines.join("\n"))
  const [failure] = errors
  if (failure === undefined) return events
  assert.match(failure.message, /^AuthenticationFailed: Password authentication failed for user "app"/)
  assert.include(failure.message, "the DB_PASSWORD secret in the secrets backend matches the role's password")
  assert.notInclude(failure.message, "\n")
  assert.strictEqual(failure.annotations["error"], "AuthenticationFailed")
  assert.isUndefined(failure.cause)
  return events
}

describe("examples/logging.ts (production logging under NodeRuntime.runMain)", () => {
  it.live("prints every event once as one JSON line and the startup failure as one line with its fix, no stack", () =>
    Effect.gen(function*() {
      const run = yield* runExample({})
      const events = checkCommon(run)
      assert.isFalse(events.some((event) => event.logLevel === "DEBUG"))
      for (const line of run.lines) assert.notInclude(line, "    at ", "a stack frame at the default level")
    }), 120_000)

  it.live("shows the failure's stack only in a DEBUG line when LOG_LEVEL=Debug", () =>
    Effect.gen(function*() {
      const run = yield* runExample({ LOG_LEVEL: "Debug" })
      const events = checkCommon(run)
      const withStack = run.lines.filter((line) => line.includes("    at "))
      assert.isAbove(withStack.length, 0)
      for (const line of withStack) assert.strictEqual(parse(line).logLevel, "DEBUG", line)
      const cause = events.find((event) => event.message === "the cause of the failure")
      assert.include(cause?.cause, "AuthenticationFailed")
    }), 120_000)
})
