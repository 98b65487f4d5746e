/**
 * Failover of the primary, for real: a primary and its streaming hot standby
 * (`PgTestServer.makeStandby`) listed together in DB_HOST (read-write), writes running, the primary
 * stopped (fast shutdown) and the standby promoted (`pg_ctl promote`). Every write is an
 * `Idempotent.retry` marked INSERT of its own id into a table whose primary key is that id: a
 * write run twice would fail on the key, a lost one would be missing from the table.
 */
import { expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import type { DbSettings } from "@takumi/config"
import { PgTestServer, TestDatabase } from "@takumi/testing"
import * as DbHealth from "../src/DbHealth.js"
import * as Idempotent from "../src/Idempotent.js"
import * as ReconnectSchedule from "../src/ReconnectSchedule.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import * as SecurityAlerts from "../src/SecurityAlerts.js"
import { configLayer, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-failover-3b9e"

/** Writers that take ids 1, 2, 3, ... and INSERT each until `stop`; `acked` holds every id whose INSERT returned. */
const makeWriters = (sql: SqlClient.SqlClient, writers: number) => {
  const acked: Array<number> = []
  let next = 1
  let stopped = false
  const one = Effect.gen(function*() {
    while (!stopped) {
      const id = next++
      yield* Idempotent.retry(sql`INSERT INTO ledger (id, port) VALUES (${id}, inet_server_port())`)
      acked.push(id)
    }
  })
  const until = (count: number) =>
    Effect.repeat(Effect.sync(() => acked.length), { until: (n) => n >= count, schedule: Schedule.spaced("20 millis") })
  const stop = Effect.sync(() => {
    stopped = true
  })
  return { acked, loop: Effect.all(Array.from({ length: writers }, () => one), { concurrency: "unbounded" }), until, stop, next: () => next }
}

const clientLayer = (settings: DbSettings, budget: Duration.DurationInput) =>
  Layer.unwrapScoped(Effect.map(makeTestSecrets({ DB_PASSWORD: APP_PASSWORD }), (secrets) =>
    SecureSqlClient.layer.pipe(
      Layer.provide(Layer.mergeAll(
        configLayer(settings),
        secrets.layer,
        ReconnectSchedule.layer({ cap: "200 millis", budget })
      ))
    )))

const primaryAndStandby = Effect.gen(function*() {
  const { pki, server: primary } = yield* TestDatabase.make({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })
  const standby = yield* PgTestServer.makeStandby(primary)
  const settings = (targetSessionAttrs: DbSettings["targetSessionAttrs"]) =>
    makeSettings(primary, pki, {
      hosts: [{ host: primary.host, port: primary.port }, { host: standby.host, port: standby.port }],
      targetSessionAttrs
    })
  return { primary, standby, settings }
})

it.live("the primary is lost and the standby promoted: writes resume on the new primary, none lost or run twice; PrimaryChanged and DbHealth report the move", () =>
  Effect.gen(function*() {
    const { primary, settings, standby } = yield* primaryAndStandby
    // the whole outage (shutdown + promotion on a loaded machine) fits the retry budget
    const client = clientLayer(settings("read-write"), "90 seconds")
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const alerts = yield* (yield* SecurityAlerts.SecurityAlerts).subscribe
      const health = yield* DbHealth.DbHealth
      yield* sql`CREATE TABLE ledger (id integer PRIMARY KEY, port integer NOT NULL)`
      expect(Option.getOrUndefined((yield* health.get).primary.address)).toEqual({ host: primary.host, port: primary.port })

      // 3 writers of Idempotent.retry marked INSERTs, and one unmarked INSERT still running when the primary stops
      const writer = makeWriters(sql, 3)
      const fiber = yield* Effect.fork(writer.loop)
      const unmarked = yield* Effect.fork(sql`INSERT INTO ledger (id, port) SELECT 0, inet_server_port() FROM pg_sleep(60)`)
      yield* writer.until(20)
      yield* primary.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()").pipe(
        Effect.repeat({ until: (rows) => Number(rows[0]?.["n"]) === 1, schedule: Schedule.spaced("20 millis") })
      )
      yield* primary.stop
      yield* standby.promote
      const assignedAtPromotion = writer.next()
      yield* writer.until(writer.acked.length + 20)
      yield* writer.stop
      // the writers never failed: every write was acknowledged, on one server or the other
      yield* Fiber.join(fiber)
      // the unmarked statement was cut by the shutdown and is not run again
      const cut = yield* Fiber.await(unmarked)
      expect(Exit.isFailure(cut) && Idempotent.isConnectionLost(Cause.squash(cut.cause))).toBe(true)

      const rows = yield* sql<{ id: number; port: number }>`SELECT id, port FROM ledger ORDER BY id`
      // nothing lost, nothing twice (the primary key refuses a second row): exactly the acknowledged ids
      const acked = [...writer.acked].sort((x, y) => x - y)
      expect(rows.map((r) => r.id)).toEqual(acked)
      expect(acked).toEqual(acked.map((_, i) => i + 1))
      expect(new Set(rows.map((r) => r.port))).toEqual(new Set([primary.port, standby.port]))
      // every id handed out after the promotion was written on the new primary
      expect(rows.filter((r) => r.id >= assignedAtPromotion).every((r) => r.port === standby.port)).toBe(true)

      const changed = yield* Stream.fromQueue(alerts).pipe(
        Stream.filter((a): a is SecurityAlerts.PrimaryChanged => a._tag === "PrimaryChanged"),
        Stream.runHead,
        Effect.map(Option.getOrThrow)
      )
      expect({ from: [changed.previousHost, changed.previousPort], to: [changed.host, changed.port] })
        .toEqual({ from: [primary.host, primary.port], to: [standby.host, standby.port] })

      const snapshot = yield* health.get
      expect(Option.getOrUndefined(snapshot.primary.address)).toEqual({ host: standby.host, port: standby.port })
      expect(Option.getOrUndefined(snapshot.primary.previousAddress)).toEqual({ host: primary.host, port: primary.port })
      expect(Option.isSome(snapshot.primary.movedAt)).toBe(true)
    }).pipe(Effect.provide(client))
  }).pipe(Effect.scoped), { timeout: 180_000 })

const ourBackends = (server: PgTestServer.PgTestServer) =>
  Effect.map(
    server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'takumi-db-test'"),
    (rows) => Number(rows[0]?.["n"])
  )

it.live("a standby connection that finds its server promoted (ParameterStatus in_hot_standby=off) is discarded", () =>
  Effect.gen(function*() {
    const { primary, settings, standby } = yield* primaryAndStandby
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const recovery = sql<{ r: boolean }>`SELECT pg_is_in_recovery() AS r`
      expect((yield* recovery)[0]?.r).toBe(true)
      expect(yield* ourBackends(standby)).toBe(1)

      yield* standby.promote
      // the server reports the change before the next ReadyForQuery of the session: this statement
      // still runs there, and the connection is closed right after its answer
      yield* recovery
      yield* ourBackends(standby).pipe(
        Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("30 seconds")
      )
      // and no listed server is a standby any more
      const exit = yield* Effect.exit(recovery)
      const failure = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      expect(failure).toBeInstanceOf(SqlError)
      const cause = failure instanceof SqlError ? failure.cause : undefined
      expect(String(cause)).toContain(
        `none of the listed hosts is a hot standby: ${primary.host}:${primary.port} is writable; ${standby.host}:${standby.port} is writable`
      )
      expect(yield* ourBackends(primary)).toBe(0)
    }).pipe(Effect.provide(clientLayer(settings("standby"), "1 second")))
  }).pipe(Effect.scoped), { timeout: 180_000 })
