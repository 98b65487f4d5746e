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
import * as Option from "effect/Option"
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
   * Which password `password()` hands out now: a number that changes whenever the choice between
   * the current and the pending value changes. A connection attempt notes it before it starts.
   */
  readonly choice: () => number
  /**
   * After an attempt begun at `choice` was refused even with the re-read secret: reads the
   * pending value of a rotation in progress (AWS Secrets Manager AWSPENDING) and uses it for new
   * connections until the current value catches up with it (the rotation finished). A pending
   * value that was itself refused is dropped (an abandoned rotation, or the password changed
   * again). Resolves `true` when the password the next attempt sends differs from the refused
   * one, i.e. when a retry can help; also when another connection changed the choice meanwhile.
   */
  readonly usePending: (choice: number) => Promise<boolean>
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
    // the AWSPENDING value the database accepted while AWSCURRENT still held the old one
    let pending: Redacted.Redacted<string> | undefined = undefined
    let choice = 0
    const setPending = (value: Redacted.Redacted<string> | undefined) => {
      pending = value
      choice++
    }

    /** The current value, or the pending one until the current value equals it. */
    const choose = (current: Redacted.Redacted<string>): Redacted.Redacted<string> => {
      if (pending === undefined) return current
      if (Redacted.value(pending) !== Redacted.value(current)) return pending
      setPending(undefined)
      return current
    }
    const dynamic = backend.databaseCredentials === undefined
      ? undefined
      : yield* DynamicCredentials.makeSource(backend.databaseCredentials)

    const password = async (): Promise<string> => {
      const exit = await runPromiseExit(backend.get(passwordKey))
      if (Exit.isSuccess(exit)) {
        const chosen = choose(exit.value)
        wellKnown = isWellKnownPassword(chosen, user)
        return Redacted.value(chosen)
      }
      // reject with the typed SecretError itself: the pool's caller classifies it unchanged
      return Promise.reject(Cause.squash(exit.cause))
    }

    const invalidate = (): Promise<void> => Runtime.runPromise(runtime)(backend.invalidate(passwordKey))

    const readPending = backend.pending === undefined ? Effect.succeedNone : backend.pending(passwordKey).pipe(
      // the refusal that led here is what the caller reports; this read only fails to help
      Effect.tapError((error) =>
        Effect.logWarning("could not read the pending secret version after PostgreSQL refused the password").pipe(
          Effect.annotateLogs({ key: passwordKey, cause: error.message })
        )
      ),
      Effect.orElseSucceed(() => Option.none<Redacted.Redacted<string>>())
    )

    /** What to send next, given what was refused (`refused`: the pending value in use then, if any). */
    const nextChoice = (found: Option.Option<Redacted.Redacted<string>>, refused: Redacted.Redacted<string> | undefined) => {
      if (Option.isSome(found) && (refused === undefined || Redacted.value(found.value) !== Redacted.value(refused))) {
        setPending(found.value)
        return Effect.as(
          Effect.logInfo("PostgreSQL refused the current secret; trying the pending version of a rotation in progress"),
          true
        )
      }
      if (refused === undefined) return Effect.succeed(false)
      setPending(undefined)
      return Effect.as(
        Effect.logInfo("PostgreSQL refused the pending secret version; going back to the current one"),
        true
      )
    }

    const usePending = (seen: number): Promise<boolean> =>
      Runtime.runPromise(runtime)(Effect.suspend(() => {
        // another connection changed the choice since this attempt began: retry with the new one
        if (seen !== choice) return Effect.succeed(true)
        const refused = pending
        return Effect.flatMap(readPending, (found) => seen === choice ? nextChoice(found, refused) : Effect.succeed(true))
      }))

    return {
      password,
      invalidate,
      choice: () => choice,
      usePending,
      lastPasswordWasWellKnown: () => wellKnown,
      dynamic
    }
  })
