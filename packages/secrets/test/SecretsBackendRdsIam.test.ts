/**
 * `SECRETS_BACKEND=rds-iam`: tokens from the real `@aws-sdk/rds-signer`, credentials from the
 * SDK's default chain (static test credentials in the environment). No AWS service is involved:
 * signing is local. The wall clock the signer reads is fixed with fake `Date`s, so a token is a
 * known value; cache expiry runs on TestClock.
 */
import { Signer } from "@aws-sdk/rds-signer"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { testSettings } from "@takumi/config"
import { LeakGuard } from "@takumi/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { vi } from "vitest"
import * as RdsIam from "../src/internal/aws/rdsIam.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import * as SecretMetrics from "../src/SecretMetrics.js"
import { stubTestCredentials, withoutCredentials } from "./fixtures.js"

const ACCESS_KEY_ID = "AKIDTESTDOUBLE"
const SECRET_ACCESS_KEY = "test-double-secret"
const SIGNED_AT = new Date("2026-12-02T12:00:00.000Z")

beforeAll(stubTestCredentials)
afterAll(() => {
  vi.unstubAllEnvs()
})
afterEach(() => {
  vi.useRealTimers()
})

const settings = (cacheTtl: Duration.Duration = Duration.minutes(5)) =>
  testSettings({
    host: "db.example.com",
    port: 5432,
    user: "app_iam",
    secrets: {
      backend: "rds-iam",
      cacheTtl,
      requestTimeout: Duration.seconds(2),
      aws: Option.some({ region: "eu-west-1", endpoint: Option.none(), maxAttempts: 1, caBundle: Option.none() })
    }
  })

const fixDate = (at: Date) => vi.useFakeTimers({ toFake: ["Date"], now: at })

const signs = Effect.map(
  Metric.value(Metric.tagged(Metric.tagged(SecretMetrics.fetches, "backend", "rds-iam"), "outcome", "success")),
  (state) => state.count
)

describe("SecretsBackend.makeRdsIam", () => {
  it.scoped("gets the rds-signer token for DB_USER at DB_HOST:DB_PORT in AWS_REGION, signed with the default credential chain", () =>
    Effect.gen(function*() {
      fixDate(SIGNED_AT)
      // the same inputs with explicit credentials: the default chain must have found the test's
      const expected = yield* Effect.promise(() =>
        new Signer({
          region: "eu-west-1",
          hostname: "db.example.com",
          port: 5432,
          username: "app_iam",
          credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }
        }).getAuthToken()
      )
      yield* LeakGuard.register(expected, "rds-iam token (secrets test)")
      const backend = yield* SecretsBackend.makeRdsIam(settings())
      const token = Redacted.value(yield* backend.get("DB_PASSWORD"))
      expect(token).toBe(expected)
      expect(token.startsWith("db.example.com:5432/?Action=connect&DBUser=app_iam&")).toBe(true)
      expect(token).toContain("X-Amz-Expires=900")
      expect(token).toContain("X-Amz-Date=20261202T120000Z")
      expect(token).toContain(`X-Amz-Credential=${ACCESS_KEY_ID}%2F20261202%2Feu-west-1%2Frds-db%2Faws4_request`)
    }))

  it.scoped("caches a token for 10 minutes at most, even when SECRETS_CACHE_TTL is longer, then signs a new one", () =>
    Effect.gen(function*() {
      const backend = yield* SecretsBackend.makeRdsIam(settings(Duration.minutes(30)))
      const before = yield* signs
      yield* backend.get("DB_PASSWORD")
      yield* TestClock.adjust(Duration.minutes(9))
      yield* backend.get("DB_PASSWORD")
      expect((yield* signs) - before).toBe(1)
      yield* TestClock.adjust(Duration.minutes(2))
      yield* backend.get("DB_PASSWORD")
      expect((yield* signs) - before).toBe(2)
    }))

  it("keeps at least 5 minutes of a token's 15 and serves it stale only until 1 minute before it expires", () => {
    expect(Duration.toMinutes(RdsIam.tokenTtl(Duration.minutes(30)))).toBe(10)
    expect(Duration.toMinutes(RdsIam.tokenTtl(Duration.minutes(3)))).toBe(3)
    expect(Duration.toMinutes(RdsIam.tokenMaxStale(Duration.minutes(30)))).toBe(4)
    expect(Duration.toMinutes(RdsIam.tokenMaxStale(Duration.minutes(3)))).toBe(11)
  })

  it.scoped("serves DB_PASSWORD only", () =>
    Effect.gen(function*() {
      const backend = yield* SecretsBackend.makeRdsIam(settings())
      const error = yield* Effect.flip(backend.get("DB_USER"))
      expect(error).toMatchObject({ _tag: "SecretNotFound", backend: "rds-iam", key: "DB_USER" })
      expect(error.message).toContain("DB_USER")
    }))

  it.scopedLive("without credentials fails SecretsBackendUnavailable naming the permission, within the request timeout", () =>
    Effect.gen(function*() {
      yield* withoutCredentials
      const backend = yield* SecretsBackend.makeRdsIam(settings())
      const error = yield* Effect.flip(backend.get("DB_PASSWORD"))
      expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", backend: "rds-iam", key: "DB_PASSWORD" })
      expect(error.message).toContain("app_iam@db.example.com:5432")
      expect(error.message).toContain("rds-db:connect")
    }))

  it.scoped("fails to build without AWS settings", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        SecretsBackend.makeRdsIam(testSettings({ secrets: { backend: "rds-iam", aws: Option.none() } }))
      )
      expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", backend: "rds-iam", key: "AWS_REGION" })
    }))
})
