/**
 * The leak guard catches a planted leak: vitest runs test/leak-guard/planted.leak.ts in a child
 * process with the repository's guard (vitest.leak-guard.ts, vitest.leak-guard-setup.ts). Tests
 * that pass but print a registered secret URL-encoded (console), base64url (stdout) or base64
 * (a child process's output relayed to stderr) fail the run; a failing test with the secret in
 * its message is reported too, also when the error holds a BigInt; the same secret registered and
 * never printed passes. The report never shows the secret itself.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { LeakGuard } from "@takumi/testing"
import { run } from "./internal/run.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url))

// `+`, `/`, `&` and `%` make the encodings differ from the plain text.
const plantRun = (plant: "none" | "passing" | "failing" | "failing-bigint") =>
  Effect.gen(function*() {
    const secret = `pw+/&%${randomBytes(12).toString("base64")}`
    const result = yield* run(process.execPath, [vitest, "run", "--config", "test/leak-guard/vitest.config.ts"], {
      cwd: repoRoot,
      env: { LEAK_SECRET: secret, LEAK_PLANT: plant, NO_COLOR: "1", FORCE_COLOR: "0" }
    })
    const start = result.stderr.indexOf("[takumi leak guard]")
    const report = start < 0 ? "" : result.stderr.slice(start, result.stderr.indexOf("redact it.", start))
    return { ...result, secret, report, output: `exit ${result.code}\n${result.stdout}\n${result.stderr}` }
  })

describe("LeakGuard", () => {
  it.effect("fails a run whose passing tests print a registered secret, naming each leak", () =>
    Effect.gen(function*() {
      const result = yield* plantRun("passing")
      assert.strictEqual(result.code, 1, result.output)
      assert.match(result.stdout, /Tests\s+6 passed/, result.output)
      // the URL-encoded secret, seen by the reporter as a console log
      assert.match(result.report, /planted test password: url-encoded in console stdout/, result.output)
      assert.match(result.report, /planted test password: base64(url)? in stdout-\d+/, result.output)
      assert.match(result.report, /planted test password: base64 in stderr-\d+/, result.output)
      assert.notInclude(result.report, result.secret)
    }), { timeout: 120_000 })

  it.effect("reports a secret in a failing test's error", () =>
    Effect.gen(function*() {
      const result = yield* plantRun("failing")
      assert.strictEqual(result.code, 1, result.output)
      assert.match(result.report, /planted test password: plain in error in .*planted\.leak\.ts/, result.output)
      assert.notInclude(result.report, result.secret)
    }), { timeout: 120_000 })

  it.effect("reports a secret in a failing test's error that also holds a BigInt (which JSON.stringify cannot write)", () =>
    Effect.gen(function*() {
      const result = yield* plantRun("failing-bigint")
      assert.strictEqual(result.code, 1, result.output)
      assert.notInclude(result.output, "Do not know how to serialize a BigInt")
      assert.match(result.report, /planted test password: plain in error in .*planted\.leak\.ts/, result.output)
      assert.notInclude(result.report, result.secret)
    }), { timeout: 120_000 })

  it.effect("passes a run that registers the secret and never prints it", () =>
    Effect.gen(function*() {
      const result = yield* plantRun("none")
      assert.strictEqual(result.code, 0, result.output)
      assert.notInclude(result.stderr, "[takumi leak guard]", result.output)
    }), { timeout: 120_000 })

  it("finds a secret in each base64 alignment and alphabet, and not in unrelated text", () => {
    const secrets = [{ label: "s", value: "correct-horse-battery" }]
    for (const prefix of ["", "a", "ab", "abc"]) {
      const bytes = Buffer.from(`${prefix}correct-horse-battery!`)
      for (const encoding of ["base64", "base64url"] as const) {
        const leaks = LeakGuard.scan([{ origin: "o", text: `x ${bytes.toString(encoding)} y` }], secrets)
        assert.isNotEmpty(leaks, `${prefix} ${encoding}`)
      }
    }
    assert.deepStrictEqual(LeakGuard.scan([{ origin: "o", text: "correct-horse-batter" }], secrets), [])
  })
})
