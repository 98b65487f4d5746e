/**
 * Every failure path, run with a known password, Vault token and AWS secret key: none of them
 * may appear in any log line, error message, `Cause.pretty`, `util.inspect` or `JSON.stringify`
 * of any error. The doubles are protocol doubles, not Vault or AWS.
 */
import { afterAll, beforeAll, describe, expect, it, layer } from "@effect/vitest"
import { DbConfig } from "@takumi/config"
import { SecretsManagerDouble, TestPki, VaultDouble } from "@takumi/testing"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Util from "node:util"
import { vi } from "vitest"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { awsSettings, captureLogs, settings, vaultSettings } from "./fixtures.js"

const PASSWORD = "Known-Pa55word-4f9c1e"
const TOKEN = "hvs.Known-Vault-Token-8d2b7a"
const AWS_SECRET = "Known-Aws-Secret-Key-0c6d"
const needles = [PASSWORD, TOKEN, AWS_SECRET]

beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
})
afterAll(() => {
  vi.unstubAllEnvs()
})

/** Collects every failure and every log line of the effects it runs, then scans them all. */
const makeProbe = () => {
  const logs = captureLogs()
  const renderings: Array<string> = []
  let failures = 0
  const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
    effect.pipe(
      Effect.tapErrorCause((cause) => Effect.logError("secret read failed", cause)),
      Effect.either,
      Effect.map((result) => {
        if (Either.isRight(result)) return
        failures++
        const error = result.left
        renderings.push(
          error instanceof Error ? error.message : String(error),
          String(error),
          Cause.pretty(Cause.fail(error)),
          Util.inspect(error, { depth: 20, showHidden: true }),
          JSON.stringify(error)
        )
      }),
      Effect.provide(logs.layer)
    )
  const leaks = () => {
    const haystack = [...renderings, ...logs.lines]
    return haystack.filter((text) => needles.some((needle) => text.includes(needle)))
  }
  return { run, leaks, failures: () => failures, logs, renderings }
}

// Declared before the `layer(...)` block on purpose: @effect/vitest 0.30's `layer()` replaces
// `effect`/`scoped` on the shared `it` (Object.assign), so an `it.scoped` declared after it
// would run on that layer's runtime, here without TestClock (excludeTestServices).
describe("redaction", () => {
  it.scoped("the stale-value warning and the env and test backends' failures show no secret", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      // Stale window, driven by TestClock over a plain-HTTP Vault double.
      const double = yield* VaultDouble.make({ token: TOKEN })
      yield* double.put("secret/takumi/test", { DB_PASSWORD: PASSWORD })
      const backend = yield* SecretsBackend.makeVault(vaultSettings(double.address, { token: TOKEN }))
      yield* probe.run(backend.get("DB_PASSWORD"))
      yield* TestClock.adjust("6 minutes")
      yield* double.fault("sealed")
      yield* probe.run(backend.get("DB_PASSWORD"))
      expect(probe.logs.lines.some((line) => line.includes("serving the last value"))).toBe(true)
      yield* TestClock.adjust("10 minutes")
      yield* probe.run(backend.get("DB_PASSWORD"))

      // env backend: a set password, an unknown key, and no password at all
      const env = settings({ cacheTtl: Duration.minutes(5) }, { password: Option.some(Redacted.make(PASSWORD)) })
      yield* probe.run(
        Effect.flatMap(SecretsBackend, (b) => Effect.zipRight(b.get("DB_PASSWORD"), b.get("API_KEY"))).pipe(
          Effect.provide(SecretsBackend.layerEnv.pipe(Layer.provide(Layer.succeed(DbConfig, env))))
        )
      )
      yield* probe.run(
        Effect.flatMap(SecretsBackend, (b) => b.get("DB_PASSWORD")).pipe(
          Effect.provide(SecretsBackend.layerEnv.pipe(Layer.provide(DbConfig.layerTest())))
        )
      )
      // test backend
      yield* probe.run(
        Effect.flatMap(SecretsBackend, (b) => b.get("DB_USER")).pipe(
          Effect.provide(SecretsBackend.layerTest({ DB_PASSWORD: PASSWORD }))
        )
      )

      expect(probe.failures()).toBe(4)
      expect(probe.leaks()).toEqual([])
    }))
})

class Pki extends Context.Tag("Redaction.test/Pki")<Pki, TestPki.TestPki>() {}

layer(Layer.scoped(Pki, TestPki.make), { excludeTestServices: true })("redaction", (it) => {
  it.scoped("no Vault failure path shows the token or the password", () =>
    Effect.gen(function*() {
      const pki = yield* Pki
      const probe = makeProbe()
      const tls = { certPem: pki.server.certPem, keyPem: pki.server.keyPem }
      const double = yield* VaultDouble.make({ token: TOKEN, tls })
      yield* double.put("secret/takumi/test", { DB_PASSWORD: PASSWORD, DB_USER: { not: "a string" } })
      const make = (options: Partial<Parameters<typeof vaultSettings>[1]> = {}, address = double.address) =>
        SecretsBackend.makeVault(vaultSettings(address, { token: TOKEN, caPem: pki.ca.certPem, ...options }))
      const backend = yield* make()

      // succeeds (logs at every level are captured too)
      yield* probe.run(backend.get("DB_PASSWORD"))
      // missing field, malformed field, in a secret that does hold the password
      yield* probe.run(backend.get("DB_HOST"))
      yield* probe.run(backend.get("DB_USER"))
      for (const fault of ["forbidden", "not-found", "internal-error", "sealed", "reset", "hang"] as const) {
        yield* double.fault(fault)
        yield* backend.invalidate("DB_PASSWORD")
        yield* probe.run(backend.get("DB_PASSWORD"))
      }
      yield* double.clearFaults
      // a token the double no longer accepts
      yield* double.setToken("hvs.someone-else")
      yield* backend.invalidate("DB_PASSWORD")
      yield* probe.run(backend.get("DB_PASSWORD"))
      // TLS refused: a server with a certificate from an unknown CA
      const untrusted = yield* VaultDouble.make({
        token: TOKEN,
        tls: { certPem: pki.unknownCa.certPem, keyPem: pki.unknownCa.keyPem }
      })
      yield* probe.run(Effect.flatMap(make({}, untrusted.address), (b) => b.get("DB_PASSWORD")))
      // nothing listening
      const dead = yield* Effect.scoped(Effect.map(VaultDouble.make({ token: TOKEN, tls }), (d) => d.address))
      yield* probe.run(Effect.flatMap(make({}, dead), (b) => b.get("DB_PASSWORD")))
      // layer-build failures
      yield* probe.run(make({ path: "secret" }))
      yield* probe.run(make({ caPath: `${pki.dir}/nope.pem` }))

      expect(probe.failures()).toBeGreaterThanOrEqual(13)
      expect(probe.logs.lines.length).toBeGreaterThan(0)
      // the scan looks at real renderings, and the token really was on the wire
      expect(probe.renderings.some((text) => text.includes("DB_PASSWORD"))).toBe(true)
      expect((yield* double.requests).some((request) => request.headers["x-vault-token"] === TOKEN)).toBe(true)
      expect(probe.leaks()).toEqual([])
    }))

  it.scoped("no Secrets Manager failure path shows the password or the AWS secret key", () =>
    Effect.gen(function*() {
      const probe = makeProbe()
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", PASSWORD)
      yield* double.putSecretString("takumi/test/DB_USER", JSON.stringify({ password: PASSWORD }))
      yield* double.putSecretString("takumi/test/DB_HOST", JSON.stringify({ DB_HOST: [PASSWORD] }))
      // JSON cut short: malformed, and the text around the password must not be quoted
      yield* double.putSecretString("takumi/test/DB_TRUNCATED", `{"password": "${PASSWORD}`)
      yield* double.putSecretBinary("takumi/test/DB_PORT", new Uint8Array([0xff, ...new TextEncoder().encode(PASSWORD)]))
      const backend = yield* SecretsBackend.makeAwsSecretsManager(awsSettings(double.endpoint))

      yield* probe.run(backend.get("DB_PASSWORD"))
      yield* probe.run(backend.get("DB_USER"))
      yield* probe.run(backend.get("DB_HOST"))
      yield* probe.run(backend.get("DB_TRUNCATED"))
      yield* probe.run(backend.get("DB_PORT"))
      yield* probe.run(backend.get("DB_NAME"))
      for (
        const fault of [
          "ResourceNotFoundException",
          "AccessDeniedException",
          "DecryptionFailure",
          "ThrottlingException",
          "InternalServiceError",
          "hang"
        ] as const
      ) {
        yield* double.fault(fault)
        yield* backend.invalidate("DB_PASSWORD")
        yield* probe.run(backend.get("DB_PASSWORD"))
      }
      const dead = yield* Effect.scoped(Effect.map(SecretsManagerDouble.make(), (d) => d.endpoint))
      yield* probe.run(Effect.flatMap(SecretsBackend.makeAwsSecretsManager(awsSettings(dead)), (b) => b.get("DB_PASSWORD")))

      expect(probe.failures()).toBeGreaterThanOrEqual(11)
      expect(probe.renderings.some((text) => text.includes("takumi/test/DB_PASSWORD"))).toBe(true)
      expect(probe.leaks()).toEqual([])
    }))
})
