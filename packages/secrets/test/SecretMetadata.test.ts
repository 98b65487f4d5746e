import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SecretsManagerDouble, VaultDouble } from "@takumi/testing"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { vi } from "vitest"
import { SecretMetadata, SecretsBackend } from "../src/index.js"
import { awsSettings, settings, vaultSettings } from "./fixtures.js"

// The real SDK signs every request; the double does not check signatures.
beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const token = "hvs.metadata-test-token"
const path = "secret/takumi/test"
const secretId = "takumi/test/DB_PASSWORD"
const day = 86_400_000

const describeOf = (backend: SecretsBackend["Type"], key = "DB_PASSWORD") =>
  Effect.flatMap(SecretsBackend.describe(key), Option.match({
    onNone: () => Effect.dieMessage("expected metadata"),
    onSome: Effect.succeed
  })).pipe(Effect.provideService(SecretsBackend, backend))

const vault = Effect.gen(function*() {
  const double = yield* VaultDouble.make({ token })
  yield* double.put(path, { DB_PASSWORD: "vault-metadata-pw-1" })
  const backend = yield* SecretsBackend.makeVault(vaultSettings(double.address, { token }))
  return { double, backend }
})

const aws = Effect.gen(function*() {
  const double = yield* SecretsManagerDouble.make()
  const versionId = yield* double.putSecretString(secretId, "aws-metadata-pw-1")
  const backend = yield* SecretsBackend.makeAwsSecretsManager(awsSettings(double.endpoint))
  return { double, backend, versionId }
})

describe("SecretsBackend.describe", () => {
  describe("Vault KV v2 (node-vault against the Vault double)", () => {
    it.scopedLive("reads GET /v1/<mount>/metadata/<path>: the current version's number and created_time", () =>
      Effect.gen(function*() {
        const { backend, double } = yield* vault
        yield* double.put(path, { DB_PASSWORD: "vault-metadata-pw-2" })
        const written = new Date(Date.now() - 120 * day)
        yield* double.setCurrentVersionTime(path, written)
        const metadata = yield* describeOf(backend)
        expect(metadata).toMatchObject({ backend: "vault", secret: path })
        expect(metadata.versionId).toEqual(Option.some("2"))
        expect(metadata.changedAt).toEqual(Option.some(written))
        expect(metadata.rotatedAt).toEqual(Option.none())
        expect(metadata.rotationEnabled).toEqual(Option.none())
        expect(SecretMetadata.setAt(metadata)).toEqual(Option.some(written))
        // besides the static token's lookup-self at startup, one metadata read, with the token
        const requests = (yield* double.requests).filter((request) => !request.url.startsWith("/v1/auth/"))
        expect(requests.map((request) => request.url)).toEqual(["/v1/secret/metadata/takumi/test"])
        expect(requests[0]?.headers["x-vault-token"]).toBe(token)
      }))

    it.scopedLive("fails SecretAccessDenied naming the metadata path when the policy grants data/ but not metadata/", () =>
      Effect.gen(function*() {
        const { backend, double } = yield* vault
        yield* double.denyMetadata(path)
        const error = yield* Effect.flip(SecretsBackend.describe("DB_PASSWORD").pipe(
          Effect.provideService(SecretsBackend, backend)
        ))
        expect(error._tag).toBe("SecretAccessDenied")
        expect(error.message).toContain("secret/metadata/takumi/test")
        expect(error.message).toContain("\"read\"")
        // the password itself is still readable
        expect(Redacted.value(yield* backend.get("DB_PASSWORD"))).toBe("vault-metadata-pw-1")
      }))
  })

  describe("Secrets Manager DescribeSecret (the AWS SDK against the Secrets Manager double)", () => {
    it.scopedLive("a secret never configured for rotation: RotationEnabled absent (false), age from LastChangedDate", () =>
      Effect.gen(function*() {
        const { backend, double, versionId } = yield* aws
        const changed = new Date(Math.floor((Date.now() - 100 * day) / 1000) * 1000)
        yield* double.setRotation(secretId, { enabled: false, currentCreated: changed })
        const metadata = yield* describeOf(backend)
        expect(metadata).toMatchObject({ backend: "aws-secrets-manager", secret: secretId })
        expect(metadata.rotationEnabled).toEqual(Option.some(false))
        expect(metadata.rotatedAt).toEqual(Option.none())
        expect(metadata.changedAt).toEqual(Option.some(changed))
        expect(metadata.versionId).toEqual(Option.some(versionId))
        expect(SecretMetadata.setAt(metadata)).toEqual(Option.some(changed))
        const targets = (yield* double.requests).map((request) => request.headers["x-amz-target"])
        expect(targets).toEqual(["secretsmanager.DescribeSecret"])
      }))

    it.scopedLive("a rotated secret: RotationEnabled true, age from LastRotatedDate even after a later change", () =>
      Effect.gen(function*() {
        const { backend, double } = yield* aws
        const rotated = new Date(Math.floor((Date.now() - 10 * day) / 1000) * 1000)
        yield* double.setRotation(secretId, { enabled: true, lastRotated: rotated })
        const metadata = yield* describeOf(backend)
        expect(metadata.rotationEnabled).toEqual(Option.some(true))
        expect(metadata.rotatedAt).toEqual(Option.some(rotated))
        // LastChangedDate (the version written just now) is later; the rotation is the age
        expect(Option.getOrThrow(metadata.changedAt).getTime()).toBeGreaterThan(rotated.getTime())
        expect(SecretMetadata.setAt(metadata)).toEqual(Option.some(rotated))
      }))

    it.scopedLive("fails SecretAccessDenied naming secretsmanager:DescribeSecret when IAM grants GetSecretValue only", () =>
      Effect.gen(function*() {
        const { backend, double } = yield* aws
        yield* double.denyDescribe(secretId)
        const error = yield* Effect.flip(SecretsBackend.describe("DB_PASSWORD").pipe(
          Effect.provideService(SecretsBackend, backend)
        ))
        expect(error._tag).toBe("SecretAccessDenied")
        expect(error.message).toContain("secretsmanager:DescribeSecret")
        expect(error.message).toContain(secretId)
        expect(Redacted.value(yield* backend.get("DB_PASSWORD"))).toBe("aws-metadata-pw-1")
      }))
  })

  describe("backends that cannot tell", () => {
    it.scoped("the env backend has no metadata: None", () =>
      Effect.gen(function*() {
        const backend = yield* SecretsBackend.makeEnv(settings({}, { password: Option.some(Redacted.make("env-pw")) }))
        const metadata = yield* SecretsBackend.describe("DB_PASSWORD").pipe(Effect.provideService(SecretsBackend, backend))
        expect(metadata).toEqual(Option.none())
      }))

    it.effect("the test backend has no metadata: None", () =>
      Effect.gen(function*() {
        const metadata = yield* SecretsBackend.describe("DB_PASSWORD")
        expect(metadata).toEqual(Option.none())
      }).pipe(Effect.provide(SecretsBackend.layerTest({ DB_PASSWORD: "test-pw" }))))
  })
})
