/**
 * The doubles' metadata endpoints, as the real clients read them: Vault KV v2
 * `GET /v1/<mount>/metadata/<path>` through node-vault, Secrets Manager `DescribeSecret` through
 * the AWS SDK; shaped as their real counterparts answer (Vault's metadata envelope, AWS omitting
 * fields without a value).
 */
import { DescribeSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import NodeVault from "node-vault"
import { vi } from "vitest"
import * as SecretsManagerDouble from "../src/SecretsManagerDouble.js"
import * as VaultDouble from "../src/VaultDouble.js"

beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const token = "s.metadata-double-token"
const day = 86_400_000

const statusOf = (error: unknown): number | undefined => {
  const response = typeof error === "object" && error !== null && "response" in error ? error.response : undefined
  return typeof response === "object" && response !== null && "statusCode" in response &&
      typeof response.statusCode === "number"
    ? response.statusCode
    : undefined
}

const describeSecret = (double: SecretsManagerDouble.SecretsManagerDouble, secretId: string) =>
  Effect.tryPromise({
    try: (signal) =>
      new SecretsManagerClient({ region: double.region, endpoint: double.endpoint, maxAttempts: 1 })
        .send(new DescribeSecretCommand({ SecretId: secretId }), { abortSignal: signal }),
    catch: (error) => (error instanceof Error ? error : new Error(String(error)))
  })

describe("VaultDouble metadata", () => {
  it.scopedLive("answers KV v2 metadata: current_version, every version's created_time, updated_time of the last write (nanosecond RFC 3339, as Vault)", () =>
    Effect.gen(function*() {
      const double = yield* VaultDouble.make({ token })
      yield* double.put("secret/takumi/production", { DB_PASSWORD: "metadata-double-pw-1" })
      yield* double.put("secret/takumi/production", { DB_PASSWORD: "metadata-double-pw-2" })
      const backdated = new Date(Date.now() - 40 * day)
      yield* double.setCurrentVersionTime("secret/takumi/production", backdated)
      const client = NodeVault({ endpoint: double.address, token })
      const answer: unknown = yield* Effect.promise(() => client.read("secret/metadata/takumi/production"))
      expect(answer).toMatchObject({
        data: {
          current_version: 2,
          oldest_version: 0,
          max_versions: 0,
          updated_time: backdated.toISOString().replace(/Z$/, "814123Z"),
          versions: {
            "1": { destroyed: false, deletion_time: "" },
            "2": { created_time: backdated.toISOString().replace(/Z$/, "814123Z"), destroyed: false, deletion_time: "" }
          }
        }
      })
    }))

  it.scopedLive("answers 403 for metadata it is told to deny while the data stays readable, and 404 for an unknown path", () =>
    Effect.gen(function*() {
      const double = yield* VaultDouble.make({ token })
      yield* double.put("secret/takumi/production", { DB_PASSWORD: "metadata-double-pw-3" })
      yield* double.denyMetadata("secret/takumi/production")
      const client = NodeVault({ endpoint: double.address, token })
      const denied = yield* Effect.flip(Effect.tryPromise({ try: () => client.read("secret/metadata/takumi/production"), catch: statusOf }))
      expect(denied).toBe(403)
      const data: unknown = yield* Effect.promise(() => client.read("secret/data/takumi/production"))
      expect(data).toMatchObject({ data: { data: { DB_PASSWORD: "metadata-double-pw-3" } } })
      const unknown = yield* Effect.flip(Effect.tryPromise({ try: () => client.read("secret/metadata/takumi/none"), catch: statusOf }))
      expect(unknown).toBe(404)
    }))
})

describe("SecretsManagerDouble DescribeSecret", () => {
  it.scopedLive("omits RotationEnabled and LastRotatedDate until rotation is configured, and maps versions to stages", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      const first = yield* double.putSecretString("takumi/test/DB_PASSWORD", "metadata-double-aws-1")
      const second = yield* double.putSecretString("takumi/test/DB_PASSWORD", "metadata-double-aws-2")
      const answer = yield* describeSecret(double, "takumi/test/DB_PASSWORD")
      expect(answer.RotationEnabled).toBeUndefined()
      expect(answer.LastRotatedDate).toBeUndefined()
      expect(answer.LastChangedDate).toBeInstanceOf(Date)
      expect(answer.VersionIdsToStages).toEqual({ [first]: ["AWSPREVIOUS"], [second]: ["AWSCURRENT"] })
    }))

  it.scopedLive("reports RotationEnabled, LastRotatedDate and a backdated LastChangedDate once set, and AccessDenied when told", () =>
    Effect.gen(function*() {
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString("takumi/test/DB_PASSWORD", "metadata-double-aws-3")
      const rotated = new Date(Math.floor((Date.now() - 20 * day) / 1000) * 1000)
      const changed = new Date(Math.floor((Date.now() - 10 * day) / 1000) * 1000)
      yield* double.setRotation("takumi/test/DB_PASSWORD", { enabled: true, lastRotated: rotated, currentCreated: changed })
      const answer = yield* describeSecret(double, "takumi/test/DB_PASSWORD")
      expect(answer.RotationEnabled).toBe(true)
      expect(answer.LastRotatedDate).toEqual(rotated)
      expect(answer.LastChangedDate).toEqual(changed)
      yield* double.denyDescribe("takumi/test/DB_PASSWORD")
      const error = yield* Effect.flip(describeSecret(double, "takumi/test/DB_PASSWORD"))
      expect(error.name).toBe("AccessDeniedException")
    }))
})
