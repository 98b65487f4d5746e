import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { type ConfigError, SecurityPolicy, type VaultAuth } from "../src/index.js"
import { decode, testCaPem } from "./fixtures.js"

/** A production environment on the Vault backend, without any `VAULT_AUTH_*` choice yet. */
const vaultBase: Readonly<Record<string, string>> = {
  NODE_ENV: "production",
  DB_HOST: "db.example.com",
  DB_USER: "takumi_prod",
  DB_NAME: "takumi",
  DB_SSL_CA: testCaPem,
  SECRETS_BACKEND: "vault",
  VAULT_ADDR: "https://vault.example.com:8200",
  VAULT_PATH: "secret/takumi/production"
}

const authOf = (variables: Readonly<Record<string, string>>) =>
  decode({ ...vaultBase, ...variables }).pipe(
    Effect.map((settings) => Option.getOrThrow(settings.secrets.vault).auth)
  )

const issuesOf = (variables: Readonly<Record<string, string>>) =>
  decode({ ...vaultBase, ...variables }).pipe(
    Effect.flip,
    Effect.map((error) => (error as ConfigError).issues.map((issue) => [issue.variable, issue.message] as const))
  )

const secretIdOf = (auth: VaultAuth) =>
  auth.method === "approle" && auth.secretId._tag === "Inline" ? Redacted.value(auth.secretId.value) : undefined

describe("VAULT_AUTH_METHOD", () => {
  it.effect("defaults to token, taking VAULT_TOKEN", () =>
    Effect.gen(function*() {
      const auth = yield* authOf({ VAULT_TOKEN: "hvs.static" })
      expect(auth.method).toBe("token")
      expect(auth.method === "token" && Redacted.value(auth.token)).toBe("hvs.static")
    }))

  it.effect("token without VAULT_TOKEN names the missing variable", () =>
    Effect.gen(function*() {
      const issues = yield* issuesOf({})
      expect(issues.map(([variable]) => variable)).toContain("VAULT_TOKEN")
    }))

  it.effect("approle reads VAULT_ROLE_ID and a Redacted VAULT_SECRET_ID, mounted at approle unless VAULT_AUTH_MOUNT says otherwise", () =>
    Effect.gen(function*() {
      const auth = yield* authOf({ VAULT_AUTH_METHOD: "approle", VAULT_ROLE_ID: "role-1", VAULT_SECRET_ID: "sid-1" })
      expect(auth).toMatchObject({ method: "approle", mount: "approle", roleId: "role-1" })
      expect(secretIdOf(auth)).toBe("sid-1")
      expect(String(auth.method === "approle" ? auth.secretId : "")).not.toContain("sid-1")
      const mounted = yield* authOf({
        VAULT_AUTH_METHOD: "approle",
        VAULT_AUTH_MOUNT: "apps/approle",
        VAULT_ROLE_ID: "role-1",
        VAULT_SECRET_ID_FILE: "/run/secrets/vault-secret-id"
      })
      expect(mounted).toEqual({
        method: "approle",
        mount: "apps/approle",
        roleId: "role-1",
        secretId: { _tag: "File", path: "/run/secrets/vault-secret-id" }
      })
    }))

  it.effect("approle refuses both VAULT_SECRET_ID and VAULT_SECRET_ID_FILE, and neither, without echoing the secret id", () =>
    Effect.gen(function*() {
      const both = yield* issuesOf({
        VAULT_AUTH_METHOD: "approle",
        VAULT_ROLE_ID: "role-1",
        VAULT_SECRET_ID: "sid-secret-value",
        VAULT_SECRET_ID_FILE: "/run/secrets/sid"
      })
      expect(both.map(([variable]) => variable)).toEqual(["VAULT_SECRET_ID_FILE"])
      expect(JSON.stringify(both)).not.toContain("sid-secret-value")
      const neither = yield* issuesOf({ VAULT_AUTH_METHOD: "approle" })
      expect(neither.map(([variable]) => variable).sort()).toEqual(["VAULT_ROLE_ID", "VAULT_SECRET_ID"])
    }))

  it.effect("kubernetes takes VAULT_ROLE and the pod's service-account token file by default", () =>
    Effect.gen(function*() {
      const auth = yield* authOf({ VAULT_AUTH_METHOD: "kubernetes", VAULT_ROLE: "orders" })
      expect(auth).toEqual({
        method: "kubernetes",
        mount: "kubernetes",
        role: "orders",
        jwtFile: "/var/run/secrets/kubernetes.io/serviceaccount/token"
      })
      const missing = yield* issuesOf({ VAULT_AUTH_METHOD: "kubernetes" })
      expect(missing.map(([variable]) => variable)).toEqual(["VAULT_ROLE"])
    }))

  it.effect("jwt needs VAULT_ROLE and VAULT_JWT_FILE (no default file)", () =>
    Effect.gen(function*() {
      const auth = yield* authOf({ VAULT_AUTH_METHOD: "jwt", VAULT_ROLE: "ci", VAULT_JWT_FILE: "/run/oidc/token" })
      expect(auth).toEqual({ method: "jwt", mount: "jwt", role: "ci", jwtFile: "/run/oidc/token" })
      const missing = yield* issuesOf({ VAULT_AUTH_METHOD: "jwt" })
      expect(missing.map(([variable]) => variable).sort()).toEqual(["VAULT_JWT_FILE", "VAULT_ROLE"])
    }))

  it.effect("a login method beside a VAULT_TOKEN is refused (the token would be ignored)", () =>
    Effect.gen(function*() {
      const issues = yield* issuesOf({ VAULT_AUTH_METHOD: "kubernetes", VAULT_ROLE: "orders", VAULT_TOKEN: "hvs.left-behind" })
      expect(issues.map(([variable]) => variable)).toEqual(["VAULT_TOKEN"])
      expect(JSON.stringify(issues)).not.toContain("hvs.left-behind")
    }))

  it.effect("an unknown method is refused with the accepted ones", () =>
    Effect.gen(function*() {
      const issues = yield* issuesOf({ VAULT_AUTH_METHOD: "ldap", VAULT_TOKEN: "hvs.static" })
      expect(issues.map(([variable]) => variable)).toEqual(["VAULT_AUTH_METHOD"])
      expect(issues[0]?.[1]).toContain("approle")
    }))

  it.effect("vault-secret-id-inline warns in staging and production, not with VAULT_SECRET_ID_FILE nor in development", () =>
    Effect.gen(function*() {
      const approle = { VAULT_AUTH_METHOD: "approle", VAULT_ROLE_ID: "role-1" }
      const rulesOf = (variables: Readonly<Record<string, string>>) =>
        Effect.map(
          decode({ ...vaultBase, ...approle, ...variables }),
          (settings) => SecurityPolicy.evaluate(settings).filter((finding) => finding.rule === "vault-secret-id-inline")
        )
      const production = yield* rulesOf({ VAULT_SECRET_ID: "sid-secret-value-42" })
      expect(production.map(({ severity, variable }) => ({ severity, variable }))).toEqual([
        { severity: "warn", variable: "VAULT_SECRET_ID" }
      ])
      expect(production[0]?.message).toContain("VAULT_SECRET_ID_FILE")
      expect(JSON.stringify(production)).not.toContain("sid-secret-value-42")
      expect(yield* rulesOf({ NODE_ENV: "staging", VAULT_SECRET_ID: "sid-1", VAULT_PATH: "secret/takumi/staging" }))
        .toHaveLength(1)
      expect(yield* rulesOf({ VAULT_SECRET_ID_FILE: "/run/secrets/sid" })).toEqual([])
      expect(yield* rulesOf({ NODE_ENV: "development", VAULT_SECRET_ID: "sid-1", VAULT_PATH: "secret/takumi/development" }))
        .toEqual([])
    }))
})
