/**
 * The `takumi-db` executable as a user runs it: the workspace bin (`node_modules/.bin/takumi-db`,
 * what `npx takumi-db` finds) in a child process, with its real exit codes.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { productionRefused as fixtureProductionRefused, runCli } from "./fixtures.js"

const bin = fileURLToPath(new URL("../../../node_modules/.bin/takumi-db", import.meta.url))

interface Result {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const takumiDb = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<Result>((resume) => {
    const child = execFile(
      bin,
      [...args],
      { env: { PATH: process.env["PATH"] ?? "", ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => child.kill())
  })

const ESC = String.fromCharCode(27)
const PASSWORD = "cli-Pa55word-3e9a1c"

const productionRefused = fixtureProductionRefused(PASSWORD)

describe("takumi-db executable", () => {
  it.live("prints the pool size and exits 0", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["pool-size", "--max-connections", "200", "--instances", "4"])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.strictEqual(result.stdout.split("\n")[0], "40")
    }))

  it.live("exits 1 when doctor finds a production refusal in the process environment", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["doctor", "--offline"], {
        NODE_ENV: "production",
        DB_HOST: "db.internal.example.com",
        DB_USER: "app",
        SECRETS_BACKEND: "env"
      })
      assert.strictEqual(result.code, 1)
      assert.include(result.stdout, "REFUSE secrets-backend-env (SECRETS_BACKEND)")
      assert.include(result.stderr, "DoctorRefused")
    }))

  it.live("exits 2 for a pool-size argument out of range (--instances 0)", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["pool-size", "--max-connections", "200", "--instances", "0"])
      assert.strictEqual(result.code, 2)
      assert.include(result.stderr, "InvalidPoolSizing")
      assert.strictEqual(result.stdout, "")
    }))

  it.live("exits 1 when the preset checked against the server does NOT fit", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["pool-size", "--preset", "production", "--max-connections", "200", "--instances", "4"])
      assert.strictEqual(result.code, 1)
      assert.include(result.stdout, "The production preset does NOT fit")
      assert.include(result.stderr, "PresetDoesNotFit")
    }))

  it.live("exits 0 when the preset checked against the server fits", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["pool-size", "--preset", "production", "--max-connections", "1000", "--instances", "4"])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stdout, "The production preset fits")
    }))

  it.live("doctor lists every refusal and the real NODE_ENV when one variable does not decode", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["doctor", "--offline"], { ...productionRefused, DB_POOL_MAX: "yes" })
      assert.strictEqual(result.code, 1)
      assert.include(result.stdout, "takumi-db doctor (NODE_ENV=production)")
      assert.include(result.stdout, "INVALID DB_POOL_MAX")
      assert.include(result.stdout, "REFUSE tls-required (DB_SSL)")
      assert.include(result.stdout, "REFUSE secrets-backend-env (SECRETS_BACKEND)")
      assert.include(result.stdout, "REFUSE password-in-environment (DB_PASSWORD)")
      assert.include(result.stdout, "not run    the checks of DB_POOL_MAX")
      assert.notInclude(result.stdout, "no findings")
      // the four problems on standard error too, and never the password
      assert.include(result.stderr, "4 problem(s)")
      assert.notInclude(result.stdout + result.stderr, PASSWORD)
    }))

  it.live("doctor says no policy check could run when NODE_ENV itself does not decode", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["doctor", "--offline"], { ...productionRefused, NODE_ENV: "prod" })
      assert.strictEqual(result.code, 1)
      assert.include(result.stdout, "INVALID NODE_ENV")
      assert.include(result.stdout, "not run    no check could run: NODE_ENV must decode first")
      assert.notInclude(result.stdout, "no findings")
    }))

  it.live("doctor --json prints the report as one JSON document, without secrets, with the same exit code", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["doctor", "--offline", "--json"], { ...productionRefused, DB_POOL_MAX: "yes" })
      assert.strictEqual(result.code, 1)
      const report: unknown = JSON.parse(result.stdout)
      expect(report).toMatchObject({
        environment: "production",
        result: "refused",
        configuration: {
          status: "invalid",
          issues: [{ variable: "DB_POOL_MAX", expected: "an integer from 1 to 10000" }],
          settings: null
        },
        policy: { coverage: "partial", notChecked: ["DB_POOL_MAX"] },
        connection: { status: "skipped", reason: "the configuration does not load" }
      })
      expect(report).toHaveProperty("problems", expect.arrayContaining([expect.stringMatching(/^tls-required \(DB_SSL\)/)]))
      expect(report).toHaveProperty(
        "policy.findings",
        expect.arrayContaining([expect.objectContaining({ rule: "password-in-environment", severity: "refuse" })])
      )
      assert.include(result.stderr, "DoctorRefused")
      assert.notInclude(result.stdout + result.stderr, PASSWORD)
    }))

  it.live("doctor --json on a loadable configuration lists the settings and exits 0", () =>
    Effect.gen(function*() {
      const result = yield* takumiDb(["doctor", "--offline", "--json"], {
        ...productionRefused,
        NODE_ENV: "development",
        DB_HOST: "127.0.0.1"
      })
      assert.strictEqual(result.code, 0, result.stderr)
      expect(JSON.parse(result.stdout)).toMatchObject({
        environment: "development",
        result: "ok",
        problems: [],
        configuration: { status: "loaded", settings: { host: "127.0.0.1", user: "app", tls: { enabled: false } } },
        policy: { coverage: "complete" }
      })
      assert.notInclude(result.stdout, PASSWORD)
    }))

  it.live("writes each log line once, to standard error only", () =>
    Effect.gen(function*() {
      // development with SECRETS_BACKEND=env logs one warning at startup; nothing listens on port 1
      const result = yield* takumiDb(["audit-logging", "check"], {
        NODE_ENV: "development",
        DB_HOST: "127.0.0.1",
        DB_PORT: "1",
        DB_USER: "app",
        DB_PASSWORD: PASSWORD,
        SECRETS_BACKEND: "env"
      })
      assert.strictEqual(result.code, 1)
      assert.strictEqual(result.stdout, "")
      const warning = "The database password is read from environment variables"
      assert.strictEqual(result.stderr.split(warning).length - 1, 1, result.stderr)
      assert.include(result.stderr, "level=WARN")
      assert.include(result.stderr, "ConnectionRefused")
    }))

  it.live("writes no ANSI colour when standard output is not a terminal", () =>
    Effect.gen(function*() {
      const help = yield* takumiDb(["--help"])
      assert.strictEqual(help.code, 0, help.stderr)
      assert.include(help.stdout, "USAGE")
      assert.notInclude(help.stdout + help.stderr, ESC)
      const wrong = yield* takumiDb(["pool-size", "--bogus"])
      assert.strictEqual(wrong.code, 2)
      assert.include(wrong.stdout + wrong.stderr, "--bogus")
      assert.notInclude(wrong.stdout + wrong.stderr, ESC)
    }))
})

// A child process cannot be given a terminal portably, so the terminal case runs in process
// through `Cli.main`, with the `Terminal` that `main.ts` reads from `process.stdout.isTTY`.
describe("Cli colour", () => {
  const terminal = { stdoutIsTerminal: true, stderrIsTerminal: true }

  it.effect("colours the help on a terminal", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["--help"], {}, terminal)
      assert.strictEqual(run.exitCode, 0)
      assert.include(run.stdout, ESC)
    }))

  it.effect("writes no colour on a terminal when NO_COLOR is set", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["--help"], { NO_COLOR: "1" }, terminal)
      assert.strictEqual(run.exitCode, 0)
      assert.include(run.stdout, "USAGE")
      assert.notInclude(run.stdout + run.stderr, ESC)
    }))

  it.effect("writes no colour on a terminal for an argument error when NO_COLOR is set", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--bogus"], { NO_COLOR: "1" }, terminal)
      assert.strictEqual(run.exitCode, 2)
      assert.include(run.stdout + run.stderr, "--bogus")
      assert.notInclude(run.stdout + run.stderr, ESC)
    }))
})
