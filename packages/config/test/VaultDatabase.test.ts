import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { decode, devBase } from "./fixtures.js"

const { DB_PASSWORD: _password, ...withoutPassword } = devBase

const vaultBase = {
  ...withoutPassword,
  SECRETS_BACKEND: "vault",
  VAULT_ADDR: "https://vault.example.com:8200",
  VAULT_TOKEN: "s.developmenttoken",
  VAULT_PATH: "secret/takumi/development"
}

describe("DbConfig VAULT_DB_ROLE / VAULT_DB_MOUNT", () => {
  it.effect("reads dynamic credentials from the database mount by default", () =>
    Effect.gen(function*() {
      const settings = yield* decode({ ...vaultBase, VAULT_DB_ROLE: "takumi-app" })
      const vault = Option.getOrThrow(settings.secrets.vault)
      expect(vault.database).toEqual(Option.some({ role: "takumi-app", mount: "database" }))
    }))

  it.effect("takes the mount VAULT_DB_MOUNT names", () =>
    Effect.gen(function*() {
      const settings = yield* decode({ ...vaultBase, VAULT_DB_ROLE: "takumi-app", VAULT_DB_MOUNT: "postgres-eu" })
      expect(Option.getOrThrow(settings.secrets.vault).database).toEqual(
        Option.some({ role: "takumi-app", mount: "postgres-eu" })
      )
    }))

  it.effect("has no dynamic credentials without VAULT_DB_ROLE (the KV password applies)", () =>
    Effect.gen(function*() {
      const settings = yield* decode({ ...vaultBase, VAULT_DB_MOUNT: "postgres-eu" })
      expect(Option.getOrThrow(settings.secrets.vault).database).toEqual(Option.none())
    }))

  it.effect("refuses a role name with spaces, naming the variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decode({ ...vaultBase, VAULT_DB_ROLE: "takumi app" }))
      expect(error.message).toContain("VAULT_DB_ROLE")
    }))
})
