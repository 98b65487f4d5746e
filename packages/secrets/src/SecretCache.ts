/**
 * The cache in front of every real secrets backend: one backend read per key per TTL however
 * many callers ask at once, per-key invalidation after a rotation (at most one forced re-read
 * per key per `reReadInterval`), a bounded stale window when the backend is briefly
 * unavailable, and no stale value at all after a revocation.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/secretCache.js"
import type { BackendName, SecretError } from "./SecretError.js"
import type { SecretsBackendService } from "./SecretsBackend.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SecretCacheOptions {
  /** Backend name used in log annotations (never a value). */
  readonly backend: BackendName
  /** The uncached read, e.g. one Secrets Manager `GetSecretValue`. */
  readonly lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
  /** How long a value is served without asking the backend again (`SECRETS_CACHE_TTL`, 5 min by default). */
  readonly ttl: Duration.DurationInput
  /**
   * How long after expiry a value may still be served while the backend answers
   * `SecretsBackendUnavailable` (`SECRETS_MAX_STALE`). Each such use is logged as a warning.
   */
  readonly maxStale: Duration.DurationInput
  /**
   * The least time between two re-reads of a key forced by `invalidate` (`defaultReReadInterval`,
   * 10 s, when absent; `0` turns the limit off). An `invalidate` within it of the last one that
   * forced a re-read is a no-op: the value just read is kept.
   */
  readonly reReadInterval?: Duration.DurationInput | undefined
}

/**
 * The default `reReadInterval`: 10 s. A real rotation needs one re-read of the secret; more
 * re-reads within seconds of it find the same value and cannot help, they only let whoever
 * answers 28P01 (a misconfigured server, or an attacker in front of it) turn every refused
 * connection into a secrets-backend request. 10 s caps that at 6 forced reads per key per
 * minute per process, while a rotation whose steps land a few seconds apart (the role's
 * password changed before the new secret version is current) still reaches new connections
 * at most 10 s later.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultReReadInterval: Duration.Duration = internal.defaultReReadInterval

/**
 * Wraps a lookup in a cache and returns it as a `SecretsBackend` service.
 *
 * - A value is served from memory until `ttl` has passed (time from `Clock`, so `TestClock`
 *   drives it).
 * - Single flight: concurrent `get`s of a key that is not cached share one backend read.
 * - The read runs in a fiber owned by the cache's scope: interrupting a caller stops only
 *   that caller's wait. Closing the scope interrupts reads still in flight.
 * - Failures are never cached; the next `get` reads again.
 * - After expiry, `SecretsBackendUnavailable` serves the expired value for at most `maxStale`
 *   (measured from expiry) with an `Effect.logWarning` naming backend and key. Past that
 *   window the error is returned.
 * - `SecretNotFound`, `SecretAccessDenied` and `SecretMalformed` drop the cached value and
 *   fail: a revoked secret is never served.
 * - `invalidate(key)` forgets the value; a read already in flight for that key will not be
 *   cached, so the next `get` reads the backend again. Rate-limited per key: within
 *   `reReadInterval` of the last `invalidate` that did this, `invalidate` is a no-op (the fresh
 *   value stays cached; counted as `rate-limited` in `SecretMetrics.invalidations`), so
 *   concurrent or repeated invalidations after one rotation make a single backend read.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: SecretCacheOptions) => Effect.Effect<SecretsBackendService, never, Scope.Scope> =
  internal.make
