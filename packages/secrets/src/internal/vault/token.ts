/**
 * The Vault token's lifetime: the one place that knows "the current token", for every Vault
 * call of the backend (KV reads, metadata, and any other engine the backend reads).
 *
 * - At startup the token is obtained: `VAULT_AUTH_METHOD=token` looks `VAULT_TOKEN` up
 *   (`auth/token/lookup-self`), a login method logs in. A failure there is logged, not fatal:
 *   like any Vault answer it may be transient, and the next request tries again (a login) or
 *   reports it (a static token).
 * - At 2/3 of the TTL Vault granted (a third of it left, enough for a few retries within
 *   `SECRETS_REQUEST_TIMEOUT`) the token is renewed (`renew-self`). A login method logs in again
 *   instead when the token is not renewable, when the renewal fails, or when the renewal came back
 *   shorter than the TTL granted before (Vault caps it at the max TTL: the end is near).
 * - When that fails too (or, for a static token, the renewal fails or cannot extend it), the
 *   failure is logged and counted on `SecretMetrics.vaultTokenExpiring` (the `VaultTokenExpiring`
 *   alert of @takumi/db), and it is retried with backoff (1 s doubling, at most 30 s apart) until
 *   it works or the token has expired.
 * - `current` never hands out a token known to be expired: a login method logs in first, a static
 *   token fails `SecretAccessDenied` without sending anything.
 *
 * Every time is read from the Effect `Clock`, so a `TestClock` drives the whole lifecycle.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SynchronizedRef from "effect/SynchronizedRef"
import type { SecretError } from "../../SecretError.js"
import * as SecretMetrics from "../../SecretMetrics.js"
import { deniedError, type Grant } from "./login.js"

/** The share of a granted TTL after which the token is renewed. */
export const renewFraction = 2 / 3

/** @internal */
export interface VaultToken {
  /** The token to send now: never one known to have expired. */
  readonly current: Effect.Effect<Redacted.Redacted<string>, SecretError>
  /**
   * After Vault denied a request made with `token`: whether the token itself is dead (revoked out
   * of band: its own lookup-self is denied too), in which case it is dropped and the next
   * `current` logs in again. Always `false` for a static token (nothing could replace it) and for
   * a token that still looks itself up (the denial was the policy's).
   */
  readonly revoked: (token: Redacted.Redacted<string>) => Effect.Effect<boolean>
}

interface Held {
  readonly grant: Grant
  /** when the grant was made (Clock ms) */
  readonly at: number
}

const expiresAt = (held: Held): number | undefined =>
  held.grant.ttlSeconds > 0 ? held.at + held.grant.ttlSeconds * 1000 : undefined

const isExpired = (held: Held, now: number): boolean => {
  const end = expiresAt(held)
  return end !== undefined && now >= end
}

const retrySchedule = Schedule.exponential(Duration.seconds(1)).pipe(
  Schedule.either(Schedule.spaced(Duration.seconds(30)))
)

/** @internal */
export const make = (options: {
  /** the static token's lookup (`token`), or the login (every other method) */
  readonly obtain: Effect.Effect<Grant, SecretError>
  /** `None` for the static token: it cannot be replaced */
  readonly login: Option.Option<Effect.Effect<Grant, SecretError>>
  readonly renew: (token: Redacted.Redacted<string>) => Effect.Effect<Grant, SecretError>
  /** `auth/token/revoke-self`, on shutdown: `None` for the static token (it is the operator's) */
  readonly revoke: Option.Option<(token: Redacted.Redacted<string>) => Effect.Effect<void, SecretError>>
  /** `auth/token/lookup-self` of a token */
  readonly lookup: (token: Redacted.Redacted<string>) => Effect.Effect<Grant, SecretError>
  /** the held token when `obtain` fails at startup (a static token of unknown lifetime) */
  readonly fallback: Option.Option<Grant>
}): Effect.Effect<VaultToken, never, Scope.Scope> =>
  Effect.gen(function*() {
    const stamp = (grant: Grant) => Effect.map(Clock.currentTimeMillis, (at): Held => ({ grant, at }))
    const first = yield* options.obtain.pipe(
      Effect.flatMap(stamp),
      Effect.map(Option.some),
      Effect.catchAll((error) =>
        Effect.logWarning("Vault token: could not obtain it at startup; the next request tries again").pipe(
          Effect.annotateLogs({ error: error._tag, reason: error.message }),
          Effect.zipRight(Option.match(options.fallback, {
            onNone: () => Effect.succeed(Option.none<Held>()),
            onSome: (grant) => Effect.map(stamp(grant), Option.some)
          }))
        )
      )
    )
    const state = yield* SynchronizedRef.make(first)

    const clock = yield* Effect.clock
    const expired = (held: Held) =>
      deniedError(
        "VAULT_TOKEN",
        `The Vault token expired at ${
          new Date(expiresAt(held) ?? 0).toISOString()
        }; the request was not sent. Fix: give a live VAULT_TOKEN and restart, or use a login method ` +
          "(VAULT_AUTH_METHOD=approle, kubernetes or jwt), which logs in again by itself."
      )

    const missing = deniedError(
      "VAULT_TOKEN",
      "No Vault token is held. Fix: set VAULT_TOKEN (or a login method with VAULT_AUTH_METHOD)."
    )
    /** The held token when it has not expired. */
    const valid = (held: Option.Option<Held>, now: number): Option.Option<Held> =>
      Option.filter(held, (value) => !isExpired(value, now))

    /** Under the lock: the held token if still valid, else a login (or the typed refusal). */
    const replace = (now: number) => (held: Option.Option<Held>) => {
      const live = valid(held, now)
      if (Option.isSome(live)) return Effect.succeed([live.value.grant.token, held] as const)
      return Option.match(options.login, {
        onNone: () => Effect.fail(Option.isSome(held) ? expired(held.value) : missing),
        onSome: (login) =>
          Effect.map(login.pipe(Effect.flatMap(stamp)), (next) => [next.grant.token, Option.some(next)] as const)
      })
    }

    // The lock is taken only to replace the token, so reads never wait for a renewal.
    const current = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(SynchronizedRef.get(state), (held) =>
        Option.match(valid(held, now), {
          onSome: (live) => Effect.succeed(live.grant.token),
          onNone: () => SynchronizedRef.modifyEffect(state, replace(now))
        })))

    const nearEnd = (reason: string, held: Held) =>
      Effect.logWarning(`Vault token: ${reason}; the token ends at ${new Date(expiresAt(held) ?? 0).toISOString()}`).pipe(
        Effect.zipRight(Metric.increment(SecretMetrics.vaultTokenExpiring))
      )

    const notRenewable = (held: Held) =>
      `The Vault token is not renewable and expires at ${new Date(expiresAt(held) ?? 0).toISOString()}. ` +
      "Fix: give a renewable VAULT_TOKEN (vault token create -renewable=true -period=...), or use a login method."

    /**
     * Renews or replaces the held token. Fails when nothing worked; the token held then is the
     * old one, still valid until it expires.
     */
    const refresh = (held: Held): Effect.Effect<Option.Option<Held>, SecretError> => {
      const relogin = Option.map(options.login, (login) => Effect.map(Effect.flatMap(login, stamp), Option.some))
      if (!held.grant.renewable) {
        return Option.getOrElse(relogin, () => Effect.fail(deniedError("VAULT_TOKEN", notRenewable(held))))
      }
      const renewed = options.renew(held.grant.token).pipe(
        Effect.flatMap((grant) => {
          if (grant.ttlSeconds === 0) return Effect.fail(expired(held))
          // A renewal that came back shorter than the TTL granted before was capped at the
          // max TTL: a login method starts over with a fresh token; a static token cannot.
          if (grant.ttlSeconds >= held.grant.ttlSeconds) return Effect.map(stamp(grant), Option.some)
          return Option.getOrElse(
            relogin,
            () => nearEnd("renewal is capped at the max TTL", held).pipe(Effect.zipRight(stamp(grant)), Effect.map(Option.some))
          )
        })
      )
      return Option.match(relogin, { onNone: () => renewed, onSome: (again) => Effect.orElse(renewed, () => again) })
    }

    /**
     * One turn: sleep until the renewal point of the held token, then renew or replace it,
     * retrying while it lives. `false` when there is nothing to renew: no token, one that never
     * expires, or one that has expired (`current` then logs in on demand).
     */
    const turn = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const held = valid(yield* SynchronizedRef.get(state), now)
      if (Option.isNone(held)) return false
      const end = expiresAt(held.value)
      if (end === undefined) return false
      yield* Effect.sleep(Duration.millis(Math.max(0, held.value.at + (end - held.value.at) * renewFraction - now)))
      yield* SynchronizedRef.updateEffect(state, (latest) =>
        Option.isSome(latest) && latest.value === held.value ? refresh(held.value) : Effect.succeed(latest)).pipe(
          Effect.tapError((error) =>
            nearEnd(`renewal (or a new login) failed: ${error._tag}: ${error.message}; retrying`, held.value)
          ),
          Effect.retry({
            schedule: retrySchedule,
            while: () => !isExpired(held.value, clock.unsafeCurrentTimeMillis())
          }),
          Effect.ignore
        )
      return true
    })

    // On shutdown a login's token is revoked (and with it any lease it holds); this finalizer is
    // added before the renewal fiber's, so it runs after that fiber is interrupted.
    yield* Option.match(options.revoke, {
      onNone: () => Effect.void,
      onSome: (revoke) =>
        Effect.addFinalizer(() =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.flatMap(SynchronizedRef.get(state), (held) =>
              Option.match(valid(held, now), {
                onNone: () => Effect.void,
                onSome: (live) =>
                  revoke(live.grant.token).pipe(
                    Effect.catchAll((error) =>
                      Effect.logWarning("Vault token: could not revoke it on shutdown; it expires at its TTL").pipe(
                        Effect.annotateLogs({ error: error._tag, reason: error.message })
                      )
                    )
                  )
              })))
        )
    })
    yield* turn.pipe(
      Effect.flatMap((again) => again ? Effect.void : Effect.sleep(Duration.seconds(1))),
      Effect.forever,
      Effect.forkScoped
    )
    const revoked = (token: Redacted.Redacted<string>) =>
      Option.isNone(options.login) ? Effect.succeed(false) : options.lookup(token).pipe(
        Effect.as(false),
        Effect.catchAll((error) =>
          error._tag !== "SecretAccessDenied" ? Effect.succeed(false) : SynchronizedRef.update(
            state,
            (held) => Option.isSome(held) && held.value.grant.token === token ? Option.none() : held
          ).pipe(
            Effect.zipRight(Effect.logWarning("Vault token: revoked before its expiry; logging in again")),
            Effect.as(true)
          )
        )
      )

    return { current, revoked }
  })
