/**
 * The lease lifecycle of Vault dynamic database credentials (`VAULT_DB_ROLE`), through the real
 * node-vault client against the Vault double's database engine. No database here: the engine's
 * SQL goes nowhere (the pool side, with real roles on PostgreSQL, is @takumi/db's
 * DynamicCredentials.test.ts). TTLs are seconds of real time: the double's leases expire by it.
 */
import { describe, expect, it } from "@effect/vitest"
import { VaultDouble } from "@takumi/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type * as DatabaseCredentials from "../src/DatabaseCredentials.js"
import { SecretsBackend } from "../src/SecretsBackend.js"
import { vaultSettings } from "./fixtures.js"

const token = "hvs.dynamic-lifecycle-token-2c9d"

const startDouble = (ttl: { readonly defaultTtlSeconds: number; readonly maxTtlSeconds: number }) =>
  VaultDouble.makeWithDatabase({
    token,
    database: {
      mount: "pg-main",
      roles: { app: { creationStatements: ["SELECT 1"], ...ttl } },
      execute: () => Effect.succeed([])
    }
  })

const backendFor = (address: string, role = "app") =>
  SecretsBackend.makeVault(
    vaultSettings(address, { token, requestTimeoutMs: 2000, database: { role, mount: "pg-main" } })
  )

const credentialsOf = (backend: SecretsBackend["Type"]) =>
  Effect.fromNullable(backend.databaseCredentials).pipe(Effect.orDieWith(() => new Error("no databaseCredentials")))

/** The current pair once it is of `generation` (polled every 100 ms, for at most 20 s). */
const untilGeneration = (credentials: DatabaseCredentials.DatabaseCredentials, generation: number) =>
  credentials.current.pipe(
    Effect.filterOrFail((credential) => credential.generation === generation),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout("20 seconds")
  )

describe("SecretsBackend.makeVault with VAULT_DB_ROLE", () => {
  it.live("reads user and password together from <mount>/creds/<role>; DB_PASSWORD is that password, without an age", () =>
    Effect.scoped(Effect.gen(function*() {
      const vault = yield* startDouble({ defaultTtlSeconds: 60, maxTtlSeconds: 120 })
      const backend = yield* backendFor(vault.address)
      const credential = yield* Effect.flatMap(credentialsOf(backend), (credentials) => credentials.current)
      const [lease] = yield* vault.database.leases
      expect(credential.username).toBe(lease?.username)
      expect(credential.leaseId).toBe(lease?.leaseId)
      expect(credential.generation).toBe(1)
      expect(Redacted.value(yield* backend.get("DB_PASSWORD"))).toBe(Redacted.value(credential.password))
      expect(yield* SecretsBackend.describe("DB_PASSWORD").pipe(Effect.provideService(SecretsBackend, backend)))
        .toEqual(Option.none())
      expect((yield* vault.requests).map((request) => request.url)).toContain("/v1/pg-main/creds/app")
    })))

  it.live("fails to build, naming VAULT_DB_ROLE and the fix, when the role does not exist", () =>
    Effect.scoped(Effect.gen(function*() {
      const vault = yield* startDouble({ defaultTtlSeconds: 60, maxTtlSeconds: 120 })
      const error = yield* Effect.flip(backendFor(vault.address, "nope"))
      expect(error).toMatchObject({ _tag: "SecretsBackendUnavailable", key: "VAULT_DB_ROLE" })
      expect(error.message).toContain("vault read pg-main/roles/nope")
      expect(error.message).not.toContain("vault kv put")
    })))

  it.live("renews while it can, then rolls over before the capped end, and revokes what is alive on shutdown", () =>
    Effect.scoped(Effect.gen(function*() {
      // TTL 3 s, max 6 s: renewed at ~2 s, capped at the next, new pair 1 s before the end (~5 s)
      const vault = yield* startDouble({ defaultTtlSeconds: 3, maxTtlSeconds: 6 })
      const scope = yield* Scope.make()
      const credentials = yield* credentialsOf(yield* Scope.extend(backendFor(vault.address), scope))
      const second = yield* untilGeneration(credentials, 2)
      const [first, issued] = yield* vault.database.leases
      expect(first?.renewals).toBeGreaterThanOrEqual(1)
      expect(second.leaseId).toBe(issued?.leaseId)
      // the old lease is not revoked early: it ends at its TTL; the new one lives until shutdown
      expect(first?.ended).toEqual(Option.none())
      yield* Scope.close(scope, Exit.void)
      const after = yield* vault.database.leases
      expect(after.map((lease) => Option.map(lease.ended, (end) => end.by))).toEqual([
        Option.some("revoke"),
        Option.some("revoke")
      ])
    })))

  it.live("reads a new pair at once when the lease was revoked in Vault (the renewal is refused)", () =>
    Effect.scoped(Effect.gen(function*() {
      const vault = yield* startDouble({ defaultTtlSeconds: 3, maxTtlSeconds: 60 })
      const credentials = yield* credentialsOf(yield* backendFor(vault.address))
      const first = yield* credentials.current
      yield* vault.database.revoke(first.leaseId)
      // the next renewal (at ~2 s) is refused: the rollover follows at once, long before max TTL
      const second = yield* untilGeneration(credentials, 2)
      expect(second.username).not.toBe(first.username)
      const leases = yield* vault.database.leases
      expect(leases.length).toBe(2)
      expect(leases[1]?.ended).toEqual(Option.none())
    })))
})
