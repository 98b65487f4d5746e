/**
 * ReadReplica against a real streaming hot standby (`PgTestServer.makeStandby`: pg_basebackup -R
 * from the test primary), both over TLS with the test PKI. Which server answered is checked with
 * `pg_is_in_recovery()` and `inet_server_port()`.
 */
import { expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import { readdirSync, readFileSync } from "node:fs"
import { BlackholeServer, PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import { FailoverTimeout } from "../src/DbError.js"
import * as DbHealth from "../src/DbHealth.js"
import * as ReadReplica from "../src/ReadReplica.js"
import * as ReconnectSchedule from "../src/ReconnectSchedule.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import { configLayer, makeTestSecrets, makeLogCapture, makeSettings } from "./fixtures.js"
import { makeRecordingTracer } from "./sqlBehaviour.js"

const APP_PASSWORD = "app-Pa55word-replica-0e4d"
const FAILOVER = Duration.millis(1000)

/**
 * How much later than the failover timeout a failed-over read may finish: room for a loaded
 * 2-core machine (scheduling, the TLS handshake to the primary, the statement there). Every other
 * bound on these reads is far longer (the statement timeout is 30 s), so a read that was not cut
 * at the failover timeout still fails the check.
 */
const LOAD_SLACK_MILLIS = 3000

/** The read took no longer than the failover timeout, plus slack for a loaded machine. */
const withinFailover = (took: number) => expect(took).toBeLessThanOrEqual(Duration.toMillis(FAILOVER) + LOAD_SLACK_MILLIS)

class Env extends Context.Tag("replica-test/Env")<Env, {
  readonly pki: TestPki.TestPki
  readonly primary: PgTestServer.PgTestServer
  readonly standby: PgTestServer.PgTestServer
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server: primary } = yield* TestDatabase.make({
      roles: [{ name: "app", password: APP_PASSWORD }],
      database: "app"
    })
    // the standby is a copy of the primary: it has the role and the database too
    const standby = yield* PgTestServer.makeStandby(primary)
    return { pki, primary, standby }
  }).pipe(Effect.orDie)
)

const settingsWithReplica = (env: Context.Tag.Service<Env>, replica: { readonly host: string; readonly port: number }) =>
  makeSettings(env.primary, env.pki, {
    readReplica: Option.some({ host: replica.host, port: replica.port }),
    failoverTimeout: FAILOVER
  })

const clientLayer = (settings: DbSettings) =>
  Layer.unwrapEffect(Effect.map(makeTestSecrets({ DB_PASSWORD: APP_PASSWORD }), (secrets) =>
    SecureSqlClient.layer.pipe(
      Layer.provide(Layer.mergeAll(configLayer(settings), secrets.layer, ReconnectSchedule.layer({ cap: "1 second" }))),
      Layer.orDie
    )))

interface Answer {
  readonly recovery: boolean
  readonly port: number
  /** `pg_stat_ssl.ssl` of the answering backend: the connection is TLS as the server sees it */
  readonly ssl: boolean
}

const whoAnswers = (client: SqlClient.SqlClient) =>
  Effect.map(
    client<{ recovery: boolean; port: number; ssl: boolean | null }>`SELECT pg_is_in_recovery() AS recovery,
      inet_server_port() AS port, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl`,
    (rows): Answer => ({ recovery: rows[0]?.recovery ?? false, port: Number(rows[0]?.port), ssl: rows[0]?.ssl === true })
  )

/** The pids of `parent`'s child processes, from /proc (PostgreSQL's backends, walreceiver, ...). */
const childrenOf = (parent: number): Array<number> =>
  readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      // the fields after the command name (which may hold spaces) start at the last ")"
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return Number(fields[1]) === parent ? [Number(entry)] : []
    } catch {
      // the process ended while we looked
      return []
    }
  })

/**
 * Freezes the whole server, scoped: the postmaster and every one of its processes (so a pooled
 * connection's backend stops answering too, not only new connections). Continued when the scope
 * closes; `thaw` continues them earlier.
 */
const freezeWholeServer = (server: PgTestServer.PgTestServer) =>
  Effect.gen(function*() {
    const postmaster = Option.getOrThrow(yield* server.pid)
    const pids = [postmaster, ...childrenOf(postmaster)]
    const signal = (sig: NodeJS.Signals) =>
      Effect.sync(() => {
        for (const pid of pids) {
          try {
            process.kill(pid, sig)
          } catch {
            // a process that has already exited needs no signal
          }
        }
      })
    yield* Effect.acquireRelease(signal("SIGSTOP"), () => signal("SIGCONT"))
    return { processes: pids.length, thaw: signal("SIGCONT") }
  })

const healthWhere = (predicate: (s: DbHealth.HealthSnapshot) => boolean) =>
  Effect.flatMap(DbHealth.DbHealth, (health) =>
    Effect.map(Stream.runHead(Stream.filter(health.changes, predicate)), Option.getOrThrow))

const replicaStatus = (s: DbHealth.HealthSnapshot) => Option.map(s.replica, (r) => r.status)

layer(EnvLive, { timeout: 120_000, excludeTestServices: true })("ReadReplica", (it) => {
  it.scoped("sends reads to the streaming standby while SqlClient goes to the primary", () =>
    Effect.gen(function*() {
      const env = yield* Env
      yield* Effect.gen(function*() {
        yield* healthWhere((s) => s.status === "healthy")
        const replica = yield* ReadReplica.ReadReplica
        const sql = yield* SqlClient.SqlClient
        expect(yield* whoAnswers(replica)).toEqual({ recovery: true, port: env.standby.port, ssl: true })
        expect(yield* whoAnswers(sql)).toEqual({ recovery: false, port: env.primary.port, ssl: true })
      }).pipe(Effect.provide(clientLayer(settingsWithReplica(env, env.standby))))
    }))

  it.scoped(
    "answers a read on the replica as the primary's client does (rows, values, raw, several statements, helpers, errors), with or without a tracer",
    () =>
      Effect.gen(function*() {
        const env = yield* Env
        // what users can see of one client's answers; without a tracer the replica's statements
        // run on the direct path, with one on @effect/sql's (internal/resilience/replica.ts)
        const answers = (sql: SqlClient.SqlClient) =>
          Effect.gen(function*() {
            const rows = yield* sql`SELECT ${41}::int + 1 AS n, ${"é"}::text AS t, ${null}::text AS z`
            const values = yield* sql`SELECT ${1}::int AS a, ${"b"}::text AS b`.values
            const raw = (yield* sql`SELECT generate_series(1, ${3}::int) AS s`.raw) as Pg.QueryResult
            const several = yield* sql.unsafe("SELECT 1 AS one; SELECT 2 AS two")
            const helper = yield* sql`SELECT x FROM generate_series(1, 5) AS x WHERE x IN ${sql.in([2, 4])} ORDER BY x`
            const error = yield* Effect.flip(sql`SELECT 1 / ${0}::int`)
            return {
              rows,
              values,
              raw: { command: raw.command, rowCount: raw.rowCount, rows: raw.rows },
              several,
              helper,
              error: { message: error.message, code: error.cause instanceof Pg.DatabaseError ? error.cause.code : undefined }
            }
          })
        const traced = makeRecordingTracer(yield* Effect.tracer)
        yield* Effect.gen(function*() {
          yield* healthWhere((s) => s.status === "healthy")
          const replica = yield* ReadReplica.ReadReplica
          const sql = yield* SqlClient.SqlClient
          expect((yield* whoAnswers(replica)).recovery).toBe(true)
          const expected = yield* answers(sql)
          expect(expected.error).toEqual({ message: "Failed to execute statement", code: "22012" })
          expect(yield* answers(replica)).toEqual(expected)
          expect(yield* Effect.withTracer(answers(replica), traced.tracer)).toEqual(expected)
          expect(yield* Effect.withTracer(whoAnswers(replica), traced.tracer)).toEqual({ recovery: true, port: env.standby.port, ssl: true })
          const replicaSpans = traced.recorded().filter((span) => span.attributes.get("takumi.db.role") === "read-replica")
          expect(replicaSpans.length).toBeGreaterThanOrEqual(7)
        }).pipe(Effect.provide(clientLayer(settingsWithReplica(env, env.standby))))
      })
  )

  it.scoped("cancels an interrupted read on the standby itself, and the replica keeps serving", () =>
    Effect.gen(function*() {
      const env = yield* Env
      // the standby's sessions still running the read, seen from its superuser connection
      const sleepers = env.standby.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()"
      ).pipe(Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)), Effect.orDie)
      yield* Effect.gen(function*() {
        yield* healthWhere((s) => s.status === "healthy")
        const replica = yield* ReadReplica.ReadReplica
        const sleeping = yield* Effect.fork(replica`SELECT pg_sleep(30)`)
        // wait until the standby runs it, then interrupt the caller
        yield* sleepers.pipe(Effect.repeat({ until: (n) => n === 1, times: 100, schedule: Schedule.spaced("20 millis") }))
        expect(yield* sleepers).toBe(1)
        yield* Fiber.interrupt(sleeping)
        // the cancel request is asynchronous on the server: bounded wait (100 × 20 ms)
        const left = yield* sleepers.pipe(Effect.repeat({ until: (n) => n === 0, times: 100, schedule: Schedule.spaced("20 millis") }))
        expect(left).toBe(0)
        expect(yield* whoAnswers(replica)).toEqual({ recovery: true, port: env.standby.port, ssl: true })
      }).pipe(Effect.provide(clientLayer(settingsWithReplica(env, env.standby))))
    }))

  it.scoped("fails a write sent to the replica with ReadOnlyReplica (25006)", () =>
    Effect.gen(function*() {
      const env = yield* Env
      yield* Effect.gen(function*() {
        yield* healthWhere((s) => s.status === "healthy")
        const replica = yield* ReadReplica.ReadReplica
        const error = yield* Effect.flip(replica`CREATE TABLE written_on_replica (id int)`)
        expect(error).toBeInstanceOf(SqlError)
        expect(ReadReplica.isReadOnlyReplica(error)).toBe(true)
        expect(error.cause).toBeInstanceOf(ReadReplica.ReadOnlyReplica)
        expect(error.message).toContain("Send writes through SqlClient")
        expect(error.message).toContain(`${env.standby.host}:${env.standby.port}`)
      }).pipe(Effect.provide(clientLayer(settingsWithReplica(env, env.standby))))
    }))

  it.scoped(
    "fails reads over to the primary within the failover timeout when the replica stops, alerts, and returns to the replica when it is back",
    () =>
      Effect.gen(function*() {
        const env = yield* Env
        const logs = yield* makeLogCapture
        yield* Effect.gen(function*() {
          yield* healthWhere((s) => s.status === "healthy")
          const replica = yield* ReadReplica.ReadReplica
          expect((yield* whoAnswers(replica)).recovery).toBe(true)

          yield* env.standby.pause.pipe(Effect.orDie)
          const started = yield* Clock.currentTimeMillis
          const failedOver = yield* whoAnswers(replica)
          const took = (yield* Clock.currentTimeMillis) - started
          expect(failedOver).toEqual({ recovery: false, port: env.primary.port, ssl: true })
          withinFailover(took)

          const degraded = yield* healthWhere((s) => Option.exists(s.replica, (r) => r.status === "down"))
          expect(degraded.status).toBe("degraded")
          expect(degraded.primary.status).toBe("up")
          const alerts = (yield* logs.lines).filter((l) => l.text.includes("ReadReplicaFailedOver"))
          expect(alerts.length).toBe(1)
          expect(alerts[0]?.level).toBe("WARN")
          // while the replica is known to be down, reads go straight to the primary
          expect((yield* whoAnswers(replica)).recovery).toBe(false)

          yield* env.standby.resume.pipe(Effect.orDie)
          const healthy = yield* healthWhere((s) => s.status === "healthy")
          expect(replicaStatus(healthy)).toEqual(Option.some("up"))
          expect(yield* whoAnswers(replica)).toEqual({ recovery: true, port: env.standby.port, ssl: true })
          expect((yield* logs.lines).some((l) => l.text.includes("ReadReplicaRestored"))).toBe(true)
        }).pipe(Effect.provide(clientLayer(settingsWithReplica(env, env.standby))), Effect.provide(logs.layer))
      })
  )

  it.scoped(
    "fails a read over to the primary after the failover timeout when the replica hangs (FailoverTimeout), and returns when it answers",
    () =>
      Effect.gen(function*() {
        const env = yield* Env
        yield* Effect.gen(function*() {
          yield* healthWhere((s) => s.status === "healthy")
          const replica = yield* ReadReplica.ReadReplica
          expect((yield* whoAnswers(replica)).recovery).toBe(true)
          // freeze the standby's postmaster (new connections are accepted by the kernel and never
          // answered), then end our pooled replica connections so that the next read needs a new one
          const backends = yield* env.standby.query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'takumi-db-test'"
          ).pipe(Effect.map((rows) => rows.map((r) => Number(r["pid"]))), Effect.orDie)
          expect(backends.length).toBeGreaterThan(0)
          const health = yield* DbHealth.DbHealth
          const reported = yield* Effect.fork(
            health.changes.pipe(
              Stream.filter((s) =>
                Option.exists(s.replica, (r) =>
                  r.status === "suspect" && Option.exists(r.lastError, (e) => e._tag === "ConnectionLost"))
              ),
              Stream.take(backends.length),
              Stream.runDrain
            )
          )
          const pid = Option.getOrThrow(yield* env.standby.pid)
          yield* Effect.acquireRelease(
            Effect.sync(() => process.kill(pid, "SIGSTOP")),
            () => Effect.sync(() => process.kill(pid, "SIGCONT"))
          )
          for (const backend of backends) process.kill(backend, "SIGTERM")
          // every pooled connection has reported its loss; the supervisor's probe now hangs too
          yield* Fiber.join(reported)
          const started = yield* Clock.currentTimeMillis
          const failedOver = yield* whoAnswers(replica)
          const took = (yield* Clock.currentTimeMillis) - started
          expect(failedOver).toEqual({ recovery: false, port: env.primary.port, ssl: true })
          // it waited for the replica for the failover timeout, not longer
          expect(took).toBeGreaterThanOrEqual(Duration.toMillis(FAILOVER) - 50)
          withinFailover(took)
          const down = yield* healthWhere((s) => Option.exists(s.replica, (r) => r.status === "down"))
          expect(Option.flatMap(down.replica, (r) => Option.map(r.lastError, (e) => e._tag))).toEqual(
            Option.some("FailoverTimeout")
          )
          process.kill(pid, "SIGCONT")
          yield* healthWhere((s) => s.status === "healthy")
          expect((yield* whoAnswers(replica)).recovery).toBe(true)
        }).pipe(Effect.scoped, Effect.provide(clientLayer(settingsWithReplica(env, env.standby))))
      })
  )

  it.scoped(
    "sends a read on an idle replica connection to the primary within the failover timeout when the whole replica freezes, alerts once, and returns to the replica after thaw",
    () =>
      Effect.gen(function*() {
        const env = yield* Env
        const logs = yield* makeLogCapture
        const failedOverAlerts = Effect.map(logs.lines, (lines) => lines.filter((l) => l.text.includes("ReadReplicaFailedOver")).length)
        yield* Effect.gen(function*() {
          yield* healthWhere((s) => s.status === "healthy")
          const replica = yield* ReadReplica.ReadReplica
          expect(yield* Effect.all([whoAnswers(replica), whoAnswers(replica)], { concurrency: 2 })).toEqual([
            { recovery: true, port: env.standby.port, ssl: true },
            { recovery: true, port: env.standby.port, ssl: true }
          ])
          // the replica pool holds idle connections: the next read takes one, nothing new is opened
          const idle = yield* env.standby.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'takumi-db-test' AND state = 'idle'"
          ).pipe(Effect.map((rows) => Number(rows[0]?.["n"])), Effect.orDie)
          expect(idle).toBeGreaterThan(0)
          const frozen = yield* freezeWholeServer(env.standby)
          expect(frozen.processes).toBeGreaterThan(idle)

          const started = yield* Clock.currentTimeMillis
          const failedOver = yield* whoAnswers(replica)
          const took = (yield* Clock.currentTimeMillis) - started
          expect(failedOver).toEqual({ recovery: false, port: env.primary.port, ssl: true })
          withinFailover(took)

          // the probe (a fresh connection, bounded) fails too: the replica goes down, once
          const down = yield* healthWhere((s) => Option.exists(s.replica, (r) => r.status === "down"))
          expect(down.status).toBe("degraded")
          expect(down.primary.status).toBe("up")
          expect(Option.flatMap(down.replica, (r) => Option.map(r.lastError, (e) => e._tag))).toEqual(
            Option.some("FailoverTimeout")
          )
          expect(yield* failedOverAlerts).toBe(1)
          // while it is down, reads go straight to the primary
          expect((yield* whoAnswers(replica)).port).toBe(env.primary.port)

          yield* frozen.thaw
          yield* healthWhere((s) => s.status === "healthy")
          expect(yield* whoAnswers(replica)).toEqual({ recovery: true, port: env.standby.port, ssl: true })
          expect(yield* failedOverAlerts).toBe(1)
        }).pipe(Effect.scoped, Effect.provide(clientLayer(settingsWithReplica(env, env.standby))), Effect.provide(logs.layer))
      })
  )

  it.scoped(
    "fails a transaction on a frozen replica with FailoverTimeout after the failover timeout (a typed failure, not moved statement by statement to the primary)",
    () =>
      Effect.gen(function*() {
        const env = yield* Env
        yield* Effect.gen(function*() {
          yield* healthWhere((s) => s.status === "healthy")
          const replica = yield* ReadReplica.ReadReplica
          expect((yield* whoAnswers(replica)).recovery).toBe(true)
          const frozen = yield* freezeWholeServer(env.standby)
          const started = yield* Clock.currentTimeMillis
          const exit = yield* Effect.exit(replica.withTransaction(whoAnswers(replica)))
          const took = (yield* Clock.currentTimeMillis) - started
          withinFailover(took)
          const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          expect(Option.map(error, (e) => e instanceof SqlError && e.cause instanceof FailoverTimeout)).toEqual(Option.some(true))
          yield* frozen.thaw
          yield* healthWhere((s) => s.status === "healthy")
          expect((yield* replica.withTransaction(whoAnswers(replica))).recovery).toBe(true)
        }).pipe(Effect.scoped, Effect.provide(clientLayer(settingsWithReplica(env, env.standby))))
      })
  )

  it.effect("starts with a replica that accepts connections and never answers, sending reads to the primary (FailoverTimeout)", () =>
    Effect.gen(function*() {
      const env = yield* Env
      yield* Effect.scoped(Effect.gen(function*() {
        const blackhole = yield* BlackholeServer.make
        yield* Effect.gen(function*() {
          const snapshot = yield* healthWhere((s) => Option.exists(s.replica, (r) => r.status === "down"))
          expect(snapshot.status).toBe("degraded")
          expect(Option.map(snapshot.lastError, (e) => e._tag)).toEqual(Option.some("FailoverTimeout"))
          const replica = yield* ReadReplica.ReadReplica
          expect(yield* whoAnswers(replica)).toEqual({ recovery: false, port: env.primary.port, ssl: true })
        }).pipe(Effect.provide(clientLayer(settingsWithReplica(env, blackhole))))
      }))
    }))

  it.scoped("is the primary client itself when no replica is configured", () =>
    Effect.gen(function*() {
      const env = yield* Env
      yield* Effect.gen(function*() {
        const replica = yield* ReadReplica.ReadReplica
        const sql = yield* SqlClient.SqlClient
        expect(replica).toBe(sql)
        expect(yield* whoAnswers(replica)).toEqual({ recovery: false, port: env.primary.port, ssl: true })
        expect(Option.isNone((yield* DbHealth.DbHealth.pipe(Effect.flatMap((h) => h.get))).replica)).toBe(true)
      }).pipe(Effect.provide(clientLayer(makeSettings(env.primary, env.pki))))
    }))
})
