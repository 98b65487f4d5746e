/**
 * HealthHttp and MetricsExport against a real TLS PostgreSQL (TestDatabase): the service's layers
 * as a service builds them (SecureSqlClient, Prometheus export, Draining, the standalone HTTP
 * server on a loopback port), checked over HTTP with `fetch` after a known workload.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Resource from "@effect/opentelemetry/Resource"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { SecureSqlClient } from "@takumi/db"
import { TestDatabase } from "@takumi/testing"
import * as Fs from "node:fs"
import { Draining, HealthHttp, MetricsExport } from "../src/index.js"
import { configLayer, makeSettings, secretsLayer } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-observability-7d2a"
const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

/** The service: database, Prometheus export, drain state and the health server on 127.0.0.1:0. */
const serviceLayer = (server: { readonly host: string; readonly port: number }, pki: TestDatabase.TestDatabase["Type"]["pki"]) => {
  const db = SecureSqlClient.layer.pipe(
    Layer.provide(Layer.merge(configLayer(makeSettings(server, pki)), secretsLayer({ DB_PASSWORD: APP_PASSWORD })))
  )
  const observability = Layer.mergeAll(
    MetricsExport.layerPrometheus(),
    Draining.layer({ grace: "1 second" })
  ).pipe(Layer.provideMerge(Layer.merge(db, configLayer(makeSettings(server, pki)))), Layer.provide(Resource.layer({ serviceName: "observability-test" })))
  return HealthHttp.layerServer({ port: 0, host: "127.0.0.1" }).pipe(Layer.provideMerge(observability))
}

const startService = Effect.gen(function*() {
  const { pki, server } = yield* TestDatabase.TestDatabase
  const context = yield* Layer.build(serviceLayer(server, pki)).pipe(Effect.orDie)
  const address = Context.get(context, HttpServer.HttpServer).address
  assert(address._tag === "TcpAddress", "the health server listens on TCP")
  const get = (path: string) =>
    Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${address.port}${path}`)
      return { status: response.status, type: response.headers.get("content-type"), body: await response.text() }
    })
  return { context, get, server, sql: Context.get(context, SqlClient.SqlClient) }
})

/** The samples of `name` in a Prometheus text whose labels include every one of `labels`. */
const samples = (text: string, name: string, labels: Record<string, string>) =>
  text.split("\n").flatMap((line) => {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line)
    if (match === null || match[1] !== name) return []
    const found = Object.fromEntries(Array.from(match[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g), (m) => [m[1]!, m[2]!]))
    return Object.entries(labels).every(([key, value]) => found[key] === value) ? [{ labels: found, value: Number(match[3]) }] : []
  })

const single = (text: string, name: string, labels: Record<string, string>) => {
  const found = samples(text, name, labels)
  assert.strictEqual(found.length, 1, `one ${name} ${JSON.stringify(labels)} in\n${text}`)
  return found[0]!.value
}

/** `histogram_quantile` as Prometheus computes it: linear within the first bucket reaching the rank. */
const quantile = (q: number, buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>) => {
  const sorted = [...buckets].sort((a, b) => a.le - b.le)
  const total = sorted[sorted.length - 1]!.count
  const rank = q * total
  let lower = 0
  let below = 0
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      if (bucket.le === Infinity) return lower
      return lower + (bucket.le - lower) * ((rank - below) / (bucket.count - below))
    }
    lower = bucket.le
    below = bucket.count
  }
  return lower
}

/** Polls every 20 ms (at most 10 s) until `predicate` holds; the last value either way. */
const eventually = <A>(effect: Effect.Effect<A>, predicate: (a: A) => boolean): Effect.Effect<A> =>
  Effect.filterOrFail(effect, predicate, () => "not yet").pipe(
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 500 }),
    Effect.orElse(() => effect)
  )

const STATEMENTS = 50

layer(database, { timeout: 90_000, excludeTestServices: true })("HealthHttp", (it) => {
  it.scoped("after 50 statements /metrics counts exactly 50 more db.client.operation.duration and its p95 is a real quantile", () =>
    Effect.gen(function*() {
      const { get, server, sql } = yield* startService
      const pool = { db_system_name: "postgresql", server_address: "127.0.0.1", server_port: String(server.port), db_namespace: "app" }
      const before = yield* get("/metrics")
      expect(before.status).toBe(200)
      expect(before.type).toContain("text/plain")
      const startup = single(before.body, "db_client_operation_duration_count", pool)
      // the one statement SecureSqlClient.layer runs at startup: the connection and posture check
      // (this is the file's first service on this server, so nothing else has been counted yet)
      expect(startup).toBe(1)
      for (let i = 0; i < STATEMENTS; i++) yield* sql`SELECT ${i}::int AS n`
      const after = (yield* get("/metrics")).body
      const count = single(after, "db_client_operation_duration_count", pool)
      assert.strictEqual(count - startup, STATEMENTS)
      const buckets = samples(after, "db_client_operation_duration_bucket", pool).map((s) => ({
        le: s.labels["le"] === "+Inf" ? Infinity : Number(s.labels["le"]),
        count: s.value
      }))
      expect(buckets.length).toBe(16)
      assert.strictEqual(buckets.find((b) => b.le === Infinity)?.count, count)
      const p95 = quantile(0.95, buckets)
      const largestFinite = Math.max(...buckets.filter((b) => b.le !== Infinity).map((b) => b.le))
      expect(p95).toBeGreaterThan(0)
      expect(p95).toBeLessThan(largestFinite)
      // loopback statements: well under a second, both the p95 and the mean (sum / count)
      expect(p95).toBeLessThan(1)
      expect(single(after, "db_client_operation_duration_sum", pool) / count).toBeLessThan(1)
      yield* Effect.sync(() =>
        Fs.writeFileSync(
          new URL("../.tsbuild/scrape-excerpt.txt", import.meta.url),
          `startup statements: ${startup}\np95: ${p95}\n\n${after}`
        )
      )
    }))

  it.scoped("a failed statement is counted under error.type = its SQLSTATE, apart from the successful ones", () =>
    Effect.gen(function*() {
      const { get, server, sql } = yield* startService
      const pool = { db_system_name: "postgresql", server_address: "127.0.0.1", server_port: String(server.port) }
      const divisionByZero = { ...pool, error_type: "22012" }
      const before = samples((yield* get("/metrics")).body, "db_client_operation_duration_count", divisionByZero)
      const failure = yield* sql`SELECT 1 / ${0}::int AS n`.pipe(Effect.flip)
      expect(failure._tag).toBe("SqlError")
      yield* sql`SELECT 1 AS n`
      const after = (yield* get("/metrics")).body
      assert.strictEqual(single(after, "db_client_operation_duration_count", divisionByZero) - (before[0]?.value ?? 0), 1)
      // the successful statements stay in the series without error_type
      const successful = samples(after, "db_client_operation_duration_count", pool).filter((s) => s.labels["error_type"] === undefined)
      assert.strictEqual(successful.length, 1)
    }))

  it.scoped("/metrics shows the pool's connections by db.client.connection.state and its maximum", () =>
    Effect.gen(function*() {
      const { get, server, sql } = yield* startService
      const pool = { server_address: "127.0.0.1", server_port: String(server.port), db_namespace: "app" }
      const counts = get("/metrics").pipe(Effect.map(({ body }) => ({
        used: single(body, "db_client_connection_count", { ...pool, db_client_connection_state: "used" }),
        idle: single(body, "db_client_connection_count", { ...pool, db_client_connection_state: "idle" }),
        max: single(body, "db_client_connection_max", pool),
        pending: single(body, "db_client_connection_pending_requests", pool)
      })))
      yield* Effect.gen(function*() {
        yield* Effect.all([sql.reserve, sql.reserve], { concurrency: "unbounded" })
        const busy = yield* eventually(counts, (c) => c.used === 2)
        expect(busy).toMatchObject({ used: 2, max: 4, pending: 0 })
      }).pipe(Effect.scoped)
      const released = yield* eventually(counts, (c) => c.used === 0 && c.idle >= 2)
      expect(released.used).toBe(0)
      expect(released.idle).toBeGreaterThanOrEqual(2)
    }))

  it.scoped("/livez and /readyz answer 200 while healthy; /readyz turns 503 as soon as the drain begins, /livez stays 200", () =>
    Effect.gen(function*() {
      const { context, get, sql } = yield* startService
      const live = yield* get("/livez")
      expect(live.status).toBe(200)
      expect(JSON.parse(live.body)).toMatchObject({ status: "ok", database: "healthy", primary: "up" })
      expect((yield* get("/readyz")).status).toBe(200)
      const draining = yield* Effect.fork(Effect.provide(Draining.drain, context))
      yield* eventually(Effect.provide(Draining.isDraining, context), (d) => d)
      const ready = yield* get("/readyz")
      expect(ready.status).toBe(503)
      expect(JSON.parse(ready.body)).toMatchObject({ status: "draining", database: "healthy" })
      // the pool still serves in-flight work during the grace period
      expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
      expect((yield* get("/livez")).status).toBe(200)
      yield* Fiber.join(draining)
    }))

  it.scoped("/readyz turns 503 when the primary stops answering and 200 again once it is back; /livez stays 200", () =>
    Effect.gen(function*() {
      const { get, server, sql } = yield* startService
      expect((yield* get("/readyz")).status).toBe(200)
      yield* server.pause.pipe(Effect.orDie)
      // the supervisor learns of the outage from the failing statement and probes at once
      yield* Effect.ignore(sql`SELECT 1`)
      const down = yield* eventually(get("/readyz"), (r) => r.status === 503)
      expect(down.status).toBe(503)
      expect(JSON.parse(down.body)).toMatchObject({ status: "down", database: "down" })
      expect((yield* get("/livez")).status).toBe(200)
      yield* server.resume.pipe(Effect.orDie)
      const back = yield* eventually(get("/readyz"), (r) => r.status === 200)
      expect(back.status).toBe(200)
    }))
})
