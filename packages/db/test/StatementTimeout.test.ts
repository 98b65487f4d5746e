/**
 * Statements cannot hang forever, against a real PostgreSQL 15 server (TestDatabase: TLS, test
 * PKI) and, for a peer that stops answering, through a StallingProxy in front of it: the server's
 * `statement_timeout` and `idle_in_transaction_session_timeout` set at connect, the first and the
 * client's own `query_timeout` each ending a statement as a typed `StatementTimeout` (the second
 * ends the idle session, reported as `ConnectionLost` 25P03); `SlowQuery` raised while
 * a statement is still running; `DbHealth` degraded while every connection is stuck. The sweep
 * behind the last two is also checked on TestClock.
 *
 * Bounds are short (300–800 ms) so the file is fast, and the upper limits on measured times are
 * generous so that they hold on a loaded 2-core machine.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
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
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Pg from "pg"
import { type DbSettings, testSettings } from "@takumi/config"
import { StallingProxy, TestDatabase } from "@takumi/testing"
import type { ConnectTarget } from "../src/internal/classify.js"
import * as Monitor from "../src/internal/monitor.js"
import { withStatements } from "../src/internal/statement/connection.js"
import { classifyStatementTimeout, timeoutOptions } from "../src/internal/statementTimeout.js"
import { DbHealth, Idempotent, SecurityAlerts, StatementTimeout } from "../src/index.js"
import { clientLayer, makeTestSecrets, makeLogCapture, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-timeouts-5e21"
const REPORTER_PASSWORD = "reporter-Pa55word-c07d"

const database = TestDatabase.layer({
  roles: [
    { name: "app", password: APP_PASSWORD },
    // a role with its own server-side defaults, to tell "not sent" from "sent as 0"
    { name: "reporter", password: REPORTER_PASSWORD }
  ],
  database: "app"
})


/** Builds the client layer in the current scope. */
const client = (settings: DbSettings, password = APP_PASSWORD) =>
  Effect.flatMap(makeTestSecrets({ DB_PASSWORD: password }), (secrets) => Layer.build(clientLayer(settings, secrets)))

/** Polls `effect` every 10 ms (for at most 10 s) until `predicate` holds; returns the last value. */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, predicate: (a: A) => boolean) =>
  effect.pipe(
    Effect.flatMap((a) => predicate(a) ? Effect.succeed(a) : Effect.fail(Option.some(a))),
    Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 1000 }),
    Effect.catchAll((last) => Option.isOption(last) && Option.isSome(last) ? Effect.succeed(last.value) : Effect.fail(last))
  )

/** Runs `effect` and returns its failure with the milliseconds it took. */
const timedFailure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const error = yield* Effect.flip(effect)
    return { error, tookMillis: (yield* Clock.currentTimeMillis) - started }
  })

/** The `StatementTimeout` under a statement's `SqlError`, or a test failure naming what came instead. */
const statementTimeoutOf = (error: unknown): StatementTimeout => {
  assert(error instanceof SqlError, `expected a SqlError, got ${String(error)}`)
  assert(error.cause instanceof StatementTimeout, `expected a StatementTimeout cause, got ${String(error.cause)}`)
  return error.cause
}

/**
 * The two session settings a connection of role `reporter` ends up with, after the role's own
 * (`ALTER ROLE … SET`: 7 s and 9 s) and the client's `bounds` on top.
 */
const reporterSession = (bounds: Partial<DbSettings>) =>
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.TestDatabase
    yield* server.query("ALTER ROLE reporter SET statement_timeout = '7s'").pipe(Effect.orDie)
    yield* server.query("ALTER ROLE reporter SET idle_in_transaction_session_timeout = '9s'").pipe(Effect.orDie)
    const settings = makeSettings(server, pki, { user: "reporter", ...bounds })
    const sql = Context.get(yield* client(settings, REPORTER_PASSWORD), SqlClient.SqlClient)
    return yield* sql<{ statement: string; idle: string }>`
      SELECT current_setting('statement_timeout') AS statement,
             current_setting('idle_in_transaction_session_timeout') AS idle`
  })

const backendPid = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, (rows) => rows[0]?.pid)

const nextSlowQuery = (
  subscription: Queue.Dequeue<SecurityAlerts.SecurityAlert>
): Effect.Effect<SecurityAlerts.SlowQuery> =>
  Effect.flatMap(Queue.take(subscription), (alert) =>
    alert instanceof SecurityAlerts.SlowQuery ? Effect.succeed(alert) : nextSlowQuery(subscription))

const within = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string, bound: Duration.DurationInput = "10 seconds") =>
  effect.pipe(Effect.timeoutFail({ duration: bound, onTimeout: () => new Error(`timed out waiting for ${what}`) }))

// the rule tests come first: `layer(...)` below replaces vitest's `it` with its own (no TestClock)
describe("StatementTimeout", () => {
  const at = { host: "db.internal", port: 5432 }
  const bounds = { statementMillis: 30_000, queryMillis: 35_000 }
  const withCode = (code: string, message: string) => Object.assign(new Error(message), { code })

  it("classifies pg's query read timeout as side client and a 57014 statement timeout as side server, nothing else", () => {
    const client = classifyStatementTimeout(new Error("Query read timeout"), at, bounds)
    assert.strictEqual(client?.side, "client")
    assert.strictEqual(client?.timeoutMillis, 35_000)
    const server = classifyStatementTimeout(withCode("57014", "canceling statement due to statement timeout"), at, bounds)
    assert.strictEqual(server?.side, "server")
    assert.strictEqual(server?.timeoutMillis, 30_000)
    // an administrator's pg_cancel_backend is 57014 too, but not a timeout
    assert.isUndefined(classifyStatementTimeout(withCode("57014", "canceling statement due to user request"), at, bounds))
    assert.isUndefined(classifyStatementTimeout(withCode("57P01", "terminating connection"), at, bounds))
  })

  it("re-runs under Idempotent.retry only the client side (outcome unknown), never the server side (cancelled)", () => {
    const client = new StatementTimeout({ ...at, side: "client", timeoutMillis: 600 })
    const server = new StatementTimeout({ ...at, side: "server", timeoutMillis: 300, code: "57014" })
    assert.isTrue(Idempotent.isConnectionLost(new SqlError({ cause: client, message: "Failed to execute statement" })))
    assert.isFalse(Idempotent.isConnectionLost(new SqlError({ cause: server, message: "Failed to execute statement" })))
  })
})

describe("SlowQuery while running (TestClock)", () => {
  const target: ConnectTarget = {
    host: "db.internal",
    port: 5432,
    user: "app",
    database: "app",
    connectTimeoutMillis: 2000,
    poolMax: 1
  }
  const settings = (slowQuery: Duration.Duration): DbSettings => {
    const base = makeSettings(target, { ca: { certPath: "/nonexistent/ca.pem" } }, { pool: { min: 0, max: 1 } })
    return { ...base, alerts: { ...base.alerts, slowQuery } }
  }

  /**
   * A monitored pool of one (slow-query threshold 1 s) and a client of its class that never
   * connects: pg queues what it is given, and nothing is ever answered. SlowQuery shows the
   * fallback's text (no libpg-query: nothing to load while TestClock drives the sweep).
   */
  const monitoredClient = Effect.gen(function*() {
    const alerts = yield* SecurityAlerts.make
    const subscription = yield* alerts.subscribe
    const slow = settings(Duration.seconds(1))
    const monitor = yield* Monitor.make(slow, alerts, {
      sampleInterval: Duration.days(1),
      lexer: Effect.succeedNone
    })
    const instruments = monitor.forPool(target)
    const Client = withStatements(instruments.Client, target, slow, instruments.statements)
    const pool = new Pg.Pool({ Client, max: 1 })
    yield* instruments.watch(pool)
    const client = new Client({ host: "127.0.0.1", port: 1 })
    const slowQueries = Effect.map(
      Queue.takeAll(subscription),
      (chunk) => [...chunk].filter((a): a is SecurityAlerts.SlowQuery => a instanceof SecurityAlerts.SlowQuery)
    )
    return { monitor, pool, client, slowQueries }
  })

  /** `monitoredClient` with a statement submitted that never answers. */
  const hungStatement = Effect.tap(monitoredClient, ({ client }) => {
    client.query("SELECT 'secret-literal' AS hung", () => {})
  })

  it.scoped("raises SlowQuery for a statement still running once it passes the threshold, within 1.5 thresholds, once", () =>
    Effect.gen(function*() {
      const { slowQueries } = yield* hungStatement
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(yield* slowQueries, [])
      yield* TestClock.adjust("501 millis")
      const alerts = yield* slowQueries
      assert.strictEqual(alerts.length, 1)
      assert.strictEqual(alerts[0]?.running, true)
      assert.match(alerts[0]?.statement ?? "", /^SELECT … \(fingerprint [0-9a-f]{16}; text withheld: /)
      expect(alerts[0]?.statement).not.toContain("secret-literal")
      expect(alerts[0]?.durationMillis).toBeGreaterThanOrEqual(1000)
      expect(alerts[0]?.durationMillis).toBeLessThanOrEqual(1500)
      // later sweeps see it again and stay quiet
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* slowQueries, [])
    }))

  it.scoped("a statement pg refuses at once is not left running: no SlowQuery is raised for it later", () =>
    Effect.gen(function*() {
      const { client, slowQueries } = yield* monitoredClient
      // pg throws synchronously on a missing query text; the promise form turns that into a rejection
      const refused = yield* Effect.flip(Effect.tryPromise(() => client.query(null as unknown as string)))
      assert.match(String(refused.error), /null or undefined query/)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* slowQueries, [])
    }))

  it.scoped("reports the pool stuck once every connection has a statement running past the threshold", () =>
    Effect.gen(function*() {
      const { monitor, pool } = yield* hungStatement
      const changes = yield* Effect.fork(
        Stream.runHead(Stream.filter(monitor.stuckStatements(pool), Option.isSome))
      )
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(changes)))
      yield* TestClock.adjust("501 millis")
      const stuck = Option.flatten(yield* Fiber.join(changes))
      assert.isTrue(Option.exists(stuck, (s) => s.connections === 1 && s.max === 1 && s.thresholdMillis === 1000))
    }))
})

layer(database, { timeout: 120_000, excludeTestServices: true })("StatementTimeout", (it) => {
  describe("server-side bounds, sent at connect", () => {
    it.scoped("sends DB_STATEMENT_TIMEOUT and DB_IDLE_IN_TRANSACTION_TIMEOUT as the session's settings, above the role's own", () =>
      Effect.gen(function*() {
        const rows = yield* reporterSession({ statementTimeout: Duration.millis(750), idleInTransactionTimeout: Duration.millis(1500) })
        assert.deepStrictEqual(rows, [{ statement: "750ms", idle: "1500ms" }])
      }))

    it.scoped("sends nothing for a bound of 0, so the server's own setting (here the role's) applies", () =>
      Effect.gen(function*() {
        const none = { statementTimeout: Duration.zero, idleInTransactionTimeout: Duration.zero, queryTimeout: Duration.zero }
        assert.deepStrictEqual(timeoutOptions(testSettings(none)), {})
        const rows = yield* reporterSession(none)
        assert.deepStrictEqual(rows, [{ statement: "7s", idle: "9s" }])
      }))

    it.scoped("a statement running past DB_STATEMENT_TIMEOUT fails with StatementTimeout side server (57014), and its connection stays in use", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const settings = makeSettings(server, pki, { pool: { min: 0, max: 1 }, statementTimeout: Duration.millis(300) })
        const sql = Context.get(yield* client(settings), SqlClient.SqlClient)
        const before = yield* backendPid(sql)
        const { error, tookMillis } = yield* timedFailure(sql`SELECT pg_sleep(5)`)
        const timeout = statementTimeoutOf(error)
        assert.strictEqual(timeout.side, "server")
        assert.strictEqual(timeout.code, "57014")
        assert.strictEqual(timeout.timeoutMillis, 300)
        assert.strictEqual(timeout.port, server.port)
        expect(timeout.message).toContain("DB_STATEMENT_TIMEOUT")
        expect(timeout.message).toContain("300 ms")
        // cancelled by the server at its bound, long before pg_sleep(5) would have returned
        expect(tookMillis).toBeGreaterThanOrEqual(290)
        expect(tookMillis).toBeLessThan(3000)
        // the server's cancellation leaves the connection healthy: it is the same backend afterwards
        assert.strictEqual(yield* backendPid(sql), before)
        // never re-run on its own: it would only run as long again
        assert.isFalse(Idempotent.isConnectionLost(error))
      }))

    it.scoped("a transaction left idle past DB_IDLE_IN_TRANSACTION_TIMEOUT is ended by the server (25P03), logged naming the variable", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const logs = yield* makeLogCapture
        const settings = makeSettings(server, pki, { pool: { min: 0, max: 1 }, idleInTransactionTimeout: Duration.millis(400) })
        const context = yield* client(settings).pipe(Effect.provide(logs.layer))
        const sql = Context.get(context, SqlClient.SqlClient)
        const connection = yield* sql.reserve
        yield* connection.executeUnprepared("BEGIN", [], undefined)
        const rows = yield* connection.execute("SELECT pg_backend_pid() AS pid", [], undefined)
        const pid = Number(rows[0]?.["pid"])
        const started = yield* Clock.currentTimeMillis
        const ended = yield* eventually(
          Effect.map(logs.lines, (lines) => lines.filter((l) => l.text.includes("DB_IDLE_IN_TRANSACTION_TIMEOUT"))),
          (lines) => lines.length > 0
        )
        const tookMillis = (yield* Clock.currentTimeMillis) - started
        expect(ended.length).toBe(1)
        expect(ended[0]?.text).toContain("25P03")
        expect(ended[0]?.text).toContain("ConnectionLost")
        expect(tookMillis).toBeGreaterThanOrEqual(250)
        expect(tookMillis).toBeLessThan(5000)
        // the session is gone on the server, and the transaction's connection takes no further statement
        const left = yield* server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1", [pid]).pipe(Effect.orDie)
        assert.strictEqual(Number(left[0]?.["n"]), 0)
        yield* Effect.flip(connection.execute("SELECT 1", [], undefined))
      }))
  })

  describe("a peer that stops answering (StallingProxy)", () => {
    it.scoped("after stall, a statement fails with StatementTimeout side client within DB_QUERY_TIMEOUT, is not re-run, and its connection is discarded", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const proxy = yield* StallingProxy.make({ target: server })
        const settings = makeSettings(proxy, pki, {
          pool: { min: 0, max: 1 },
          statementTimeout: Duration.seconds(20),
          queryTimeout: Duration.millis(600)
        })
        const sql = Context.get(yield* client(settings), SqlClient.SqlClient)
        const before = yield* backendPid(sql)
        assert.strictEqual(yield* proxy.accepted, 1)
        yield* proxy.stall
        const { error, tookMillis } = yield* timedFailure(sql`SELECT 1 AS answer`)
        const timeout = statementTimeoutOf(error)
        assert.strictEqual(timeout.side, "client")
        assert.strictEqual(timeout.timeoutMillis, 600)
        assert.strictEqual(timeout.code, undefined)
        expect(timeout.message).toContain("DB_QUERY_TIMEOUT")
        expect(timeout.message).toContain("Idempotent.retry")
        expect(tookMillis).toBeGreaterThanOrEqual(590)
        expect(tookMillis).toBeLessThan(600 + 2500)
        // failed once: no new connection was opened to run it again
        assert.strictEqual(yield* proxy.accepted, 1)
        yield* proxy.resume
        // the next statement runs on a new connection (a new backend), not behind the unanswered one
        const after = yield* backendPid(sql)
        assert.notStrictEqual(after, before)
        assert.strictEqual(yield* proxy.accepted, 2)
      }))

    it.scoped("a client-side timeout inside a transaction fails the transaction with StatementTimeout, not a defect", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const proxy = yield* StallingProxy.make({ target: server })
        const settings = makeSettings(proxy, pki, { pool: { min: 0, max: 1 }, queryTimeout: Duration.millis(500) })
        const sql = Context.get(yield* client(settings), SqlClient.SqlClient)
        yield* backendPid(sql)
        const transaction = sql.withTransaction(
          Effect.zipRight(Effect.zipRight(sql`SELECT 1`, proxy.stall), sql`SELECT 2`)
        )
        const exit = yield* Effect.exit(transaction)
        assert(Exit.isFailure(exit))
        // a failure (not a defect: the ROLLBACK on the discarded connection did not fail)
        assert.strictEqual(statementTimeoutOf(Option.getOrUndefined(Cause.failureOption(exit.cause))).side, "client")
        yield* proxy.resume
        assert.deepStrictEqual(yield* sql<{ three: number }>`SELECT 3 AS three`, [{ three: 3 }])
      }))

    it.scoped("Idempotent.retry re-runs a statement that timed out on the client once the peer answers again", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const proxy = yield* StallingProxy.make({ target: server })
        const settings = makeSettings(proxy, pki, {
          pool: { min: 0, max: 1 },
          queryTimeout: Duration.millis(500),
          connectTimeout: Duration.seconds(5)
        })
        const sql = Context.get(yield* client(settings), SqlClient.SqlClient)
        yield* backendPid(sql)
        yield* proxy.stall
        const fiber = yield* Effect.fork(Idempotent.retry(sql<{ answer: number }>`SELECT 2 AS answer`))
        // the retry opens a new connection through the still-stalled proxy
        assert.strictEqual(yield* eventually(proxy.accepted, (n) => n >= 2), 2)
        yield* proxy.resume
        assert.deepStrictEqual(yield* within(Fiber.join(fiber), "the retried statement"), [{ answer: 2 }])
      }))

    it.scoped("raises SlowQuery while the statement is still running, once: not again when it completes", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const proxy = yield* StallingProxy.make({ target: server })
        const settings = makeSettings(proxy, pki, { pool: { min: 0, max: 2 }, queryTimeout: Duration.seconds(20) })
        const context = yield* client({ ...settings, alerts: { ...settings.alerts, slowQuery: Duration.millis(300) } })
        const sql = Context.get(context, SqlClient.SqlClient)
        const subscription = yield* Context.get(context, SecurityAlerts.SecurityAlerts).subscribe
        yield* backendPid(sql)
        yield* proxy.stall
        const started = yield* Clock.currentTimeMillis
        const fiber = yield* Effect.fork(sql<{ stalled: number }>`SELECT 41 + 1 AS stalled`)
        const alert = yield* within(nextSlowQuery(subscription), "SlowQuery")
        const raisedAfter = (yield* Clock.currentTimeMillis) - started
        // raised while the statement still waits for its answer
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
        assert.strictEqual(alert.running, true)
        // the statement text as this installation shows it (with or without libpg-query: slowQueryText.test.ts)
        assert.match(alert.statement, /^SELECT /)
        expect(alert.durationMillis).toBeGreaterThanOrEqual(300)
        expect(alert.message).toContain("still running")
        expect(raisedAfter).toBeGreaterThanOrEqual(290)
        expect(raisedAfter).toBeLessThan(3000)
        yield* proxy.resume
        assert.deepStrictEqual(yield* within(Fiber.join(fiber), "the stalled statement"), [{ stalled: 42 }])
        // a later slow statement's alert comes after any the first one's completion would have raised
        yield* sql`SELECT pg_sleep(0.5) AS later`
        const noAlerts: ReadonlyArray<SecurityAlerts.SlowQuery> = []
        const more = yield* within(
          Effect.iterate(noAlerts, {
            while: (seen) => !seen.some((a) => a.statement !== alert.statement),
            body: (seen) => Effect.map(nextSlowQuery(subscription), (a) => [...seen, a])
          }),
          "the later statement's SlowQuery"
        )
        expect(more.filter((a) => a.statement === alert.statement)).toEqual([])
      }))

    it.scoped("DbHealth reports degraded while every pool connection is stuck, healthy again after resume and completion", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* TestDatabase.TestDatabase
        const proxy = yield* StallingProxy.make({ target: server })
        const settings = makeSettings(proxy, pki, { pool: { min: 0, max: 2 }, queryTimeout: Duration.seconds(20) })
        const context = yield* client({ ...settings, alerts: { ...settings.alerts, slowQuery: Duration.millis(300) } })
        const sql = Context.get(context, SqlClient.SqlClient)
        const health = Context.get(context, DbHealth.DbHealth)
        // two open connections, both idle
        yield* Effect.all([sql`SELECT pg_sleep(0.05)`, sql`SELECT pg_sleep(0.05)`], { concurrency: "unbounded" })
        assert.strictEqual((yield* health.get).status, "healthy")
        yield* proxy.stall
        const fibers = yield* Effect.all(
          [Effect.fork(sql<{ n: number }>`SELECT 1 AS n`), Effect.fork(sql<{ n: number }>`SELECT 2 AS n`)]
        )
        const degraded = yield* within(
          Stream.runHead(Stream.filter(health.changes, (s) => s.status === "degraded")),
          "degraded"
        )
        const snapshot = Option.getOrThrow(degraded)
        for (const fiber of fibers) assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
        const stuck = Option.getOrThrow(snapshot.primary.stuck)
        assert.strictEqual(stuck.connections, 2)
        assert.strictEqual(stuck.max, 2)
        assert.strictEqual(stuck.thresholdMillis, 300)
        assert.strictEqual(snapshot.primary.status, "up")
        expect(Option.getOrElse(snapshot.detail, () => "")).toContain("every connection of the primary pool (2 of 2)")
        // readiness holds: the server may well answer new connections
        yield* health.readiness
        yield* proxy.resume
        assert.deepStrictEqual(yield* within(Fiber.join(Fiber.zip(fibers[0], fibers[1])), "the stuck statements"), [
          [{ n: 1 }],
          [{ n: 2 }]
        ])
        const healthy = yield* within(
          Stream.runHead(Stream.filter(health.changes, (s) => s.status === "healthy")),
          "healthy"
        )
        assert.isTrue(Option.exists(healthy, (s) => Option.isNone(s.primary.stuck) && Option.isNone(s.detail)))
      }))
  })
})
