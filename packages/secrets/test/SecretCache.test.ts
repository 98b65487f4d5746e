import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import * as fc from "fast-check"
import * as SecretCache from "../src/SecretCache.js"
import * as SecretMetrics from "../src/SecretMetrics.js"
import {
  SecretAccessDenied,
  type SecretError,
  SecretMalformed,
  SecretNotFound,
  SecretsBackendUnavailable
} from "../src/SecretError.js"
import { captureLogs } from "./fixtures.js"

/** A lookup whose answer the test sets, counting every call. */
const fakeBackend = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const answer = yield* Ref.make<Effect.Effect<Redacted.Redacted<string>, SecretError>>(
    Effect.succeed(Redacted.make("first"))
  )
  const lookup = (_key: string) => Effect.zipRight(Ref.update(calls, (n) => n + 1), Effect.flatten(Ref.get(answer)))
  const answerWith = (value: string) => Ref.set(answer, Effect.succeed(Redacted.make(value)))
  const failWith = (error: SecretError) => Ref.set(answer, Effect.fail(error))
  return { calls, answer, lookup, answerWith, failWith }
})

const unavailable = new SecretsBackendUnavailable({ backend: "vault", key: "DB_PASSWORD", message: "Vault is sealed" })
const denied = new SecretAccessDenied({ backend: "vault", key: "DB_PASSWORD", message: "permission denied" })
const notFound = new SecretNotFound({ backend: "vault", key: "DB_PASSWORD", message: "no such secret" })

const makeCache = (lookup: (key: string) => Effect.Effect<Redacted.Redacted<string>, SecretError>) =>
  SecretCache.make({ backend: "vault", lookup, ttl: "5 minutes", maxStale: "10 minutes" })

const value = (effect: Effect.Effect<Redacted.Redacted<string>, SecretError>) => Effect.map(effect, Redacted.value)

describe("SecretCache", () => {
  it.scoped("serves a value from memory until the TTL has passed, then reads the backend again", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("first")
      yield* backend.answerWith("second")
      yield* TestClock.adjust("4 minutes")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("first")
      expect(yield* Ref.get(backend.calls)).toBe(1)
      yield* TestClock.adjust("1 minute")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("second")
      expect(yield* Ref.get(backend.calls)).toBe(2)
    }))

  it.scoped("makes exactly one backend call for 1000 concurrent gets of a cold key", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const gate = yield* Deferred.make<void>()
      const entered = yield* Ref.make(0)
      yield* Ref.set(backend.answer, Effect.as(Deferred.await(gate), Redacted.make("shared")))
      const cache = yield* makeCache(backend.lookup)
      const callers = yield* Effect.fork(
        Effect.forEach(
          Array.from({ length: 1000 }),
          () => Effect.zipRight(Ref.update(entered, (n) => n + 1), value(cache.get("DB_PASSWORD"))),
          { concurrency: "unbounded" }
        )
      )
      // Keep the gate shut until every caller has asked, so all 1000 are waiting together.
      while ((yield* Ref.get(entered)) < 1000) yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(callers)
      expect(results.length).toBe(1000)
      expect(results.every((v) => v === "shared")).toBe(true)
      expect(yield* Ref.get(backend.calls)).toBe(1)
    }))

  it.scoped("reads the backend again after invalidate(key), and only for that key", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* cache.get("DB_USER")
      yield* backend.answerWith("rotated")
      yield* cache.invalidate("DB_PASSWORD")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("rotated")
      expect(yield* value(cache.get("DB_USER"))).toBe("first")
      expect(yield* Ref.get(backend.calls)).toBe(3)
    }))

  it.scoped("does not cache failures: the next get reads the backend again", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      yield* backend.failWith(unavailable)
      const cache = yield* makeCache(backend.lookup)
      const first = yield* Effect.either(cache.get("DB_PASSWORD"))
      expect(Either.isLeft(first) && first.left._tag).toBe("SecretsBackendUnavailable")
      yield* backend.answerWith("recovered")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("recovered")
      expect(yield* Ref.get(backend.calls)).toBe(2)
    }))

  it.scoped("serves the expired value with a warning while the backend is unavailable, for at most maxStale", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* backend.failWith(unavailable)
      yield* TestClock.adjust("5 minutes")
      expect(yield* value(cache.get("DB_PASSWORD").pipe(Effect.provide(logs.layer)))).toBe("first")
      const warnings = logs.lines.filter((line) => line.includes("level=WARN"))
      expect(warnings.length).toBe(1)
      expect(warnings[0]).toContain("key=DB_PASSWORD")
      expect(warnings[0]).not.toContain("first")
      yield* TestClock.adjust("9 minutes")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("first")
      yield* TestClock.adjust("1 minute")
      const afterWindow = yield* Effect.either(cache.get("DB_PASSWORD"))
      expect(Either.isLeft(afterWindow) && afterWindow.left._tag).toBe("SecretsBackendUnavailable")
      expect(yield* Ref.get(backend.calls)).toBe(4)
    }))

  it.scoped("fails closed when the secret is revoked (access denied) and never serves it stale afterwards", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* backend.failWith(denied)
      yield* TestClock.adjust("5 minutes")
      const revoked = yield* Effect.either(cache.get("DB_PASSWORD"))
      expect(Either.isLeft(revoked) && revoked.left._tag).toBe("SecretAccessDenied")
      yield* backend.failWith(unavailable)
      const afterwards = yield* Effect.either(cache.get("DB_PASSWORD"))
      expect(Either.isLeft(afterwards) && afterwards.left._tag).toBe("SecretsBackendUnavailable")
    }))

  it.scoped("fails closed when the secret is deleted (not found) even inside the stale window", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* backend.failWith(notFound)
      yield* TestClock.adjust("6 minutes")
      const deleted = yield* Effect.either(cache.get("DB_PASSWORD"))
      expect(Either.isLeft(deleted) && deleted.left._tag).toBe("SecretNotFound")
    }))

  it.scoped("keeps reading for the other callers when one waiting caller is interrupted", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const gate = yield* Deferred.make<void>()
      yield* Ref.set(backend.answer, Effect.as(Deferred.await(gate), Redacted.make("shared")))
      const cache = yield* makeCache(backend.lookup)
      const first = yield* Effect.fork(value(cache.get("DB_PASSWORD")))
      const second = yield* Effect.fork(value(cache.get("DB_PASSWORD")))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(second)).toBe("shared")
      expect(yield* Ref.get(backend.calls)).toBe(1)
    }))

  it.scoped("finishes and caches the read even when its only caller is interrupted", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const gate = yield* Deferred.make<void>()
      yield* Ref.set(backend.answer, Effect.as(Deferred.await(gate), Redacted.make("kept")))
      const cache = yield* makeCache(backend.lookup)
      const only = yield* Effect.fork(cache.get("DB_PASSWORD"))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(only)
      yield* Deferred.succeed(gate, undefined)
      yield* Ref.set(backend.answer, Effect.succeed(Redacted.make("not read")))
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("kept")
      expect(yield* Ref.get(backend.calls)).toBe(1)
    }))

  it.scoped("does not cache a read that was in flight when the key was invalidated", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const gate = yield* Deferred.make<void>()
      yield* Ref.set(backend.answer, Effect.as(Deferred.await(gate), Redacted.make("before rotation")))
      const cache = yield* makeCache(backend.lookup)
      const inFlight = yield* Effect.fork(value(cache.get("DB_PASSWORD")))
      yield* Effect.yieldNow()
      yield* cache.invalidate("DB_PASSWORD")
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(inFlight)).toBe("before rotation")
      yield* backend.answerWith("after rotation")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("after rotation")
    }))

  it.effect("interrupts reads in flight when its scope closes and fails their waiters as unavailable", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      yield* Ref.set(
        backend.answer,
        Effect.zipRight(
          Deferred.succeed(started, undefined),
          Effect.onInterrupt(Effect.never, () => Deferred.succeed(interrupted, undefined))
        )
      )
      const scope = yield* Scope.make()
      const cache = yield* Scope.extend(makeCache(backend.lookup), scope)
      const waiter = yield* Effect.fork(Effect.either(cache.get("DB_PASSWORD")))
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(interrupted)
      const result = yield* Fiber.join(waiter)
      expect(Either.isLeft(result) && result.left._tag).toBe("SecretsBackendUnavailable")
      const later = yield* Effect.either(cache.get("DB_PASSWORD"))
      expect(Either.isLeft(later) && later.left._tag).toBe("SecretsBackendUnavailable")
    }))

  it.scoped("makes one backend read for 20 sequential invalidate-then-get rounds within the re-read interval", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* backend.answerWith("rotated")
      const values: Array<string> = []
      for (let i = 0; i < 20; i++) {
        yield* cache.invalidate("DB_PASSWORD")
        values.push(yield* value(cache.get("DB_PASSWORD")))
        // a later change is not fetched by the rate-limited invalidations that follow
        yield* backend.answerWith(`changed again ${i}`)
      }
      expect(values).toEqual(Array.from({ length: 20 }, () => "rotated"))
      expect(yield* Ref.get(backend.calls)).toBe(2)
    }))

  it.scoped("allows the next forced re-read once the re-read interval has passed since the last one", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* cache.invalidate("DB_PASSWORD")
      yield* backend.answerWith("second")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("second")
      yield* backend.answerWith("third")
      yield* TestClock.adjust(Duration.subtract(SecretCache.defaultReReadInterval, Duration.millis(1)))
      yield* cache.invalidate("DB_PASSWORD")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("second")
      expect(yield* Ref.get(backend.calls)).toBe(2)
      yield* TestClock.adjust("1 millis")
      yield* cache.invalidate("DB_PASSWORD")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("third")
      yield* cache.invalidate("DB_PASSWORD")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("third")
      expect(yield* Ref.get(backend.calls)).toBe(3)
    }))

  it.scoped("rate-limits each key on its own, and honours a reReadInterval given to make", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* SecretCache.make({
        backend: "vault",
        lookup: backend.lookup,
        ttl: "5 minutes",
        maxStale: "10 minutes",
        reReadInterval: "1 minute"
      })
      yield* cache.get("DB_PASSWORD")
      yield* cache.get("DB_USER")
      yield* cache.invalidate("DB_PASSWORD")
      yield* cache.invalidate("DB_USER")
      yield* cache.get("DB_PASSWORD")
      yield* cache.get("DB_USER")
      expect(yield* Ref.get(backend.calls)).toBe(4)
      yield* TestClock.adjust("59 seconds")
      yield* cache.invalidate("DB_PASSWORD")
      yield* cache.get("DB_PASSWORD")
      expect(yield* Ref.get(backend.calls)).toBe(4)
      yield* TestClock.adjust("1 second")
      yield* cache.invalidate("DB_PASSWORD")
      yield* cache.get("DB_PASSWORD")
      expect(yield* Ref.get(backend.calls)).toBe(5)
    }))

  it.scoped("does not hold the re-read window shut when the clock is stepped back", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      yield* TestClock.setTime(Duration.toMillis("1 hour"))
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* cache.invalidate("DB_PASSWORD")
      yield* cache.get("DB_PASSWORD")
      yield* TestClock.setTime(Duration.toMillis("30 minutes"))
      yield* backend.answerWith("rotated")
      yield* cache.invalidate("DB_PASSWORD")
      expect(yield* value(cache.get("DB_PASSWORD"))).toBe("rotated")
      expect(yield* Ref.get(backend.calls)).toBe(3)
    }))

  it.scoped("makes one backend read for 100 concurrent invalidate-then-get callers (single flight kept)", () =>
    Effect.gen(function*() {
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      const gate = yield* Deferred.make<void>()
      const entered = yield* Ref.make(0)
      yield* Ref.set(backend.answer, Effect.as(Deferred.await(gate), Redacted.make("rotated")))
      const callers = yield* Effect.fork(
        Effect.forEach(
          Array.from({ length: 100 }),
          () =>
            Effect.zipRight(
              Effect.zipRight(cache.invalidate("DB_PASSWORD"), Ref.update(entered, (n) => n + 1)),
              value(cache.get("DB_PASSWORD"))
            ),
          { concurrency: "unbounded" }
        )
      )
      while ((yield* Ref.get(entered)) < 100) yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(callers)
      expect(results.every((v) => v === "rotated")).toBe(true)
      expect(yield* Ref.get(backend.calls)).toBe(2)
    }))

  it.scoped("counts invalidations that forced a re-read and those rate-limited in SecretMetrics", () =>
    Effect.gen(function*() {
      const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
      const tagged = (outcome: string) =>
        Metric.tagged(Metric.tagged(SecretMetrics.invalidations, "backend", "vault"), "outcome", outcome)
      const reread = tagged("reread")
      const limited = tagged("rate-limited")
      const before = [yield* count(reread), yield* count(limited)]
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      for (let i = 0; i < 20; i++) {
        yield* cache.invalidate("DB_PASSWORD")
        yield* cache.get("DB_PASSWORD")
      }
      yield* TestClock.adjust(SecretCache.defaultReReadInterval)
      yield* cache.invalidate("DB_PASSWORD")
      const after = [yield* count(reread), yield* count(limited)]
      expect(after.map((n, i) => n - (before[i] ?? 0))).toEqual([2, 19])
    }))

  it.scoped("counts backend reads by outcome and cache hits in SecretMetrics", () =>
    Effect.gen(function*() {
      const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
      const success = Metric.tagged(Metric.tagged(SecretMetrics.fetches, "backend", "vault"), "outcome", "success")
      const stale = Metric.tagged(Metric.tagged(SecretMetrics.fetches, "backend", "vault"), "outcome", "stale")
      const hits = Metric.tagged(SecretMetrics.cacheHits, "backend", "vault")
      const before = [yield* count(success), yield* count(stale), yield* count(hits)]
      const backend = yield* fakeBackend
      const cache = yield* makeCache(backend.lookup)
      yield* cache.get("DB_PASSWORD")
      yield* cache.get("DB_PASSWORD")
      yield* cache.get("DB_PASSWORD")
      yield* backend.failWith(unavailable)
      yield* TestClock.adjust("6 minutes")
      yield* cache.get("DB_PASSWORD")
      const after = [yield* count(success), yield* count(stale), yield* count(hits)]
      expect(after.map((n, i) => n - (before[i] ?? 0))).toEqual([1, 1, 2])
    }))
})

type Answer = "value-a" | "value-b" | SecretError["_tag"]
type Op =
  | { readonly _tag: "Get" }
  | { readonly _tag: "Advance"; readonly seconds: number }
  | { readonly _tag: "Answer"; readonly answer: Answer }
  | { readonly _tag: "Invalidate" }

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.constant<Op>({ _tag: "Get" }),
  // whole minutes move across the TTL and the stale window; a few seconds across the re-read interval
  fc.integer({ min: 1, max: 12 }).map((minutes): Op => ({ _tag: "Advance", seconds: minutes * 60 })),
  fc.integer({ min: 1, max: 15 }).map((seconds): Op => ({ _tag: "Advance", seconds })),
  fc.constantFrom<Answer>(
    "value-a",
    "value-b",
    "SecretNotFound",
    "SecretAccessDenied",
    "SecretsBackendUnavailable",
    "SecretMalformed"
  ).map((answer): Op => ({ _tag: "Answer", answer })),
  fc.constant<Op>({ _tag: "Invalidate" })
)

const errorFor = (tag: SecretError["_tag"]): SecretError => {
  const fields = { backend: "vault" as const, key: "DB_PASSWORD", message: tag }
  switch (tag) {
    case "SecretNotFound":
      return new SecretNotFound(fields)
    case "SecretAccessDenied":
      return new SecretAccessDenied(fields)
    case "SecretsBackendUnavailable":
      return new SecretsBackendUnavailable(fields)
    case "SecretMalformed":
      return new SecretMalformed(fields)
  }
}

/**
 * The specification, as a plain reference model, in seconds: TTL 5 min, stale window 10 min
 * after expiry, at most one re-read forced by `invalidate` per 10 s (counted from the
 * invalidation that forced it; the ones within it change nothing).
 */
const model = (ops: ReadonlyArray<Op>) => {
  const TTL = 300, MAX_STALE = 600, RE_READ_INTERVAL = 10
  let now = 0
  let answer: Answer = "value-a"
  let cached: { value: string; expiresAt: number } | undefined
  let lastForced: number | undefined
  const results: Array<string> = []
  let calls = 0, rereads = 0, rateLimited = 0
  for (const op of ops) {
    switch (op._tag) {
      case "Advance":
        now += op.seconds
        break
      case "Answer":
        answer = op.answer
        break
      case "Invalidate":
        if (lastForced !== undefined && now < lastForced + RE_READ_INTERVAL) {
          rateLimited++
        } else {
          lastForced = now
          cached = undefined
          rereads++
        }
        break
      case "Get":
        if (cached !== undefined && now < cached.expiresAt) {
          results.push(cached.value)
          break
        }
        calls++
        if (answer === "value-a" || answer === "value-b") {
          cached = { value: answer, expiresAt: now + TTL }
          results.push(answer)
        } else if (answer === "SecretsBackendUnavailable" && cached !== undefined && now < cached.expiresAt + MAX_STALE) {
          results.push(cached.value)
        } else {
          cached = undefined
          results.push(answer)
        }
    }
  }
  return { results, calls, rereads, rateLimited }
}

describe("SecretCache (model-based)", () => {
  it.effect("agrees with the reference model on any sequence of gets, clock moves, backend answers and invalidations", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(fc.array(opArbitrary, { maxLength: 40 }), (ops) =>
          Effect.runPromise(
            Effect.gen(function*() {
              const invalidationCount = (outcome: string) =>
                Effect.map(
                  Metric.value(
                    Metric.tagged(Metric.tagged(SecretMetrics.invalidations, "backend", "vault"), "outcome", outcome)
                  ),
                  (state) => state.count
                )
              const rereadsBefore = yield* invalidationCount("reread")
              const rateLimitedBefore = yield* invalidationCount("rate-limited")
              const backend = yield* fakeBackend
              yield* backend.answerWith("value-a")
              const cache = yield* makeCache(backend.lookup)
              const results: Array<string> = []
              for (const op of ops) {
                switch (op._tag) {
                  case "Advance":
                    yield* TestClock.adjust(`${op.seconds} seconds`)
                    break
                  case "Answer":
                    yield* (op.answer === "value-a" || op.answer === "value-b"
                      ? backend.answerWith(op.answer)
                      : backend.failWith(errorFor(op.answer)))
                    break
                  case "Invalidate":
                    yield* cache.invalidate("DB_PASSWORD")
                    break
                  case "Get": {
                    const result = yield* Effect.either(value(cache.get("DB_PASSWORD")))
                    results.push(Either.isRight(result) ? result.right : result.left._tag)
                  }
                }
              }
              const expected = model(ops)
              expect(results).toEqual(expected.results)
              expect(yield* Ref.get(backend.calls)).toBe(expected.calls)
              expect((yield* invalidationCount("reread")) - rereadsBefore).toBe(expected.rereads)
              expect((yield* invalidationCount("rate-limited")) - rateLimitedBefore).toBe(expected.rateLimited)
            }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext), Effect.provide(Logger.remove(Logger.defaultLogger)))
          )),
        { numRuns: 150 }
      )
    ))
})
