/**
 * TakumiDb.reportStartupFailure: the one log line a failed start leaves behind, with the Cause
 * only at DEBUG, and the failure passed on unchanged (runMain then exits with status 1).
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { InsecureConfiguration } from "@takumi/config"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { TakumiDb } from "../src/index.js"
import { makeLogCapture } from "./fixtures.js"

const refusal = new InsecureConfiguration({
  rule: "tls-required",
  variable: "DB_SSL",
  environment: "production",
  message: "CRITICAL SECURITY ERROR: Database SSL/TLS is REQUIRED in production. Set DB_SSL=true"
})

/** Runs `effect` under the helper with every level logged; its exit and the captured lines. */
const report = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const capture = yield* makeLogCapture
    const exit = yield* effect.pipe(
      TakumiDb.reportStartupFailure,
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.provide(capture.layer),
      Effect.exit
    )
    return { exit, lines: yield* capture.lines }
  })

describe("TakumiDb.reportStartupFailure", () => {
  it.effect("logs a typed startup error as one ERROR line <_tag>: <message> without its Cause, and fails with it unchanged", () =>
    Effect.gen(function*() {
      const { exit, lines } = yield* report(Effect.fail(refusal))
      assert.deepStrictEqual(exit, Exit.fail(refusal))
      const errors = lines.filter((line) => line.level === "ERROR")
      assert.strictEqual(errors.length, 1)
      expect(errors[0]?.text).toMatch(/^InsecureConfiguration: CRITICAL SECURITY ERROR: .* Set DB_SSL=true error='InsecureConfiguration'$/)
    }))

  it.effect("logs the Cause, stack included, only at DEBUG", () =>
    Effect.gen(function*() {
      const { lines } = yield* report(Effect.fail(refusal))
      const withStack = lines.filter((line) => line.text.includes("    at "))
      assert.isAbove(withStack.length, 0)
      assert.isTrue(withStack.every((line) => line.level === "DEBUG"))
    }))

  it.effect("logs a defect at ERROR with its Cause, as runMain would", () =>
    Effect.gen(function*() {
      const { exit, lines } = yield* report(Effect.dieMessage("a bug"))
      assert.isTrue(Exit.isFailure(exit))
      const errors = lines.filter((line) => line.level === "ERROR")
      assert.strictEqual(errors.length, 1)
      expect(errors[0]?.text).toContain("a bug")
    }))

  it.effect("reports nothing for a success or an interruption", () =>
    Effect.gen(function*() {
      const success = yield* report(Effect.succeed(1))
      assert.deepStrictEqual(success.exit, Exit.succeed(1))
      const interrupted = yield* report(Effect.interrupt)
      assert.isTrue(Exit.isInterrupted(interrupted.exit))
      assert.deepStrictEqual([...success.lines, ...interrupted.lines], [])
    }))
})
