/**
 * Planted leaks for the leak guard's test. LEAK_PLANT chooses: `none` (the secret is registered
 * and never printed), `passing` (tests that pass but print it URL-encoded to the console,
 * base64url at an odd offset to stdout, and relay a child process's stdout carrying it in
 * base64), `failing` (a failing assertion whose message carries it plain), `failing-bigint` (an
 * error with the secret in its message and a BigInt field, which `JSON.stringify` cannot write).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import { LeakGuard } from "@takumi/testing"

const secret = process.env["LEAK_SECRET"] ?? ""
const plant = process.env["LEAK_PLANT"] ?? "none"

describe("planted leaks", () => {
  it.effect("registers the secret", () =>
    Effect.gen(function*() {
      yield* LeakGuard.register(secret, "planted test password")
      assert.isAbove(secret.length, LeakGuard.MIN_LENGTH)
    }))

  it("prints it URL-encoded to the console", () => {
    // eslint-disable-next-line no-console
    if (plant === "passing") console.log(`connecting to postgres://app:${encodeURIComponent(secret)}@db/app`)
  })

  it("writes it base64url-encoded at byte offset 1 to stdout", () => {
    if (plant === "passing") process.stdout.write(`${Buffer.from(`:${secret}`).toString("base64url")}\n`)
  })

  it("relays a child process's output", () => {
    if (plant !== "passing") return
    const encoded = Buffer.from(`Authorization: Basic ${secret}`).toString("base64")
    process.stderr.write(execFileSync(process.execPath, ["-e", `process.stdout.write(${JSON.stringify(encoded)})`]))
  })

  it("fails with the secret in its message", () => {
    if (plant === "failing") assert.strictEqual(`password=${secret}`, "password=<redacted>")
  })

  it("fails with an error that holds the secret and a BigInt", () => {
    if (plant === "failing-bigint") throw Object.assign(new Error(`password=${secret}`), { rows: 1n })
  })
})
