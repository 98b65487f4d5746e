import { DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { vi } from "vitest"
import * as SecretsManagerDouble from "../src/SecretsManagerDouble.js"

// The double does not verify signatures, but the real client insists on signing.
beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const client = (double: SecretsManagerDouble.SecretsManagerDouble) =>
  new SecretsManagerClient({ region: double.region, endpoint: double.endpoint, maxAttempts: 1 })

const getSecret = (double: SecretsManagerDouble.SecretsManagerDouble, input: { SecretId: string; VersionStage?: string }) =>
  Effect.tryPromise({
    try: (signal) => client(double).send(new GetSecretValueCommand(input), { abortSignal: signal }),
    catch: (error) => (error instanceof Error ? error : new Error(String(error)))
  })

describe("SecretsManagerDouble", () => {
  it.scopedLive("answers GetSecretValue for AWSCURRENT with the SecretString, ARN, name, version and stages", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const versionId = yield* double.putSecretString("takumi/test/DB_PASSWORD", "s3cret")
      const answer = yield* getSecret(double, { SecretId: "takumi/test/DB_PASSWORD" })
      expect(answer.SecretString).toBe("s3cret")
      expect(answer.Name).toBe("takumi/test/DB_PASSWORD")
      expect(answer.ARN).toMatch(/^arn:aws:secretsmanager:us-east-1:000000000000:secret:takumi\/test\/DB_PASSWORD-/)
      expect(answer.VersionId).toBe(versionId)
      expect(answer.VersionStages).toEqual(["AWSCURRENT"])
      expect(answer.CreatedDate).toBeInstanceOf(Date)
    }))

  it.scopedLive("sends SecretBinary base64 encoded so the client decodes the same bytes", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretBinary("bin", new Uint8Array([0, 1, 2, 255]))
      const answer = yield* getSecret(double, { SecretId: "bin" })
      expect(answer.SecretString).toBeUndefined()
      expect([...(answer.SecretBinary ?? [])]).toEqual([0, 1, 2, 255])
    }))

  it.scopedLive("keeps AWSCURRENT until a pending version is promoted, then serves the new one", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("rotating", "old")
      yield* double.putPending("rotating", "new")
      expect((yield* getSecret(double, { SecretId: "rotating" })).SecretString).toBe("old")
      expect((yield* getSecret(double, { SecretId: "rotating", VersionStage: "AWSPENDING" })).SecretString).toBe("new")
      expect(yield* double.promotePending("rotating")).toBe(true)
      const current = yield* getSecret(double, { SecretId: "rotating" })
      expect(current.SecretString).toBe("new")
      expect(current.VersionStages).toEqual(["AWSCURRENT"])
      expect((yield* getSecret(double, { SecretId: "rotating", VersionStage: "AWSPREVIOUS" })).SecretString).toBe("old")
    }))

  it.scopedLive("rotates through the four steps: AWSPENDING from createSecret, AWSCURRENT moved at finishSecret, LastRotatedDate set", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const oldVersion = yield* double.putSecretString("rotating", "old")
      const seen: Array<readonly [SecretsManagerDouble.RotationStep, string | undefined, string | undefined]> = []
      const stages = Effect.all([
        Effect.map(getSecret(double, { SecretId: "rotating" }), (answer) => answer.SecretString),
        Effect.map(
          Effect.either(getSecret(double, { SecretId: "rotating", VersionStage: "AWSPENDING" })),
          Either.match({ onLeft: () => undefined, onRight: (answer) => answer.SecretString })
        )
      ])
      const handedTo: Array<string> = []
      const newVersion = yield* double.rotate("rotating", {
        value: "new",
        setSecret: (pending) => Effect.sync(() => void handedTo.push(`set ${pending}`)),
        testSecret: (pending) => Effect.sync(() => void handedTo.push(`test ${pending}`)),
        afterStep: (step) => Effect.map(stages, ([current, pending]) => void seen.push([step, current, pending]))
      })
      expect(handedTo).toEqual(["set new", "test new"])
      expect(seen).toEqual([
        ["createSecret", "old", "new"],
        ["setSecret", "old", "new"],
        ["testSecret", "old", "new"],
        ["finishSecret", "new", undefined]
      ])
      const previous = yield* getSecret(double, { SecretId: "rotating", VersionStage: "AWSPREVIOUS" })
      expect(previous.VersionId).toBe(oldVersion)
      expect((yield* getSecret(double, { SecretId: "rotating" })).VersionId).toBe(newVersion)
      const described = yield* Effect.promise(() => client(double).send(new DescribeSecretCommand({ SecretId: "rotating" })))
      expect(described.RotationEnabled).toBe(true)
      expect(described.LastRotatedDate).toBeInstanceOf(Date)
      expect(described.VersionIdsToStages).toEqual({ [oldVersion]: ["AWSPREVIOUS"], [newVersion]: ["AWSCURRENT"] })
    }))

  it.scopedLive("leaves AWSPENDING in place when a rotation step fails", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("rotating", "old")
      const failed = yield* Effect.either(double.rotate("rotating", {
        value: "new",
        setSecret: () => Effect.fail("ALTER ROLE failed"),
        testSecret: () => Effect.void
      }))
      expect(failed).toEqual(Either.left("ALTER ROLE failed"))
      expect((yield* getSecret(double, { SecretId: "rotating" })).SecretString).toBe("old")
      expect((yield* getSecret(double, { SecretId: "rotating", VersionStage: "AWSPENDING" })).SecretString).toBe("new")
    }))

  it.scopedLive("answers each injected fault in the AWS JSON error format the client maps to err.name", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("s", "v")
      const names: Array<string> = []
      for (
        const fault of [
          "ResourceNotFoundException",
          "AccessDeniedException",
          "DecryptionFailure",
          "ThrottlingException",
          "InternalServiceError"
        ] as const
      ) {
        yield* double.fault(fault, "s")
        const result = yield* Effect.either(getSecret(double, { SecretId: "s" }))
        names.push(Either.isLeft(result) ? result.left.name : "no error")
      }
      expect(names).toEqual([
        "ResourceNotFoundException",
        "AccessDeniedException",
        "DecryptionFailure",
        "ThrottlingException",
        "InternalServiceError"
      ])
    }))

  it.scopedLive("answers ResourceNotFoundException for an unknown secret and counts every request by secret id", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const result = yield* Effect.either(getSecret(double, { SecretId: "missing" }))
      expect(Either.isLeft(result) && result.left.name).toBe("ResourceNotFoundException")
      expect(yield* double.requestCount("missing")).toBe(1)
      const [request] = yield* double.requests
      expect(request?.target).toBe("secretsmanager.GetSecretValue")
    }))

  it.scopedLive("never answers a request when told to hang, until the client gives up", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("s", "v")
      yield* double.fault("hang")
      const result = yield* getSecret(double, { SecretId: "s" }).pipe(Effect.timeoutOption("200 millis"))
      expect(Option.isNone(result)).toBe(true)
      expect(yield* double.requestCount("s")).toBe(1)
    }))
})
