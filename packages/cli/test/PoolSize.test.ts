import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { PoolSize } from "../src/index.js"
import { errorTag, runCli } from "./fixtures.js"

describe("PoolSize", () => {
  it.effect("prints 40 first and then the formula for 200 connections shared by 4 instances", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--max-connections", "200", "--instances", "4"])
      const [first, formula] = run.stdout.split("\n")
      assert.strictEqual(run.exitCode, 0)
      assert.strictEqual(first, "40")
      assert.include(formula, "floor((200 / 4) * 0.8)")
      assert.include(formula, "= 40")
    }))

  it.effect("applies a given headroom", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--max-connections", "100", "--instances", "3", "--headroom", "0.5"])
      assert.strictEqual(run.stdout.split("\n")[0], "16")
    }))

  it.effect("prints the production preset", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--preset", "production"])
      assert.strictEqual(run.exitCode, 0)
      assert.strictEqual(run.stdout, "production preset: DB_POOL_MIN=10 DB_POOL_MAX=50")
    }))

  it.effect("says when a preset does not fit the server's connections and what to set instead", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--preset", "production", "--max-connections", "200", "--instances", "4"])
      assert.include(run.stdout, "does NOT fit")
      assert.include(run.stdout, "Set DB_POOL_MAX=40")
      assert.strictEqual(run.exitCode, 1)
      assert.deepStrictEqual(errorTag(run), Option.some("PresetDoesNotFit"))
    }))

  it.effect("fails with InvalidPoolSizing and exit code 2 (usage) for zero instances, never clamping", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--max-connections", "200", "--instances", "0"])
      assert.strictEqual(run.exitCode, 2)
      assert.deepStrictEqual(errorTag(run), Option.some("InvalidPoolSizing"))
      assert.include(run.stderr, "instances must be a positive integer")
    }))

  it.effect("fails with a UsageError and exit code 2 when only one of the formula's counts is given", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--instances", "4"])
      assert.strictEqual(run.exitCode, 2)
      assert.include(run.stderr, "--max-connections is missing")
    }))

  it.effect("exits 2 for an argument that does not parse", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--max-connections", "many", "--instances", "4"])
      assert.strictEqual(run.exitCode, 2)
    }))

  it.effect("computes the formula and the preset together as data", () =>
    Effect.gen(function*() {
      const report = yield* PoolSize.compute({
        maxConnections: Option.some(200),
        instances: Option.some(4),
        headroom: Option.none(),
        preset: Option.some("staging")
      })
      assert.deepStrictEqual(report, {
        formula: Option.some({ maxConnections: 200, instances: 4, headroom: 0.8, poolSize: 40 }),
        preset: Option.some({ environment: "staging", pool: { min: 5, max: 20 } })
      })
    }))
})
