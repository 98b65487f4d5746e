/**
 * Draining on TestClock: the readiness flip is immediate, the drain ends after the grace period
 * and not before, and a second drain neither flips again nor adds a second grace.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { Draining } from "../src/index.js"

describe("Draining", () => {
  it.effect("is not draining until drain is called, then at once, for the whole grace period", () =>
    Effect.gen(function*() {
      const draining = yield* Draining.make({ grace: "10 seconds" })
      expect(yield* draining.isDraining).toBe(false)
      const fiber = yield* Effect.fork(draining.drain)
      yield* Effect.yieldNow()
      expect(yield* draining.isDraining).toBe(true)
      yield* TestClock.adjust("9999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(yield* draining.isDraining).toBe(true)
    }))

  it.effect("lets a concurrent drain wait for the same end, and a later one return at once", () =>
    Effect.gen(function*() {
      const draining = yield* Draining.make({ grace: "5 seconds" })
      const first = yield* Effect.fork(draining.drain)
      const second = yield* Effect.fork(draining.drain)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      const later = yield* Effect.fork(draining.drain)
      yield* Effect.yieldNow()
      expect(later.unsafePoll()).not.toBeNull()
    }))

  it.effect("defaults to a 15 second grace", () =>
    Effect.map(Draining.make(), (draining) => expect(draining.grace).toEqual(Draining.defaultGrace)))
})
