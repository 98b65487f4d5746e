/**
 * A server that refuses the password (28P01) must not turn each refused connection into a
 * secrets-backend read. SecureSqlClient against a real PostgreSQL 15 server, its password read
 * through the real `SecretCache` (the one every production backend sits behind) over an
 * in-memory store that counts the reads the cache makes.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { SecretCache, SecretMetrics, SecretNotFound, SecretsBackend } from "@takumi/secrets"
import { type PgTestServer, TestDatabase } from "@takumi/testing"
import { SecureSqlClient } from "../src/index.js"
import { configLayer, makeLogCapture, makeSettings, untilNoConnections } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-amplify-6b2e"
const CHANGED_PASSWORD = "changed-Pa55word-amplify-d41a"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

/** An in-memory secret store behind the real SecretCache; `reads` counts the cache's backend reads. */
const cachedStore = (entries: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const store = yield* Ref.make(entries)
    const reads = yield* Ref.make(0)
    const lookup = (key: string) =>
      Effect.zipRight(
        Ref.update(reads, (n) => n + 1),
        Effect.flatMap(Ref.get(store), (current) => {
          const value = current[key]
          return value === undefined
            ? Effect.fail(new SecretNotFound({ backend: "test", key, message: `no secret ${key}` }))
            : Effect.succeed(Redacted.make(value))
        })
      )
    const cache = yield* SecretCache.make({ backend: "test", lookup, ttl: "5 minutes", maxStale: "10 minutes" })
    return {
      layer: Layer.succeed(SecretsBackend, cache),
      set: (key: string, value: string) => Ref.update(store, (current) => ({ ...current, [key]: value })),
      reads: Ref.get(reads)
    }
  })

/**
 * A client whose idle connections close at once, so that every query below opens a new one; its
 * log lines are captured (and checked for the passwords).
 */
const connect = (env: Context.Tag.Service<TestDatabase.TestDatabase>, secrets: Layer.Layer<SecretsBackend>) =>
  Effect.gen(function*() {
    const logs = yield* makeLogCapture
    const settings = makeSettings(env.server, env.pki, { idleTimeout: Duration.millis(20) })
    const context = yield* Layer.build(
      SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets)))
    ).pipe(Effect.provide(logs.layer))
    return { sql: Context.get(context, SqlClient.SqlClient), logs }
  })

const rateLimited = Metric.tagged(Metric.tagged(SecretMetrics.invalidations, "backend", "test"), "outcome", "rate-limited")
const rateLimitedCount = Effect.map(Metric.value(rateLimited), (state) => state.count)

const changePassword = (server: PgTestServer.PgTestServer, password: string) =>
  Effect.acquireRelease(
    server.query(`ALTER ROLE app PASSWORD '${password}'`).pipe(Effect.orDie),
    () => server.query(`ALTER ROLE app PASSWORD '${APP_PASSWORD}'`).pipe(Effect.orDie)
  )

layer(database, { timeout: 60_000, excludeTestServices: true })("SecureSqlClient over SecretCache (rotation amplification)", (it) => {
  it.scoped("20 sequential queries refused with 28P01 (each a new connection) make at most 2 secret reads", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const secrets = yield* cachedStore({ DB_PASSWORD: APP_PASSWORD })
      const { logs, sql } = yield* connect(env, secrets.layer)
      // the role's password changes and the store keeps the old one: the secret is now wrong
      yield* changePassword(env.server, CHANGED_PASSWORD)
      yield* untilNoConnections(env.server)
      const limitedBefore = yield* rateLimitedCount
      const started = yield* Clock.currentTimeMillis
      for (let i = 0; i < 20; i++) {
        const error = yield* Effect.flip(sql`SELECT 1`)
        expect(error.cause).toMatchObject({ code: "28P01" })
      }
      const took = (yield* Clock.currentTimeMillis) - started
      // the bound below holds within one re-read interval; 20 refused connections take far less
      expect(took).toBeLessThan(Duration.toMillis(SecretCache.defaultReReadInterval))
      // one read at startup, one re-read after the first 28P01; the other 19 invalidations are rate-limited
      expect(yield* secrets.reads).toBeLessThanOrEqual(2)
      // (the health probe's own refused connections add to these)
      expect((yield* rateLimitedCount) - limitedBefore).toBeGreaterThanOrEqual(19)
      for (const line of yield* logs.lines) {
        expect(line.text).not.toContain(APP_PASSWORD)
        expect(line.text).not.toContain(CHANGED_PASSWORD)
      }
    }))

  it.scoped("a real rotation still reaches new connections with one re-read", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const secrets = yield* cachedStore({ DB_PASSWORD: APP_PASSWORD })
      const { sql } = yield* connect(env, secrets.layer)
      // the store first, then the role: the cache still holds the old password, which keeps
      // working until ALTER ROLE. In the other order a re-read between the two steps (the health
      // probe's, say) would find the old value, and the next one is allowed only after the interval.
      yield* secrets.set("DB_PASSWORD", CHANGED_PASSWORD)
      yield* changePassword(env.server, CHANGED_PASSWORD)
      yield* untilNoConnections(env.server)
      for (let i = 0; i < 20; i++) assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      assert.strictEqual(yield* secrets.reads, 2)
    }))
})
