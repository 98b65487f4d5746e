import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { DbConfig } from "@takumi/config"
import { SecretsManagerDouble } from "@takumi/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { vi } from "vitest"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { awsSettings, captureLogs, settings } from "./fixtures.js"

beforeAll(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDTESTDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const getValue = (key: string) => Effect.flatMap(SecretsBackend, (backend) => Effect.map(backend.get(key), Redacted.value))

const getError = (key: string) =>
  Effect.flatMap(SecretsBackend, (backend) =>
    Effect.flatMap(Effect.either(backend.get(key)), (result) =>
      Either.isLeft(result) ? Effect.succeed(result.left) : Effect.dieMessage("expected a failure")))

describe("SecretsBackend", () => {
  describe("layerEnv", () => {
    const envSettings = settings({}, {
      password: Option.some(Redacted.make("dev-password")),
      user: "dev_user",
      host: "localhost",
      port: 5433,
      database: "takumi_dev"
    })

    it.effect("serves DB_PASSWORD, DB_USER, DB_HOST, DB_PORT and DB_NAME from the decoded settings", () =>
      Effect.gen(function*() {
        expect(yield* getValue("DB_PASSWORD")).toBe("dev-password")
        expect(yield* getValue("DB_USER")).toBe("dev_user")
        expect(yield* getValue("DB_HOST")).toBe("localhost")
        expect(yield* getValue("DB_PORT")).toBe("5433")
        expect(yield* getValue("DB_NAME")).toBe("takumi_dev")
      }).pipe(Effect.provide(SecretsBackend.layerEnv.pipe(Layer.provide(Layer.succeed(DbConfig, envSettings))))))

    it.effect("fails with SecretNotFound naming DB_PASSWORD when it is not set, and for keys it does not serve", () =>
      Effect.gen(function*() {
        const missing = yield* getError("DB_PASSWORD")
        expect(missing).toMatchObject({ _tag: "SecretNotFound", backend: "env", key: "DB_PASSWORD" })
        expect(missing.message).toContain("set DB_PASSWORD")
        const unknown = yield* getError("API_KEY")
        expect(unknown).toMatchObject({ _tag: "SecretNotFound", key: "API_KEY" })
      }).pipe(Effect.provide(SecretsBackend.layerEnv.pipe(Layer.provide(DbConfig.layerTest())))))

    it.effect("the stack warns exactly once that env secrets are for development (the policy's warning)", () => {
      const logs = captureLogs()
      const environment = ConfigProvider.fromMap(
        new Map([
          ["NODE_ENV", "development"],
          ["DB_HOST", "localhost"],
          ["DB_USER", "dev_user"],
          ["DB_PASSWORD", "dev-password"],
          ["SECRETS_BACKEND", "env"]
        ])
      )
      return Effect.gen(function*() {
        yield* getValue("DB_PASSWORD")
        yield* getValue("DB_USER")
        const warnings = logs.lines.filter((line) => line.includes("level=WARN") && line.includes("SECRETS_BACKEND"))
        expect(warnings.length).toBe(1)
        expect(warnings.join("\n")).not.toContain("dev-password")
      }).pipe(
        Effect.provide(SecretsBackend.layerFromConfig.pipe(
          Layer.provide(DbConfig.layerFromEnvironment({ dotEnv: false }))
        )),
        Effect.provide(logs.layer),
        Effect.withConfigProvider(environment)
      )
    })
  })

  describe("layerTest", () => {
    it.effect("serves the given entries and fails with SecretNotFound (backend test) for others", () =>
      Effect.gen(function*() {
        expect(yield* getValue("DB_PASSWORD")).toBe("pw")
        expect(yield* getError("DB_USER")).toMatchObject({ _tag: "SecretNotFound", backend: "test", key: "DB_USER" })
      }).pipe(Effect.provide(SecretsBackend.layerTest({ DB_PASSWORD: "pw" }))))

    it.effect("layerTestFromRef sees a rotated or revoked entry on the next get", () =>
      Effect.gen(function*() {
        const entries = yield* Ref.make<Readonly<Record<string, string>>>({ DB_PASSWORD: "old" })
        yield* Effect.gen(function*() {
          expect(yield* getValue("DB_PASSWORD")).toBe("old")
          yield* Ref.set(entries, { DB_PASSWORD: "new" })
          expect(yield* getValue("DB_PASSWORD")).toBe("new")
          yield* Ref.set(entries, {})
          expect((yield* getError("DB_PASSWORD"))._tag).toBe("SecretNotFound")
        }).pipe(Effect.provide(SecretsBackend.layerTestFromRef(entries)))
      }))
  })

  describe("layerFromConfig", () => {
    it.effect("builds the env backend when SECRETS_BACKEND=env", () =>
      Effect.gen(function*() {
        const error = yield* getError("DB_PASSWORD")
        expect(error.backend).toBe("env")
      }).pipe(Effect.provide(SecretsBackend.layerFromConfig.pipe(Layer.provide(DbConfig.layerTest())))))

    it.live("builds the AWS backend when SECRETS_BACKEND=aws-secrets-manager", () =>
      Effect.scoped(Effect.gen(function*() {
        const double = yield* SecretsManagerDouble.make()
        yield* double.putSecretString("takumi/test/DB_PASSWORD", "from-aws-double")
        const value = yield* getValue("DB_PASSWORD").pipe(
          Effect.provide(SecretsBackend.layerFromConfig.pipe(Layer.provide(Layer.succeed(DbConfig, awsSettings(double.endpoint, { requestTimeoutMs: 5000 })))))
        )
        expect(value).toBe("from-aws-double")
      })))

    it.effect("fails to build, naming the missing variable, when the chosen backend has no settings", () =>
      Effect.gen(function*() {
        const vault = yield* Effect.either(
          Layer.build(SecretsBackend.layerFromConfig.pipe(Layer.provide(DbConfig.layerTest({ secrets: { backend: "vault" } }))))
            .pipe(Effect.scoped)
        )
        expect(Either.isLeft(vault) && vault.left).toMatchObject({ _tag: "SecretsBackendUnavailable", key: "VAULT_ADDR" })
        const aws = yield* Effect.either(
          Layer.build(SecretsBackend.layerFromConfig.pipe(
            Layer.provide(DbConfig.layerTest({ secrets: { backend: "aws-secrets-manager" } }))
          )).pipe(Effect.scoped)
        )
        expect(Either.isLeft(aws) && aws.left).toMatchObject({ _tag: "SecretsBackendUnavailable", key: "AWS_REGION" })
      }))
  })
})
