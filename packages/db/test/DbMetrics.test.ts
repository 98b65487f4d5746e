/**
 * DbMetrics fed by SecureSqlClient against a real PostgreSQL 15 server (PgTestServer, TLS, test
 * PKI): pool gauges, connection errors by kind (a real refused connection, real 28P01s, a
 * terminated backend), the statement duration histogram and the connection setup / TLS
 * handshake histograms. Every metric is read for this server's `server` tag only.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import type { DbSettings } from "@takumi/config"
import { SecretMetrics } from "@takumi/secrets"
import { BlackholeServer, TestDatabase } from "@takumi/testing"
import { DbMetrics, Idempotent, SecureSqlClient } from "../src/index.js"
import { configLayer, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-metrics-c4e1"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

const clientLayer = (settings: DbSettings, password = APP_PASSWORD) =>
  Layer.unwrapEffect(
    Effect.map(
      makeTestSecrets({ DB_PASSWORD: password }),
      (secrets) => SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets.layer)))
    )
  )

const sqlClient = (settings: DbSettings) =>
  Layer.build(clientLayer(settings)).pipe(Effect.orDie, Effect.map((context) => Context.get(context, SqlClient.SqlClient)))

const gauge = (metric: typeof DbMetrics.connectionsActive, port: number) =>
  Metric.value(DbMetrics.forServer(metric, "127.0.0.1", port)).pipe(Effect.map((state) => state.value))

const errorsOf = (kind: string, port: number) =>
  Metric.value(Metric.tagged(DbMetrics.forServer(DbMetrics.connectionErrors, "127.0.0.1", port), DbMetrics.kindTag, kind))
    .pipe(Effect.map((state) => state.count))

/**
 * Polls every 20 ms (for at most 5 s) until `predicate` holds — the gauges are sampled once a
 * second — and returns the last value either way.
 */
const eventually = <A>(effect: Effect.Effect<A>, predicate: (a: A) => boolean): Effect.Effect<A> =>
  Effect.filterOrFail(effect, predicate, () => "not yet").pipe(
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }),
    Effect.orElse(() => effect)
  )

/**
 * The upper bound of the bucket holding quantile `q` of the observations made between two
 * readings of a histogram (cumulative buckets: the first bound whose count reaches q × total).
 */
const quantileBound = (
  before: ReadonlyArray<readonly [number, number]>,
  after: ReadonlyArray<readonly [number, number]>,
  q: number
): number => {
  const counts = after.map(([bound, count], i) => [bound, count - (before[i]?.[1] ?? 0)] as const)
  const total = counts[counts.length - 1]?.[1] ?? 0
  return counts.find(([, count]) => count >= Math.ceil(q * total))?.[0] ?? Number.NaN
}

layer(database, { timeout: 60_000, excludeTestServices: true })("DbMetrics", (it) => {
  it.scoped("the pool gauges show connections checked out, then idle once they are returned", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const sql = yield* sqlClient(makeSettings(server, pki, { pool: { min: 0, max: 4 } }))
      yield* Effect.gen(function*() {
        yield* Effect.all([sql.reserve, sql.reserve, sql.reserve], { concurrency: "unbounded" })
        assert.strictEqual(yield* eventually(gauge(DbMetrics.connectionsActive, server.port), (n) => n === 3), 3)
        assert.strictEqual(yield* gauge(DbMetrics.connectionsWaiting, server.port), 0)
      }).pipe(Effect.scoped)
      assert.strictEqual(yield* eventually(gauge(DbMetrics.connectionsActive, server.port), (n) => n === 0), 0)
      assert.strictEqual(yield* eventually(gauge(DbMetrics.connectionsIdle, server.port), (n) => n === 3), 3)
    }))

  it.scoped("the waiting gauge counts callers queued behind a full pool", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const sql = yield* sqlClient(makeSettings(server, pki, { pool: { min: 0, max: 1 } }))
      yield* sql.reserve
      // two callers queue for the only connection (they get PoolExhausted after the connect timeout)
      yield* Effect.forkScoped(Effect.all([sql`SELECT 1`, sql`SELECT 2`], { concurrency: "unbounded", mode: "either" }))
      assert.strictEqual(yield* eventually(gauge(DbMetrics.connectionsWaiting, server.port), (n) => n === 2), 2)
      assert.strictEqual(yield* gauge(DbMetrics.connectionsActive, server.port), 1)
    }))

  it.scoped("counts a real refused connection as ConnectionRefused", () =>
    Effect.gen(function*() {
      const { pki } = yield* TestDatabase.TestDatabase
      // a port that was just free: bind, read, close
      const port = yield* BlackholeServer.make.pipe(Effect.map((b) => b.port), Effect.scoped)
      const before = yield* errorsOf("ConnectionRefused", port)
      const error = yield* Layer.build(clientLayer(makeSettings({ host: "127.0.0.1", port }, pki))).pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionRefused")
      assert.strictEqual((yield* errorsOf("ConnectionRefused", port)) - before, 1)
    }))

  it.scoped("counts each refused password (28P01): the first and the one after re-reading the secret", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const before = yield* errorsOf("AuthenticationFailed", server.port)
      const error = yield* Layer.build(clientLayer(makeSettings(server, pki), "not-the-password-e3b1")).pipe(Effect.flip)
      assert.strictEqual(error._tag, "AuthenticationFailed")
      assert.strictEqual((yield* errorsOf("AuthenticationFailed", server.port)) - before, 2)
    }))

  it.scoped("counts an idle connection terminated by the server as ConnectionLost", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const settings = makeSettings(server, pki, { applicationName: "takumi-metrics-lost" })
      const sql = yield* sqlClient(settings)
      yield* sql`SELECT 1`
      const before = yield* errorsOf("ConnectionLost", server.port)
      yield* server.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'takumi-metrics-lost'"
      ).pipe(Effect.orDie)
      const after = yield* eventually(errorsOf("ConnectionLost", server.port), (n) => n > before)
      assert.strictEqual(after - before, 1)
    }))

  it.scoped("counts a connection terminated under a running statement once as ConnectionLost", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const settings = makeSettings(server, pki, { applicationName: "takumi-metrics-busy" })
      const sql = yield* sqlClient(settings)
      const before = yield* errorsOf("ConnectionLost", server.port)
      const running = yield* Effect.fork(Effect.either(sql`SELECT pg_sleep(5)`))
      const terminated = server.query(
        "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity " +
          "WHERE application_name = 'takumi-metrics-busy' AND query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()"
      ).pipe(Effect.orDie, Effect.map((rows) => Number(rows[0]?.["n"] ?? 0)))
      assert.strictEqual(yield* eventually(terminated, (n) => n === 1), 1)
      const result = yield* Fiber.join(running)
      assert.strictEqual(result._tag, "Left")
      // the statement gets the server's 57P01; the connection's loss is reported when its socket
      // closes — once, however many errors pg emits for it
      assert.strictEqual((yield* eventually(errorsOf("ConnectionLost", server.port), (n) => n > before)) - before, 1)
      yield* Idempotent.retry(sql`SELECT 1`)
      assert.strictEqual((yield* errorsOf("ConnectionLost", server.port)) - before, 1)
    }))

  it.scoped("times every statement in the query duration histogram: the quantiles from its buckets place a slow statement apart", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const sql = yield* sqlClient(makeSettings(server, pki))
      const histogram = DbMetrics.forServer(DbMetrics.queryDuration, "127.0.0.1", server.port)
      const before = yield* Metric.value(histogram)
      for (let i = 0; i < 19; i++) yield* sql`SELECT 1`
      yield* sql`SELECT pg_sleep(1.1)`
      const after = yield* Metric.value(histogram)
      assert.strictEqual(after.count - before.count, 20)
      expect(after.sum - before.sum).toBeGreaterThanOrEqual(1.1)
      expect(after.max).toBeGreaterThanOrEqual(1.1)
      // the median and p95 are 19 fast statements (well under a second even on a loaded machine);
      // the maximum is the one that slept 1.1 s, in a bucket above 1 s
      expect(quantileBound(before.buckets, after.buckets, 0.5)).toBeLessThanOrEqual(1)
      expect(quantileBound(before.buckets, after.buckets, 0.95)).toBeLessThanOrEqual(1)
      expect(quantileBound(before.buckets, after.buckets, 1)).toBeGreaterThanOrEqual(2.5)
    }))

  it.scoped("counts a transaction's BEGIN, statement and COMMIT each in the histogram", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const sql = yield* sqlClient(makeSettings(server, pki))
      const histogram = DbMetrics.forServer(DbMetrics.queryDuration, "127.0.0.1", server.port)
      const before = yield* Metric.value(histogram)
      yield* sql`SELECT 3`.pipe(sql.withTransaction)
      assert.strictEqual((yield* Metric.value(histogram)).count - before.count, 3)
    }))

  it.scoped("records the setup time and the TLS handshake of every new connection", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const setup = DbMetrics.forServer(DbMetrics.connectionSetup, "127.0.0.1", server.port)
      const tls = DbMetrics.forServer(DbMetrics.tlsHandshake, "127.0.0.1", server.port)
      const setupBefore = yield* Metric.value(setup)
      const tlsBefore = yield* Metric.value(tls)
      const sql = yield* sqlClient(makeSettings(server, pki, { pool: { min: 0, max: 2 } }))
      // startup opened one connection; a second caller at the same time opens another
      yield* Effect.all([sql.reserve, sql.reserve], { concurrency: "unbounded" })
      const setupAfter = yield* Metric.value(setup)
      const tlsAfter = yield* Metric.value(tls)
      assert.strictEqual(setupAfter.count - setupBefore.count, 2)
      assert.strictEqual(tlsAfter.count - tlsBefore.count, 2)
      const setupSeconds = setupAfter.sum - setupBefore.sum
      const tlsSeconds = tlsAfter.sum - tlsBefore.sum
      expect(tlsSeconds).toBeGreaterThan(0)
      // the handshake is part of the setup (which adds TCP, the password and authentication)
      expect(tlsSeconds).toBeLessThan(setupSeconds)
    }))

  it("re-exports the secrets metrics of @takumi/secrets instead of defining its own", () => {
    assert.strictEqual(DbMetrics.secretFetches, SecretMetrics.fetches)
    assert.strictEqual(DbMetrics.secretCacheHits, SecretMetrics.cacheHits)
    assert.strictEqual(DbMetrics.serverLabel("db.internal", 5432), "db.internal:5432")
  })
})
