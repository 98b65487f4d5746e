/**
 * DB_MAX_LIFETIME against a real PostgreSQL 15 server (TestDatabase: TLS, test PKI): with short
 * lifetimes, the backend behind the pool changes over time while every statement succeeds; a
 * statement or transaction that outlives the lifetime finishes on its connection, which is closed
 * once released; an idle connection past its lifetime is closed on the server. The jitter rule
 * itself is checked as arithmetic.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type { DbSettings } from "@takumi/config"
import { TestDatabase } from "@takumi/testing"
import { lifetimeSeconds, maxJitterFraction } from "../src/internal/connectionLifetime.js"
import { clientLayer, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-lifetime-77c1"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

describe("connectionLifetime", () => {
  const thirtyMinutes = { maxLifetime: Duration.minutes(30) }

  it("shortens the lifetime by a random fraction of at most 2.5 % (HikariCP's rule), per draw", () => {
    assert.strictEqual(lifetimeSeconds(thirtyMinutes, 0), 1800)
    assert.strictEqual(lifetimeSeconds(thirtyMinutes, 0.5), 1800 * (1 - maxJitterFraction / 2))
    const shortest = lifetimeSeconds(thirtyMinutes, 0.999_999)
    assert.isAbove(shortest, 1800 * 0.975 - 0.001)
    assert.isBelow(shortest, 1800 * 0.975 + 0.001)
  })

  it("gives no lifetime (pg-pool's 0) for DB_MAX_LIFETIME=0", () => {
    assert.strictEqual(lifetimeSeconds({ maxLifetime: Duration.zero }, 0.3), 0)
  })
})

const clientWith = (overrides: Partial<DbSettings>) =>
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.TestDatabase
    const settings = makeSettings(server, pki, { pool: { min: 0, max: 2 }, ...overrides })
    const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
    return Context.get(yield* Layer.build(clientLayer(settings, secrets)), SqlClient.SqlClient)
  })

const backendPid = (sql: SqlClient.SqlClient, sleepSeconds = 0) =>
  Effect.map(
    sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(${sleepSeconds})`,
    (rows) => rows[0]?.pid ?? -1
  )

/** The sessions of role `app` open on the server (superuser view, over the unix socket). */
const appSessions = Effect.flatMap(TestDatabase.TestDatabase, ({ server }) =>
  Effect.map(
    server.query("SELECT pid FROM pg_stat_activity WHERE usename = 'app'"),
    (rows) => rows.map((row) => Number(row.pid))
  )).pipe(Effect.orDie)

/** The app sessions once `pid` is no longer among them (polled every 20 ms; fails after 10 s). */
const closedOnServer = (pid: number) =>
  appSessions.pipe(
    Effect.filterOrFail((sessions) => !sessions.includes(pid)),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeout("10 seconds")
  )

layer(database, { timeout: 120_000, excludeTestServices: true })("ConnectionLifetime", (it) => {
  it.scoped("retires connections after DB_MAX_LIFETIME under steady load, with no failed statement", () =>
    Effect.gen(function*() {
      const sql = yield* clientWith({ maxLifetime: Duration.millis(800) })
      const pids = new Set<number>()
      let statements = 0
      // two callers for about 4 s, so each of the pool's two connections passes its lifetime several times
      const worker = backendPid(sql, 0.02).pipe(
        Effect.tap((pid) =>
          Effect.sync(() => {
            pids.add(pid)
            statements++
          })
        ),
        Effect.repeat(Schedule.recurUpTo("4 seconds"))
      )
      // any failed statement fails the test here
      yield* Effect.all([worker, worker], { concurrency: 2 })
      assert.isAbove(statements, 10)
      // 2 connections for 4 s with a lifetime of at most 0.8 s: at least 4 distinct backends (bound kept loose)
      assert.isAtLeast(pids.size, 4, `backends seen: ${[...pids].join(", ")}`)
    }))

  it.scoped("lets a transaction that outlives the lifetime finish on its connection, then closes that connection", () =>
    Effect.gen(function*() {
      const sql = yield* clientWith({ maxLifetime: Duration.millis(500), pool: { min: 0, max: 1 } })
      const [first, second] = yield* sql.withTransaction(
        Effect.all([backendPid(sql, 0.4), backendPid(sql, 0.4)])
      )
      assert.strictEqual(first, second)
      // the same connection survived past 0.5 s inside the transaction; released, it is retired
      const after = yield* backendPid(sql)
      assert.notStrictEqual(after, first)
      assert.notInclude(yield* closedOnServer(first), first)
    }))

  it.scoped("closes an idle connection once it passes its lifetime (nothing left on the server)", () =>
    Effect.gen(function*() {
      // DB_IDLE_TIMEOUT far above the lifetime, so only the lifetime can close the idle connection
      const sql = yield* clientWith({ maxLifetime: Duration.millis(600), idleTimeout: Duration.minutes(10) })
      const pid = yield* backendPid(sql)
      assert.include(yield* appSessions, pid)
      assert.notInclude(yield* closedOnServer(pid), pid)
    }))

  it.scoped("keeps connections with DB_MAX_LIFETIME=0", () =>
    Effect.gen(function*() {
      const sql = yield* clientWith({ maxLifetime: Duration.zero, pool: { min: 0, max: 1 } })
      const first = yield* backendPid(sql)
      yield* Effect.sleep("700 millis")
      assert.strictEqual(yield* backendPid(sql), first)
    }))
})
