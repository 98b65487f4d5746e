/**
 * Pool exhaustion against a real PostgreSQL 15 server (PgTestServer, TLS): callers queue for a
 * connection until the connect timeout, then fail with `PoolExhausted` — and only they do. A
 * server that accepts TCP and never answers is told apart (ConnectTimeout, retried on the backoff).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Pg from "pg"
import { BlackholeServer, TestDatabase } from "@takumi/testing"
import { PoolExhausted } from "../src/DbError.js"
import { type ConnectTarget } from "../src/internal/classify.js"
import { installAcquireHook, isPoolQueueTimeout } from "../src/internal/resilience/acquire.js"
import * as ReconnectSchedule from "../src/ReconnectSchedule.js"
import * as DbMetrics from "../src/DbMetrics.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import { configLayer, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-pool-77e1"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

type Outcome =
  | { readonly _tag: "Done"; readonly caller: number; readonly answer: number | undefined }
  | { readonly _tag: "Exhausted"; readonly caller: number; readonly error: PoolExhausted; readonly afterMillis: number }
  | { readonly _tag: "Other"; readonly caller: number; readonly error: unknown }

layer(database, { timeout: 60_000, excludeTestServices: true })("PoolExhaustion", (it) => {
  it.scoped(
    "50 concurrent callers on a pool of 5 with slow queries: only the overflow gets PoolExhausted, nothing else fails, nothing is lost",
    () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
        // all 5 connections are opened at startup (DB_POOL_MIN): the first round does not wait for handshakes
        const settings = makeSettings(server, pki, { pool: { min: 5, max: 5 }, connectTimeout: Duration.millis(1000) })
        const exhaustedCount = Metric.value(
          Metric.tagged(DbMetrics.forServer(DbMetrics.connectionErrors, "127.0.0.1", server.port), DbMetrics.kindTag, "PoolExhausted")
        ).pipe(Effect.map((state) => state.count))
        const exhaustedBefore = yield* exhaustedCount
        const client = SecureSqlClient.layer.pipe(
          Layer.provide(Layer.mergeAll(configLayer(settings), secrets.layer)),
          Layer.orDie
        )
        const outcomes = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const started = yield* Clock.currentTimeMillis
          // each query holds its connection for 400 ms: in the 1 s a caller may wait, the pool
          // serves the first 5 callers at once and two more rounds of 5 from the queue
          const call = (caller: number) =>
            sql<{ caller: number }>`SELECT ${caller}::int AS caller, pg_sleep(0.4)`.pipe(
              Effect.either,
              Effect.flatMap((result): Effect.Effect<Outcome> =>
                Either.match(result, {
                  onRight: (rows) => Effect.succeed({ _tag: "Done", caller, answer: rows[0]?.caller }),
                  onLeft: (error) => {
                    const cause = error instanceof SqlError ? error.cause : undefined
                    return cause instanceof PoolExhausted
                      ? Effect.map(Clock.currentTimeMillis, (now) => ({
                        _tag: "Exhausted",
                        caller,
                        error: cause,
                        afterMillis: now - started
                      }))
                      : Effect.succeed({ _tag: "Other", caller, error })
                  }
                })
              )
            )
          return yield* Effect.all(Array.from({ length: 50 }, (_, i) => call(i)), { concurrency: "unbounded" })
        }).pipe(Effect.provide(client))

        const done = outcomes.filter((o) => o._tag === "Done")
        const exhausted = outcomes.flatMap((o) => (o._tag === "Exhausted" ? [o] : []))
        const other = outcomes.filter((o) => o._tag === "Other")
        expect(other).toEqual([])
        expect(done.length + exhausted.length).toBe(50)
        // every caller is accounted for exactly once, and each finished query answered for its own caller
        expect(new Set(outcomes.map((o) => o.caller)).size).toBe(50)
        for (const o of done) expect(o._tag === "Done" && o.answer).toBe(o.caller)
        // the pool did serve: at least one round, and at most what fits in the wait
        expect(done.length).toBeGreaterThanOrEqual(5)
        expect(done.length).toBeLessThanOrEqual(20)
        expect(exhausted.length).toBeGreaterThanOrEqual(30)
        for (const { afterMillis, error } of exhausted) {
          expect(error.max).toBe(5)
          expect(error.timeoutMillis).toBe(1000)
          expect(error.waiting).toBeGreaterThanOrEqual(1)
          expect(error.waiting).toBeLessThanOrEqual(45)
          expect(error.message).toContain("increase DB_POOL_MAX")
          expect(error.message).toContain("slow queries")
          // queued for the connect timeout, not less (the upper end is left to the count below: on
          // a loaded machine the timer and the event loop can lag by seconds)
          expect(afterMillis).toBeGreaterThanOrEqual(950)
        }
        // failed at once: a full pool is never retried (each retry would fail and count again)
        expect((yield* exhaustedCount) - exhaustedBefore).toBe(exhausted.length)
        // the largest waiting count is reported by the first caller to give up
        expect(Math.max(...exhausted.map((o) => o.error.waiting ?? 0))).toBeGreaterThanOrEqual(exhausted.length)
      })
  )
})

describe("PoolExhaustion", () => {
  const target = (port: number, connectTimeoutMillis: number, poolMax: number): ConnectTarget => ({
    host: "127.0.0.1",
    port,
    user: "app",
    database: "app",
    connectTimeoutMillis,
    poolMax
  })

  it("recognises pg-pool's queue timeout by its message, not a server connect timeout", () => {
    expect(isPoolQueueTimeout(new Error("timeout exceeded when trying to connect"))).toBe(true)
    expect(isPoolQueueTimeout(new Error("Connection terminated due to connection timeout"))).toBe(false)
  })

  it.live("reports a server that accepts and never answers as ConnectTimeout, retried on the backoff within the budget", () =>
    Effect.scoped(Effect.gen(function*() {
      const blackhole = yield* BlackholeServer.make
      const pool = new Pg.Pool({
        host: blackhole.host,
        port: blackhole.port,
        user: "app",
        database: "app",
        password: "unused",
        ssl: false,
        max: 5,
        connectionTimeoutMillis: 150
      })
      pool.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.promise(() => pool.end()))
      const policy = yield* ReconnectSchedule.makePolicy({ base: "50 millis", jitter: 0, budget: "600 millis" })
      yield* installAcquireHook(pool, { target: target(blackhole.port, 150, 5), retry: policy })
      const started = yield* Clock.currentTimeMillis
      const error = yield* Effect.flip(Effect.tryPromise(() => pool.connect()))
      const took = (yield* Clock.currentTimeMillis) - started
      expect(error.cause).not.toBeInstanceOf(PoolExhausted)
      expect(error.cause instanceof Error && error.cause.message).toBe("Connection terminated due to connection timeout")
      // attempts at 0, +50, +100, +200 ... until the 600 ms budget: several, not one
      expect(yield* blackhole.accepted).toBeGreaterThanOrEqual(3)
      expect(took).toBeGreaterThanOrEqual(600)
      // the budget ends the retries: at most one more attempt (150 ms) after it, plus generous room
      // for a loaded 2-core machine; without the budget the retries would go on until the test's timeout
      expect(took).toBeLessThan(600 + 150 + 3000)
    })))
})
