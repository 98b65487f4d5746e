import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import fc from "fast-check"
import { PoolSizing } from "../src/index.js"

describe("PoolSizing", () => {
  it("gives 40 connections per instance for 200 server connections and 4 instances", () => {
    expect(PoolSizing.maxPoolSize({ maxConnections: 200, instances: 4 })).toEqual(Either.right(40))
  })

  it.each([
    [100, 3, 0.8, 26],
    [100, 1, 0.29, 29],
    [10, 20, 0.8, 1],
    [50, 1, 1, 50]
  ] as const)("floors %i connections / %i instances * %f to %i, never below 1", (maxConnections, instances, headroom, expected) => {
    expect(PoolSizing.maxPoolSize({ maxConnections, instances, headroom })).toEqual(Either.right(expected))
  })

  it.each([
    ["maxConnections", { maxConnections: 0, instances: 1 }],
    ["maxConnections", { maxConnections: 99.5, instances: 1 }],
    ["instances", { maxConnections: 100, instances: 0 }],
    ["instances", { maxConnections: 100, instances: -2 }],
    ["headroom", { maxConnections: 100, instances: 2, headroom: 0 }],
    ["headroom", { maxConnections: 100, instances: 2, headroom: 1.2 }],
    ["headroom", { maxConnections: 100, instances: 2, headroom: Number.NaN }]
  ] as const)("refuses an invalid %s with InvalidPoolSizing", (field, input) => {
    const result = PoolSizing.maxPoolSize(input)
    expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "InvalidPoolSizing", field })
  })

  it("never lets the fleet use more than headroom * maxConnections (unless one each is all there is)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 500 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        (maxConnections, instances, headroom) => {
          const size = Either.getOrThrow(PoolSizing.maxPoolSize({ maxConnections, instances, headroom }))
          expect(size).toBeGreaterThanOrEqual(1)
          if (size > 1) expect(size * instances).toBeLessThanOrEqual(maxConnections * headroom + 1e-6)
        }
      )
    )
  })

  it.effect("is usable inside Effect.gen", () =>
    Effect.gen(function*() {
      const size = yield* PoolSizing.maxPoolSize({ maxConnections: 500, instances: 10, headroom: 0.5 })
      expect(size).toBe(25)
    }))

  it("has the requirements' presets per environment", () => {
    expect(PoolSizing.presets).toEqual({
      development: { min: 2, max: 5 },
      test: { min: 1, max: 3 },
      staging: { min: 5, max: 20 },
      production: { min: 10, max: 50 }
    })
  })
})
