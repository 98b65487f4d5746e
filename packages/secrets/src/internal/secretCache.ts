import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { type BackendName, type SecretError, SecretsBackendUnavailable } from "../SecretError.js"
import * as SecretMetrics from "../SecretMetrics.js"

/** @internal */
export interface CacheOptions {
  readonly backend: BackendName
  readonly lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
  readonly ttl: Duration.DurationInput
  readonly maxStale: Duration.DurationInput
  readonly reReadInterval?: Duration.DurationInput | undefined
}

/**
 * One forced re-read per key per 10 s: why 10 s is explained at `SecretCache.defaultReReadInterval`.
 *
 * @internal
 */
export const defaultReReadInterval: Duration.Duration = Duration.seconds(10)

/** @internal */
export interface CachedBackend {
  readonly get: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>
  readonly invalidate: (key: string) => Effect.Effect<void>
}

type Lookup = Deferred.Deferred<Redacted.Redacted<string>, SecretError>

/**
 * One key's state. `value`/`expiresAt` are the last good read; `lookup` is the read in flight
 * (at most one per key: that is the single flight). A lookup only writes back if it is still
 * the entry's lookup, so an `invalidate` during a read (one that is not rate-limited) makes that
 * read's result unused.
 */
interface Entry {
  readonly value: Redacted.Redacted<string> | undefined
  readonly expiresAt: number
  readonly lookup: Lookup | undefined
}

/**
 * The cache is a plain `Map` touched only inside synchronous sections (`Effect.sync` /
 * `Effect.suspend`): JavaScript runs one fiber step at a time, so each check-and-set is atomic
 * without a `Ref`, and a cache hit costs one map lookup and one clock read.
 *
 * @internal
 */
export const make = (options: CacheOptions): Effect.Effect<CachedBackend, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ttl = Duration.toMillis(Duration.decode(options.ttl))
    const maxStale = Duration.toMillis(Duration.decode(options.maxStale))
    const reReadInterval = Duration.toMillis(Duration.decode(options.reReadInterval ?? defaultReReadInterval))
    const entries = new Map<string, Entry>()
    // When each key's last re-read was forced by `invalidate`. Kept apart from `entries`, which
    // a failed read empties: forgetting this would reopen the window for the next invalidation.
    const forcedAt = new Map<string, number>()
    let closed = false
    // A hit is the hot path (every new connection reads the password): one map lookup, one clock
    // read and one counter update, all plain JavaScript inside one `Effect.suspend`. The clock is
    // the fiber's `Clock` taken once here (TestClock in tests), read unsafely; the counter is
    // updated with a label array made here, whose identity the metric registry caches (a
    // `Metric.tagged` counter builds a new array per update, and `Metric.increment` is an Effect).
    const clock = yield* Effect.clock
    const hitLabels: ReadonlyArray<MetricLabel.MetricLabel> = [MetricLabel.make("backend", options.backend)]
    const fetches = (outcome: string) =>
      Metric.increment(
        Metric.tagged(Metric.tagged(SecretMetrics.fetches, "backend", options.backend), "outcome", outcome)
      )
    const invalidations = (outcome: "reread" | "rate-limited") =>
      Metric.increment(
        Metric.tagged(Metric.tagged(SecretMetrics.invalidations, "backend", options.backend), "outcome", outcome)
      )

    const closedError = (key: string) =>
      new SecretsBackendUnavailable({
        backend: options.backend,
        key,
        message:
          `The ${options.backend} secrets cache was shut down (the scope of its layer closed) before ${key} was read. ` +
          "Fix: use the SecretsBackend only while the layer that provides it is alive."
      })

    // Reads still in flight are interrupted with the scope; their waiters get a typed failure
    // instead of waiting forever.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const [key, entry] of entries) {
          if (entry.lookup !== undefined) Deferred.unsafeDone(entry.lookup, Exit.fail(closedError(key)))
        }
        entries.clear()
        forcedAt.clear()
      })
    )

    // Runs uninterruptibly (it is forked from an uninterruptible section) except for the backend
    // read itself, so the write-back and the completion of `lookup` always happen together.
    const settle = (key: string, lookup: Lookup) =>
      Effect.flatMap(
        Effect.exit(Effect.interruptible(options.lookup(key))),
        (exit) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const current = entries.get(key)
          const owns = current !== undefined && current.lookup === lookup
          if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
            // The cache's scope is closing: waiters get a typed failure, not an interruption.
            if (owns) entries.delete(key)
            return Effect.zipRight(fetches("interrupted"), Deferred.fail(lookup, closedError(key)))
          }
          if (Exit.isSuccess(exit)) {
            if (owns) entries.set(key, { value: exit.value, expiresAt: now + ttl, lookup: undefined })
            return Effect.zipRight(fetches("success"), Deferred.succeed(lookup, exit.value))
          }
          const failure = Cause.failureOption(exit.cause)
          if (
            owns &&
            current.value !== undefined &&
            Option.isSome(failure) &&
            failure.value._tag === "SecretsBackendUnavailable" &&
            now < current.expiresAt + maxStale
          ) {
            const stale = current.value
            entries.set(key, { value: stale, expiresAt: current.expiresAt, lookup: undefined })
            return Effect.logWarning(
              "secrets backend unavailable: serving the last value read for an expired secret until the backend answers or maxStale ends"
            ).pipe(
              Effect.annotateLogs({
                backend: options.backend,
                key,
                expiredForMs: now - current.expiresAt,
                maxStaleMs: maxStale,
                cause: failure.value.message
              }),
              Effect.zipRight(fetches("stale")),
              Effect.zipRight(Deferred.succeed(lookup, stale))
            )
          }
          // Not served stale: not found / access denied / malformed fail closed, and an
          // unavailable backend past the stale window fails too. Nothing failed is kept.
          if (owns) entries.delete(key)
          return Effect.zipRight(
            fetches(Option.match(failure, { onNone: () => "defect", onSome: (error) => error._tag })),
            Deferred.done(lookup, exit)
          )
        })
      )

    const miss = (key: string, now: number): Effect.Effect<Redacted.Redacted<string>, SecretError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.fiberIdWith((fiberId) => {
          // Re-checked here: this runs in one synchronous step, so the check and the claim of
          // the key's single lookup cannot interleave with another fiber.
          if (closed) return Effect.fail(closedError(key))
          const entry = entries.get(key)
          if (entry !== undefined && entry.value !== undefined && now < entry.expiresAt) {
            return Effect.succeed(entry.value)
          }
          if (entry !== undefined && entry.lookup !== undefined) {
            return restore(Deferred.await(entry.lookup))
          }
          const lookup: Lookup = Deferred.unsafeMake(fiberId)
          entries.set(key, { value: entry?.value, expiresAt: entry?.expiresAt ?? 0, lookup })
          // The read runs in the cache's own scope: a caller that is interrupted stops
          // waiting, but the read goes on for everyone else waiting on the same key.
          return Effect.zipRight(
            Effect.forkIn(settle(key, lookup), scope),
            restore(Deferred.await(lookup))
          )
        })
      )

    const get = (key: string): Effect.Effect<Redacted.Redacted<string>, SecretError> =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const entry = entries.get(key)
        if (entry === undefined || entry.value === undefined || now >= entry.expiresAt) return miss(key, now)
        SecretMetrics.cacheHits.unsafeUpdate(1, hitLabels)
        return Effect.succeed(entry.value)
      })

    // The check and the update run in one synchronous step after the clock read, like `miss`:
    // of concurrent invalidations of a key exactly one forces the re-read, and the `get`s that
    // follow share its single flight. A wall clock stepped back (`now < last`) opens the window
    // rather than holding it shut until the clock catches up.
    const invalidate = (key: string): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const last = forcedAt.get(key)
        if (last !== undefined && now >= last && now < last + reReadInterval) return invalidations("rate-limited")
        forcedAt.set(key, now)
        entries.delete(key)
        return invalidations("reread")
      })

    return { get, invalidate }
  })
