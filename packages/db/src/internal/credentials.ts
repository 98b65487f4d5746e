/**
 * The password as `pg` sees it: an async function called once per new physical connection,
 * backed by `SecretsBackend.get("DB_PASSWORD")`, so a rotated secret reaches new connections
 * without a restart. The resolved value leaves its `Redacted` wrapper only inside `password()`,
 * at the single point where it is handed to the driver.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import { SecretsBackend } from "@takumi/secrets"
import * as DynamicCredentials from "./dynamicCredentials.js"
import type { DynamicSource } from "./dynamicCredentials.js"

/** The secret key of the database password. */
export const passwordKey = "DB_PASSWORD"

/**
 * Passwords that ship as defaults, appear in tutorials or top every leaked-password list. A
 * password equal to the user name counts too. Compared case-insensitively.
 */
export const wellKnownPasswords: ReadonlySet<string> = new Set([
  "postgres",
  "password",
  "password1",
  "passw0rd",
  "admin",
  "administrator",
  "root",
  "toor",
  "changeme",
  "change_me",
  "secret",
  "default",
  "letmein",
  "welcome",
  "qwerty",
  "test",
  "guest",
  "pass",
  "pgpass",
  "123456",
  "12345678",
  "123456789",
  "1234"
])

/** True when the password is a well-known default (or the user name). */
export const isWellKnownPassword = (password: Redacted.Redacted<string>, user: string): boolean => {
  const value = Redacted.value(password).toLowerCase()
  return wellKnownPasswords.has(value) || value === user.toLowerCase()
}

/** How a pool obtains and refreshes its password. */
export interface Credentials {
  /** for `pg`: resolves the current secret; rejects with the `SecretError` when it cannot */
  readonly password: () => Promise<string>
  /** forgets the cached secret so that the next `password()` reads the backend again */
  readonly invalidate: () => Promise<void>
  /**
   * Whether the last password handed to `pg` was a well-known default; `undefined` until the
   * server asked for one (certificate authentication never does). Only this verdict is kept,
   * never the password.
   */
  readonly lastPasswordWasWellKnown: () => boolean | undefined
  /**
   * Dynamic credentials (Vault `VAULT_DB_ROLE`): the user name comes with the password, per new
   * connection (internal/dynamicCredentials.ts), and `password` is not used; `undefined` for a
   * static `DB_USER` + password. Vault generates these passwords, so the well-known check does
   * not apply to them (`lastPasswordWasWellKnown` stays `undefined`).
   */
  readonly dynamic?: DynamicSource | undefined
}

/**
 * Makes the credentials of one pool. Both callbacks run on the runtime captured here, so the
 * secrets backend's own services, logger and tracer apply.
 */
export const makeCredentials = (user: string): Effect.Effect<Credentials, never, SecretsBackend> =>
  Effect.gen(function*() {
    const backend = yield* SecretsBackend
    const runtime = yield* Effect.runtime<never>()
    const runPromiseExit = Runtime.runPromiseExit(runtime)
    let wellKnown: boolean | undefined = undefined
    const dynamic = backend.databaseCredentials === undefined
      ? undefined
      : yield* DynamicCredentials.makeSource(backend.databaseCredentials)

    const password = async (): Promise<string> => {
      const exit = await runPromiseExit(backend.get(passwordKey))
      if (Exit.isSuccess(exit)) {
        wellKnown = isWellKnownPassword(exit.value, user)
        return Redacted.value(exit.value)
      }
      // reject with the typed SecretError itself: the pool's caller classifies it unchanged
      return Promise.reject(Cause.squash(exit.cause))
    }

    const invalidate = (): Promise<void> => Runtime.runPromise(runtime)(backend.invalidate(passwordKey))

    return { password, invalidate, lastPasswordWasWellKnown: () => wellKnown, dynamic }
  })
