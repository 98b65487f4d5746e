import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SecretsManagerDouble } from "@takumi/testing"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { vi } from "vitest"
import type { SecretError } from "../src/SecretError.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { awsSettings, stubTestCredentials, withoutCredentials } from "./fixtures.js"

beforeAll(stubTestCredentials)
afterAll(() => {
  vi.unstubAllEnvs()
})

const backendFor = (double: SecretsManagerDouble.SecretsManagerDouble, options: Parameters<typeof awsSettings>[1] = {}) =>
  SecretsBackend.makeAwsSecretsManager(awsSettings(double.endpoint, options))

const read = (backend: SecretsBackend["Type"], key: string) => Effect.map(backend.get(key), Redacted.value)

const failure = (effect: Effect.Effect<unknown, SecretError>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result) ? Effect.succeed(result.left) : Effect.dieMessage("expected a failure"))

describe("SecretsBackend.makeAwsSecretsManager (against the Secrets Manager double)", () => {
  it.scopedLive("reads a plain-string secret at <prefix><KEY>", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", "plain-password")
      const backend = yield* backendFor(double)
      expect(yield* read(backend, "DB_PASSWORD")).toBe("plain-password")
      const [request] = yield* double.requests
      expect(request?.secretId).toBe("takumi/test/DB_PASSWORD")
    }))

  it.scopedLive("reads only the password from an RDS-style JSON secret: username, host and port are not aliases", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const rds = JSON.stringify({ username: "takumi_prod", password: "rds-pw", host: "db.example.com", port: 5432 })
      for (const key of ["DB_PASSWORD", "DB_USER", "DB_HOST", "DB_PORT"]) {
        yield* double.putSecretString(`takumi/test/${key}`, rds)
      }
      const backend = yield* backendFor(double)
      expect(yield* read(backend, "DB_PASSWORD")).toBe("rds-pw")
      // @takumi/db connects as DB_USER from the configuration, so the secret's username is not served
      for (const key of ["DB_USER", "DB_HOST", "DB_PORT"]) {
        const error = yield* failure(backend.get(key))
        expect(error).toMatchObject({ _tag: "SecretNotFound", key })
        expect(error.message).toContain(`without a "${key}" field`)
      }
    }))

  it.scopedLive("fails with SecretMalformed naming the secret id, never the value, for text that starts like JSON but is not a JSON object", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const cases = {
        DB_PASSWORD: `{"password": "cut-short-pw`,
        DB_TRAILING: `{"DB_TRAILING": "trailing-pw",}`,
        DB_INDENTED: `  \n {not json at all}`,
        DB_ARRAY: `["array-pw"]`,
        DB_OPEN_ARRAY: `[array-pw`
      }
      for (const [key, text] of Object.entries(cases)) yield* double.putSecretString(`takumi/test/${key}`, text)
      const backend = yield* backendFor(double)
      for (const [key, text] of Object.entries(cases)) {
        const error = yield* failure(backend.get(key))
        expect(error).toMatchObject({ _tag: "SecretMalformed", backend: "aws-secrets-manager", key })
        expect(error.message).toContain(`"takumi/test/${key}"`)
        expect(error.message).toContain(key.includes("ARRAY") && text.endsWith("]") ? "JSON array" : "not valid JSON")
        expect(error.message).not.toContain("-pw")
        expect(error.message).not.toContain("not json at all")
      }
    }))

  it.scopedLive("still reads a plain string that merely contains braces or brackets after its first character", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", "pw{with}[brackets]")
      expect(yield* read(yield* backendFor(double), "DB_PASSWORD")).toBe("pw{with}[brackets]")
    }))

  it.scopedLive("reads a JSON number field only when it is a safe integer, else fails with SecretMalformed", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      // raw JSON text, as Secrets Manager stores it: JSON.parse turns the first into 12345678901234567000
      yield* double.putSecretString("takumi/test/DB_PORT", `{"DB_PORT": 12345678901234567890}`)
      yield* double.putSecretString("takumi/test/DB_PASSWORD", `{"password": 1.10}`)
      yield* double.putSecretString("takumi/test/DB_EXPONENT", `{"DB_EXPONENT": 1e400}`)
      yield* double.putSecretString("takumi/test/DB_SAFE", `{"DB_SAFE": 9007199254740991}`)
      yield* double.putSecretString("takumi/test/DB_SMALL", `{"DB_SMALL": 5432}`)
      const backend = yield* backendFor(double)
      const unsafe = yield* failure(backend.get("DB_PORT"))
      expect(unsafe).toMatchObject({ _tag: "SecretMalformed", key: "DB_PORT" })
      expect(unsafe.message).toContain(`"takumi/test/DB_PORT"`)
      expect(unsafe.message).toContain("cannot be read exactly")
      expect(unsafe.message).not.toContain("1234567890")
      const fraction = yield* failure(backend.get("DB_PASSWORD"))
      expect(fraction).toMatchObject({ _tag: "SecretMalformed", key: "DB_PASSWORD" })
      expect(fraction.message).toContain(`field "password"`)
      expect(fraction.message).not.toContain("1.1")
      expect((yield* failure(backend.get("DB_EXPONENT")))._tag).toBe("SecretMalformed")
      expect(yield* read(backend, "DB_SAFE")).toBe("9007199254740991")
      expect(yield* read(backend, "DB_SMALL")).toBe("5432")
    }))

  it.scopedLive("prefers a JSON field named like the key over its RDS-style alias", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", JSON.stringify({ DB_PASSWORD: "exact", password: "alias" }))
      expect(yield* read(yield* backendFor(double), "DB_PASSWORD")).toBe("exact")
    }))

  it.scopedLive("decodes a SecretBinary as UTF-8", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretBinary("takumi/test/DB_PASSWORD", new TextEncoder().encode("bin-pässword"))
      expect(yield* read(yield* backendFor(double), "DB_PASSWORD")).toBe("bin-pässword")
    }))

  it.scopedLive("fails with SecretMalformed for a SecretBinary that is not UTF-8 and for an empty SecretString", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretBinary("takumi/test/DB_PASSWORD", new Uint8Array([0xff, 0xfe, 0x00]))
      yield* double.putSecretString("takumi/test/DB_USER", "")
      const backend = yield* backendFor(double)
      const binary = yield* failure(backend.get("DB_PASSWORD"))
      expect(binary._tag).toBe("SecretMalformed")
      expect(binary.message).toContain("not valid UTF-8")
      const empty = yield* failure(backend.get("DB_USER"))
      expect(empty._tag).toBe("SecretMalformed")
    }))

  it.scopedLive("fails with SecretNotFound when a JSON secret lacks the key's field", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", JSON.stringify({ username: "u" }))
      const error = yield* failure((yield* backendFor(double)).get("DB_PASSWORD"))
      expect(error._tag).toBe("SecretNotFound")
      expect(error.message).toContain(`"password"`)
    }))

  it.scopedLive("maps ResourceNotFoundException to SecretNotFound naming the secret id and how to create it", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const error = yield* failure((yield* backendFor(double)).get("DB_PASSWORD"))
      expect(error).toMatchObject({ _tag: "SecretNotFound", backend: "aws-secrets-manager", key: "DB_PASSWORD" })
      expect(error.message).toContain("takumi/test/DB_PASSWORD")
      expect(error.message).toContain("create-secret")
    }))

  it.scopedLive("maps AccessDeniedException to SecretAccessDenied with the IAM fix", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.fault("AccessDeniedException")
      const error = yield* failure((yield* backendFor(double)).get("DB_PASSWORD"))
      expect(error._tag).toBe("SecretAccessDenied")
      expect(error.message).toContain("secretsmanager:GetSecretValue")
    }))

  it.scopedLive("maps DecryptionFailure to SecretAccessDenied with the KMS fix", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.fault("DecryptionFailure")
      const error = yield* failure((yield* backendFor(double)).get("DB_PASSWORD"))
      expect(error._tag).toBe("SecretAccessDenied")
      expect(error.message).toContain("kms:Decrypt")
    }))

  it.scopedLive("maps ThrottlingException and InternalServiceError to SecretsBackendUnavailable", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const backend = yield* backendFor(double)
      yield* double.fault("ThrottlingException")
      const throttled = yield* failure(backend.get("DB_PASSWORD"))
      expect(throttled._tag).toBe("SecretsBackendUnavailable")
      expect(throttled.message).toContain("ThrottlingException")
      yield* double.fault("InternalServiceError")
      const internal = yield* failure(backend.get("DB_PASSWORD"))
      expect(internal._tag).toBe("SecretsBackendUnavailable")
      expect(internal.message).toContain("InternalServiceError")
    }))

  it.scopedLive("makes exactly maxAttempts requests for a retryable error", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.fault("InternalServiceError")
      const backend = yield* backendFor(double, { maxAttempts: 3, requestTimeoutMs: 5000 })
      yield* failure(backend.get("DB_PASSWORD"))
      expect(yield* double.requestCount("takumi/test/DB_PASSWORD")).toBe(3)
    }))

  it.scopedLive("gives up on a hanging Secrets Manager within the request timeout", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.fault("hang")
      const backend = yield* backendFor(double, { maxAttempts: 3, requestTimeoutMs: 300 })
      const start = yield* Clock.currentTimeMillis
      const error = yield* failure(backend.get("DB_PASSWORD"))
      const elapsed = (yield* Clock.currentTimeMillis) - start
      expect(error._tag).toBe("SecretsBackendUnavailable")
      expect(error.message).toContain("no answer within 300 ms")
      expect(elapsed).toBeLessThan(300 + 250)
    }))

  it.scopedLive("fails with SecretsBackendUnavailable when nothing listens at the endpoint", () =>
    Effect.gen(function*() {
      const dead = yield* Effect.scoped(Effect.map(SecretsManagerDouble.make(), (double) => double.endpoint))
      const backend = yield* SecretsBackend.makeAwsSecretsManager(awsSettings(dead))
      const error = yield* failure(backend.get("DB_PASSWORD"))
      expect(error._tag).toBe("SecretsBackendUnavailable")
      expect(error.message).toContain("ECONNREFUSED")
    }))

  it.scopedLive("fails with SecretsBackendUnavailable (CredentialsProviderError) within the request timeout when the credential chain is empty", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", "plain-password")
      yield* withoutCredentials
      const backend = yield* backendFor(double, { maxAttempts: 3, requestTimeoutMs: 1000 })
      const start = yield* Clock.currentTimeMillis
      const error = yield* failure(backend.get("DB_PASSWORD"))
      const elapsed = (yield* Clock.currentTimeMillis) - start
      expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", backend: "aws-secrets-manager", key: "DB_PASSWORD" })
      expect(error.message).toContain("CredentialsProviderError")
      expect(elapsed).toBeLessThan(1000 + 250)
      expect(yield* double.requestCount()).toBe(0)
    }))

  it.scopedLive("sends exactly one GetSecretValue for 1000 concurrent gets of a key that is not cached", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", "plain-password")
      const backend = yield* backendFor(double, { requestTimeoutMs: 5000 })
      const values = yield* Effect.all(Array.from({ length: 1000 }, () => read(backend, "DB_PASSWORD")), {
        concurrency: "unbounded"
      })
      expect(new Set(values)).toEqual(new Set(["plain-password"]))
      expect(values).toHaveLength(1000)
      expect(yield* double.requestCount("takumi/test/DB_PASSWORD")).toBe(1)
    }))

  it.scopedLive("serves a cached value without a second request, and the promoted version after invalidate (DescribeSecret, then GetSecretValue of the new version)", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", "before")
      const backend = yield* backendFor(double)
      expect(yield* read(backend, "DB_PASSWORD")).toBe("before")
      yield* double.putPending("takumi/test/DB_PASSWORD", "after")
      yield* double.promotePending("takumi/test/DB_PASSWORD")
      expect(yield* read(backend, "DB_PASSWORD")).toBe("before")
      expect(yield* double.requestCount()).toBe(1)
      yield* backend.invalidate("DB_PASSWORD")
      expect(yield* read(backend, "DB_PASSWORD")).toBe("after")
      expect((yield* double.requests).map((request) => request.target)).toEqual([
        "secretsmanager.GetSecretValue",
        "secretsmanager.DescribeSecret",
        "secretsmanager.GetSecretValue"
      ])
    }))
})
