import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as ReconnectSchedule from "../src/ReconnectSchedule.js"

const policy = (overrides: Partial<ReconnectSchedule.ReconnectPolicy> = {}): ReconnectSchedule.ReconnectPolicy => ({
  ...ReconnectSchedule.defaultPolicy,
  ...overrides
})

/**
 * Retries an always-failing effect on `schedule` under the TestClock, advancing time by `horizon`,
 * and returns the virtual times of every attempt plus how the retry ended (if it ended).
 */
const attemptsUnder = (
  schedule: ReturnType<typeof ReconnectSchedule.backoff>,
  horizon: Duration.DurationInput
) =>
  Effect.gen(function*() {
    const times = yield* Ref.make<ReadonlyArray<number>>([])
    const attempt = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.zipRight(Ref.update(times, (ts) => [...ts, now]), Effect.fail("refused" as const)))
    const fiber = yield* Effect.fork(Effect.retry(attempt, schedule))
    yield* TestClock.adjust(horizon)
    const exit = yield* Fiber.poll(fiber)
    yield* Fiber.interrupt(fiber)
    return { times: yield* Ref.get(times), exit }
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - (times[i] ?? 0))

describe("ReconnectSchedule", () => {
  it.effect("waits base * factor^n between attempts, starting at the base delay", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptsUnder(ReconnectSchedule.backoff(policy({ jitter: 0 })), "4 seconds")
      expect(gaps(times).slice(0, 5)).toEqual([100, 200, 400, 800, 1600])
    }))

  it.effect("never waits longer than the cap", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptsUnder(
        ReconnectSchedule.backoff(policy({ jitter: 0, cap: Duration.seconds(1) })),
        "10 seconds"
      )
      const observed = gaps(times)
      expect(observed.slice(0, 4)).toEqual([100, 200, 400, 800])
      expect(observed.slice(4)).toEqual(observed.slice(4).map(() => 1000))
      expect(observed.length).toBeGreaterThan(8)
    }))

  it.effect("keeps every jittered delay within ±jitter of the nominal delay and under the cap", () =>
    Effect.gen(function*() {
      const p = policy({ jitter: 0.2, cap: Duration.seconds(2) })
      const all: Array<ReadonlyArray<number>> = []
      for (let seed = 0; seed < 20; seed++) {
        const { times } = yield* attemptsUnder(ReconnectSchedule.backoff(p), "20 seconds").pipe(
          Effect.withRandom(Random.make(seed))
        )
        all.push(gaps(times))
      }
      for (const observed of all) {
        observed.forEach((gap, n) => {
          const nominal = Duration.toMillis(ReconnectSchedule.nominalDelay(p, n))
          expect(gap).toBeGreaterThanOrEqual(Math.floor(nominal * 0.8))
          expect(gap).toBeLessThanOrEqual(Math.ceil(Math.min(2000, nominal * 1.2)))
          expect(gap).toBeLessThanOrEqual(Duration.toMillis(ReconnectSchedule.maxDelay(p, n)) + 1)
        })
      }
      // jitter actually spreads the delays: twenty seeds do not all pick the same first delay
      expect(new Set(all.map((observed) => observed[0])).size).toBeGreaterThan(5)
    }))

  it.effect("stops retrying when the budget is spent, the last retry landing exactly on the budget", () =>
    Effect.gen(function*() {
      const { exit, times } = yield* attemptsUnder(
        ReconnectSchedule.retry(policy({ jitter: 0, budget: Duration.seconds(1) })),
        "5 seconds"
      )
      expect(times).toEqual([0, 100, 300, 700, 1000])
      expect(Option.isSome(exit) && Exit.isFailure(exit.value)).toBe(true)
    }))

  it.effect("retries within an explicit budget with within()", () =>
    Effect.gen(function*() {
      const { exit, times } = yield* attemptsUnder(
        ReconnectSchedule.within(policy({ jitter: 0 }), "250 millis"),
        "5 seconds"
      )
      expect(times).toEqual([0, 100, 250])
      expect(Option.isSome(exit)).toBe(true)
    }))

  it.effect("backoff never gives up on its own", () =>
    Effect.gen(function*() {
      const { exit, times } = yield* attemptsUnder(ReconnectSchedule.backoff(policy()), "2 minutes")
      expect(Option.isNone(exit)).toBe(true)
      expect(times.length).toBeGreaterThan(20)
    }))

  it.effect("bounds the step a retry can be in after a given time by the step its backoff can have reached", () =>
    Effect.gen(function*() {
      const p = policy({ jitter: 0 })
      // jitter 0: steps start at 0, 100, 300, 700, 1500 — at 1000 ms the retry waits in the 800 ms step
      expect(Duration.toMillis(ReconnectSchedule.stepBound(p, "50 millis"))).toBe(100)
      expect(Duration.toMillis(ReconnectSchedule.stepBound(p, "1 second"))).toBe(800)
      expect(Duration.toMillis(ReconnectSchedule.stepBound(p, "1 hour"))).toBe(5000)
      // with jitter every observed delay stays within the bound of the time elapsed when it began
      const jittered = policy({ jitter: 0.2 })
      for (let seed = 0; seed < 20; seed++) {
        const { times } = yield* attemptsUnder(ReconnectSchedule.backoff(jittered), "20 seconds").pipe(
          Effect.withRandom(Random.make(seed))
        )
        gaps(times).forEach((gap, n) => {
          expect(gap).toBeLessThanOrEqual(Duration.toMillis(ReconnectSchedule.stepBound(jittered, times[n] ?? 0)) + 1)
        })
      }
    }))

  it.effect("rejects a jitter outside [0, 1) naming the option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ReconnectSchedule.makePolicy({ jitter: 1.5 }))
      expect(error._tag).toBe("InvalidReconnectPolicy")
      expect(error.field).toBe("jitter")
      expect(error.message).toContain("ReconnectSchedule.layer")
    }))

  it.effect("rejects a cap below the base delay", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ReconnectSchedule.makePolicy({ base: "2 seconds", cap: "1 second" }))
      expect(error.field).toBe("cap")
    }))

  it.effect("uses the defaults (100 ms x2, cap 5 s, ±20 %, budget 10 s, no startup wait) when no policy is provided", () =>
    Effect.gen(function*() {
      const p = yield* ReconnectSchedule.policy
      expect(Duration.toMillis(p.base)).toBe(100)
      expect(p.factor).toBe(2)
      expect(Duration.toMillis(p.cap)).toBe(5000)
      expect(p.jitter).toBe(0.2)
      expect(Duration.toMillis(p.budget)).toBe(10_000)
      expect(Option.isNone(p.waitForDatabase)).toBe(true)
    }))

  it.effect("reads the policy provided by ReconnectSchedule.layer", () =>
    Effect.gen(function*() {
      const p = yield* ReconnectSchedule.policy
      expect(Duration.toMillis(p.base)).toBe(50)
      expect(Option.map(p.waitForDatabase, Duration.toMillis)).toEqual(Option.some(3000))
    }).pipe(Effect.provide(ReconnectSchedule.layer({ base: "50 millis", waitForDatabase: "3 seconds" }))))
})
