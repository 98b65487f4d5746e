/**
 * The cache in front of every real secrets backend: one backend read per key per TTL however
 * many callers ask at once, per-key invalidation after a rotation, a bounded stale window when
 * the backend is briefly unavailable, and no stale value at all after a revocation.
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
}

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
 *   cached, so the next `get` reads the backend again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: SecretCacheOptions) => Effect.Effect<SecretsBackendService, never, Scope.Scope> =
  internal.make
