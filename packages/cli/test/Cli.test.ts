/**
 * The `takumi-db` executable as a user runs it: the workspace bin (`node_modules/.bin/takumi-db`,
 * what `npx takumi-db` finds) in a child process, with its real exit codes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"

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
})
