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

  it.effect("says when even one connection per instance is too many, and points to a pooler", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--max-connections", "100", "--instances", "400"])
      assert.strictEqual(run.stdout.split("\n")[0], "1")
      assert.include(run.stdout, "Even DB_POOL_MAX=1 does NOT fit: 400 instances would use 400 of 100 connections")
      assert.include(run.stdout, "takumi-db pool-size --pooler pgbouncer")
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

describe("PoolSize with a pooler (--pooler pgbouncer)", () => {
  const pooler = (instances: number, ...extra: ReadonlyArray<string>) =>
    runCli([
      "pool-size",
      "--pooler",
      "pgbouncer",
      "--instances",
      String(instances),
      "--max-client-conn",
      "1000",
      "--default-pool-size",
      "40",
      "--max-connections",
      "100",
      ...extra
    ])

  it.effect("prints the largest DB_POOL_MAX per instance first: max_client_conn shared by the instances", () =>
    Effect.gen(function*() {
      const run = yield* pooler(40)
      const [first, client, advice] = run.stdout.split("\n")
      assert.strictEqual(run.exitCode, 0)
      assert.strictEqual(first, "20")
      assert.include(client, "floor((1000 / 40) * 0.8)")
      assert.include(advice, "Set DB_POOL_MAX=20 on each of the 40 instances: together they open at most 800")
    }))

  it.effect("sizes the server leg by default_pool_size x pools against max_connections, whatever the instances", () =>
    Effect.gen(function*() {
      for (const instances of [4, 400]) {
        const run = yield* pooler(instances)
        assert.include(run.stdout, "floor((100 / 1) * 0.8) = floor(80) = 80")
        assert.include(run.stdout, "default_pool_size=40 fits: 1 pool(s) x 40 = 40 server connections")
      }
      const two = yield* pooler(4, "--pools", "3")
      assert.include(two.stdout, "default_pool_size=40 does NOT fit: 3 pool(s) x 40 = 120")
      assert.include(two.stdout, "set default_pool_size=26 or fewer in pgbouncer.ini, or raise max_connections to 150")
      assert.strictEqual(two.exitCode, 1)
      assert.deepStrictEqual(errorTag(two), Option.some("PoolerBudgetExceeded"))
    }))

  it.effect("checks a DB_POOL_MAX (--pool-max or the preset's): 400 instances x 10 exceed max_client_conn 1000", () =>
    Effect.gen(function*() {
      const fits = yield* pooler(40, "--pool-max", "10")
      assert.include(fits.stdout, "DB_POOL_MAX=10 fits: 40 instances x 10 = 400 client connections")
      assert.strictEqual(fits.exitCode, 0)
      const over = yield* pooler(400, "--pool-max", "10")
      assert.include(over.stdout, "DB_POOL_MAX=10 does NOT fit: 400 instances x 10 = 4000 client connections")
      assert.include(over.stdout, "set DB_POOL_MAX=2 or fewer on each instance, or raise max_client_conn to 5000")
      assert.strictEqual(over.exitCode, 1)
      assert.deepStrictEqual(errorTag(over), Option.some("PoolerBudgetExceeded"))
      const preset = yield* pooler(400, "--preset", "production")
      assert.include(preset.stdout, "DB_POOL_MAX=50 does NOT fit: 400 instances x 50 = 20000")
    }))

  it.effect("fails with a UsageError and exit code 2 when PgBouncer's limits are missing", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["pool-size", "--pooler", "pgbouncer", "--instances", "4", "--max-connections", "100"])
      assert.strictEqual(run.exitCode, 2)
      assert.include(run.stderr, "--max-client-conn is missing")
    }))
})
