/**
 * The Secrets Manager backend across rotations, through the real AWS SDK client against the
 * Secrets Manager double (a local server speaking the AWS JSON 1.1 protocol; it is not AWS).
 * Cache expiry is driven by TestClock.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SecretsManagerDouble } from "@takumi/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { vi } from "vitest"
import * as AwsRotation from "../src/internal/aws/rotation.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { awsSettings, captureLogs } from "./fixtures.js"

const SECRET_ID = "takumi/test/DB_PASSWORD"
/** past the default SECRETS_CACHE_TTL (5 min) */
const pastTtl = Duration.minutes(6)

beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDROTATIONTEST")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "rotation-test-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const setup = (value: string) =>
  Effect.gen(function*() {
    const double = yield* SecretsManagerDouble.make()
    const firstVersion = yield* double.putSecretString(SECRET_ID, value)
    const backend = yield* SecretsBackend.makeAwsSecretsManager(awsSettings(double.endpoint, { requestTimeoutMs: 5000 }))
    const read = Effect.map(backend.get("DB_PASSWORD"), Redacted.value)
    const requests = Effect.map(
      double.requests,
      (all) => all.map((request) => [request.target.replace("secretsmanager.", ""), request.versionStage ?? request.versionId ?? null])
    )
    return { double, firstVersion, backend, read, requests }
  })

const pendingOf = (backend: SecretsBackend["Type"]) =>
  Effect.map(
    Effect.flatMap(Effect.fromNullable(backend.pending), (pending) => pending("DB_PASSWORD")),
    Option.map(Redacted.value)
  )

describe("SecretsBackend.makeAwsSecretsManager across rotations (against the Secrets Manager double)", () => {
  it.scoped("confirms an unchanged AWSCURRENT with DescribeSecret at each expiry and fetches the value only for a new version", () =>
    Effect.gen(function*() {
      const { double, read, requests } = yield* setup("first-value")
      expect(yield* read).toBe("first-value")
      yield* TestClock.adjust(pastTtl)
      expect(yield* read).toBe("first-value")
      yield* TestClock.adjust(pastTtl)
      expect(yield* read).toBe("first-value")
      const second = yield* double.putSecretString(SECRET_ID, "second-value")
      yield* TestClock.adjust(pastTtl)
      expect(yield* read).toBe("second-value")
      expect(yield* requests).toEqual([
        ["GetSecretValue", "AWSCURRENT"],
        ["DescribeSecret", null],
        ["DescribeSecret", null],
        ["DescribeSecret", null],
        // by VersionId: the value belongs to the version DescribeSecret named
        ["GetSecretValue", second]
      ])
    }))

  it.scoped("fetches the value again after valueRecheckInterval even when the version did not change", () =>
    Effect.gen(function*() {
      const { firstVersion, read, requests } = yield* setup("first-value")
      expect(yield* read).toBe("first-value")
      yield* TestClock.adjust(Duration.sum(AwsRotation.valueRecheckInterval, Duration.seconds(1)))
      expect(yield* read).toBe("first-value")
      expect(yield* requests).toEqual([
        ["GetSecretValue", "AWSCURRENT"],
        ["DescribeSecret", null],
        ["GetSecretValue", firstVersion]
      ])
    }))

  it.scoped("reads GetSecretValue at each expiry when DescribeSecret is denied, and warns once", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const { double, read, requests } = yield* setup("first-value")
      yield* double.denyDescribe(SECRET_ID)
      const reads = Effect.gen(function*() {
        expect(yield* read).toBe("first-value")
        for (let i = 0; i < 2; i++) {
          yield* TestClock.adjust(pastTtl)
          expect(yield* read).toBe("first-value")
        }
      })
      yield* Effect.provide(reads, logs.layer)
      expect(yield* requests).toEqual([
        ["GetSecretValue", "AWSCURRENT"],
        ["DescribeSecret", null],
        ["GetSecretValue", "AWSCURRENT"],
        ["GetSecretValue", "AWSCURRENT"]
      ])
      const warnings = logs.lines.filter((line) => line.startsWith("timestamp") && line.includes("DescribeSecret"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("secretsmanager:DescribeSecret")
    }))

  it.scoped("fails closed at the next expiry once the secret is deleted", () =>
    Effect.gen(function*() {
      const { double, read } = yield* setup("first-value")
      expect(yield* read).toBe("first-value")
      yield* double.deleteSecret(SECRET_ID)
      yield* TestClock.adjust(pastTtl)
      const error = yield* Effect.flip(read)
      expect(error._tag).toBe("SecretNotFound")
    }))

  it.scoped("pending: none without a rotation, the AWSPENDING value from createSecret until finishSecret, none after", () =>
    Effect.gen(function*() {
      const { backend, double, read, requests } = yield* setup("first-value")
      expect(yield* read).toBe("first-value")
      expect(yield* pendingOf(backend)).toEqual(Option.none())
      const seen: Array<[SecretsManagerDouble.RotationStep, Option.Option<string>]> = []
      yield* double.rotate(SECRET_ID, {
        value: "rotated-value",
        setSecret: () => Effect.void,
        testSecret: () => Effect.void,
        afterStep: (step) => Effect.map(pendingOf(backend), (pending) => void seen.push([step, pending]))
      })
      expect(seen).toEqual([
        ["createSecret", Option.some("rotated-value")],
        ["setSecret", Option.some("rotated-value")],
        ["testSecret", Option.some("rotated-value")],
        ["finishSecret", Option.none()]
      ])
      // the current value the cache holds is untouched by pending reads
      expect(yield* read).toBe("first-value")
      expect((yield* requests).filter(([target]) => target === "GetSecretValue").map(([, which]) => which)).toEqual([
        "AWSCURRENT",
        "AWSPENDING",
        "AWSPENDING",
        "AWSPENDING",
        "AWSPENDING",
        "AWSPENDING"
      ])
    }))
})
