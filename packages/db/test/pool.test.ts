/**
 * The pool's `pg` options come from the settings: built with `makePool` (no connection is opened)
 * and read back from `pool.options`, which is what pg-pool and every client it creates use; and
 * against a real PostgreSQL, the `DB_POOL_MIN` connections startup opens (pg_stat_activity).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { DbSettings } from "@takumi/config"
import { TestDatabase } from "@takumi/testing"
import type { Credentials } from "../src/internal/credentials.js"
import { fallbackConnectTimeoutMillis, makePool } from "../src/internal/pool.js"
import { clientLayer, makeTestSecrets, makeSettings, reloadFrom, tlsBaseline } from "./fixtures.js"

const credentials: Credentials = {
  password: () => Promise.resolve("never-used-here"),
  invalidate: () => Promise.resolve(),
  choice: () => 0,
  usePending: () => Promise.resolve(false),
  lastPasswordWasWellKnown: () => undefined
}

const optionsOf = (settings: DbSettings) =>
  Effect.map(
    makePool({ settings, host: settings.host, port: settings.port, ssl: false, credentials }),
    (pool) => pool.options
  )

const server = { host: "127.0.0.1", port: 5432 }
const pki = { ca: { certPath: "/nonexistent/ca.pem" } }

describe("makePool", () => {
  it.scoped("passes pool min/max, the idle timeout and the connect timeout from the settings to pg.Pool", () =>
    Effect.gen(function*() {
      const options = yield* optionsOf(makeSettings(server, pki, {
        pool: { min: 2, max: 7 },
        idleTimeout: Duration.millis(12_345),
        connectTimeout: Duration.millis(1_234)
      }))
      expect(options.min).toBe(2)
      expect(options.max).toBe(7)
      expect(options.idleTimeoutMillis).toBe(12_345)
      expect(options.connectionTimeoutMillis).toBe(1_234)
    }))

  it.scoped("turns a zero connect timeout (pg: wait forever) into 2000 ms", () =>
    Effect.gen(function*() {
      const options = yield* optionsOf(makeSettings(server, pki, { connectTimeout: Duration.zero }))
      expect(fallbackConnectTimeoutMillis).toBe(2000)
      expect(options.connectionTimeoutMillis).toBe(2000)
    }))

  it.scoped("turns an infinite connect timeout into 2000 ms", () =>
    Effect.gen(function*() {
      const options = yield* optionsOf(makeSettings(server, pki, { connectTimeout: Duration.infinity }))
      expect(options.connectionTimeoutMillis).toBe(2000)
    }))

  it.scoped("sends options, replication and the server bounds directly; behind PgBouncer only what it tracks", () =>
    Effect.gen(function*() {
      const direct = yield* optionsOf(makeSettings(server, pki))
      expect(direct).toMatchObject({
        options: "-c client_encoding=UTF8",
        replication: "false",
        statement_timeout: 30_000,
        idle_in_transaction_session_timeout: 60_000,
        query_timeout: 35_000
      })
      const pooled = yield* optionsOf(makeSettings(server, pki, { pooler: "pgbouncer" }))
      for (const refused of ["options", "replication", "statement_timeout", "idle_in_transaction_session_timeout"]) {
        expect(pooled).not.toHaveProperty(refused)
      }
      // the client's own timer works through PgBouncer too
      expect(pooled).toMatchObject({ query_timeout: 35_000, application_name: "takumi-db-test", client_encoding: "UTF8" })
    }))
})

const APP_PASSWORD = "app-Pa55word-pool-min-5b2e"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

layer(database, { timeout: 60_000, excludeTestServices: true })("DB_POOL_MIN", (it) => {
  it.scoped("startup opens DB_POOL_MIN connections before any statement, and they stay open past the idle timeout", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* reloadFrom(tlsBaseline)()
      const applicationName = "takumi-db-pool-min"
      const backends = server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
        applicationName
      ]).pipe(Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)), Effect.orDie)
      const settings = makeSettings(server, pki, { applicationName, pool: { min: 3, max: 5 }, idleTimeout: Duration.millis(100) })
      yield* Layer.build(clientLayer(settings, yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })))
      expect(yield* backends).toBe(3)
      // well past the idle timeout: pg-pool closes idle connections only above min
      yield* Effect.sleep("600 millis")
      expect(yield* backends).toBe(3)
    }))
})
