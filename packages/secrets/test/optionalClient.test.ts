import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as OptionalClient from "../src/internal/optionalClient.js"

// Concatenated so that no tool resolves the specifier ahead of the test: it is looked up by
// Node's own module resolution when the importer runs, and no such package exists.
const missing = "@takumi/no-such-package-" + "x"

describe("OptionalClient", () => {
  it.effect("fails with SecretsBackendUnavailable naming the package and the npm install fix when it is not installed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(OptionalClient.load<unknown>({
        backend: "vault",
        packageName: missing,
        version: "^1.2",
        importer: () => import(missing)
      }))
      expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", backend: "vault", key: missing })
      expect(error.message).toBe(
        `SECRETS_BACKEND=vault needs the optional package ${missing}, which is not installed. ` +
          `Fix: npm install ${missing}@^1.2`
      )
    }))

  it.effect("reports any other import failure by its error code only, never the error's own text", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(OptionalClient.load<unknown>({
        backend: "aws-secrets-manager",
        packageName: "@aws-sdk/client-secrets-manager",
        version: "^3.1164",
        importer: () => Promise.reject(Object.assign(new Error("token hvs.do-not-print"), { code: "ERR_REQUIRE_ESM" }))
      }))
      expect(error).toMatchObject({
        _tag: "SecretsBackendUnavailable",
        backend: "aws-secrets-manager",
        key: "@aws-sdk/client-secrets-manager"
      })
      expect(error.message).toContain("could not load the optional package @aws-sdk/client-secrets-manager (ERR_REQUIRE_ESM)")
      expect(error.message).toContain("npm install @aws-sdk/client-secrets-manager@^3.1164")
      expect(error.message).not.toContain("hvs.do-not-print")
    }))

  it.effect("imports an installed client: node-vault's CommonJS export is its default", () =>
    Effect.gen(function*() {
      const NodeVault = yield* OptionalClient.load({
        backend: "vault",
        packageName: "node-vault",
        version: "^0.12",
        importer: () => import("node-vault").then((module) => module.default)
      })
      expect(typeof NodeVault).toBe("function")
      expect(typeof NodeVault({ endpoint: "https://vault.invalid:8200" }).read).toBe("function")
    }))

  it.effect("imports an installed client: the AWS SDK's named exports", () =>
    Effect.gen(function*() {
      const { GetSecretValueCommand, SecretsManagerClient } = yield* OptionalClient.load({
        backend: "aws-secrets-manager",
        packageName: "@aws-sdk/client-secrets-manager",
        version: "^3.1164",
        importer: () => import("@aws-sdk/client-secrets-manager")
      })
      expect(new GetSecretValueCommand({ SecretId: "takumi/test/DB_PASSWORD" }).input).toEqual({
        SecretId: "takumi/test/DB_PASSWORD"
      })
      expect(typeof SecretsManagerClient).toBe("function")
    }))
})
