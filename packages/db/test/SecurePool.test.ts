/**
 * SecurePool: the verified pg.Pool of SecureSqlClient.layer, shared with pg-based code (Kysely
 * here), against a real PostgreSQL 15 server with TLS (TestDatabase).
 */
import { expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { TestDatabase } from "@takumi/testing"
import { Kysely, PostgresDialect, sql } from "kysely"
import type * as Pg from "pg"
import { SecurePool } from "../src/SecurePool.js"
import { clientLayer, type TestSecrets, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-securepool-3a9d"
const ROTATED_PASSWORD = "app-Pa55word-rotated-e41b"

/** Kysely over the shared pool; never destroyed (that would end the layer's pool). */
const kyselyOver = (pool: Pg.Pool) => new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) })

interface Session {
  readonly pid: number
  readonly ssl: boolean
  readonly version: string | null
}

const session = (db: Kysely<Record<string, never>>) =>
  Effect.promise(() =>
    sql<Session>`SELECT pid, ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`.execute(db)
  ).pipe(Effect.map((result) => result.rows[0]))

/** Waits for the pool's `remove` events to leave it without a connection. */
const emptied = (pool: Pg.Pool) =>
  Effect.async<void>((resume) => {
    const onRemove = () => {
      if (pool.totalCount === 0) resume(Effect.void)
    }
    pool.on("remove", onRemove)
    onRemove()
    return Effect.sync(() => pool.off("remove", onRemove))
  })

const withClient = (secrets: TestSecrets) =>
  Effect.map(TestDatabase.TestDatabase, (env) => Layer.orDie(clientLayer(makeSettings(env.server, env.pki), secrets)))

layer(TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" }))("SecurePool", (it) => {
  it.scoped("is the pool of the SqlClient: Kysely over it runs queries on TLS connections (pg_stat_ssl)", () =>
    Effect.gen(function*() {
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      yield* Effect.gen(function*() {
        const db = kyselyOver(yield* SecurePool)
        const row = yield* session(db)
        expect(row?.ssl).toBe(true)
        expect(row?.version).toMatch(/^TLSv1\.[23]$/)
        // the SqlClient runs on the same pool: one at a time, both get its one idle connection
        const sqlClient = yield* SqlClient.SqlClient
        const [viaSql] = yield* sqlClient<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        expect(viaSql?.pid).toBe(row?.pid)
        expect((yield* SecurePool).totalCount).toBe(1)
      }).pipe(Effect.provide(yield* withClient(secrets)))
    }))

  it.scoped("gives a new connection the rotated password: a stale cached secret is re-read after 28P01", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      yield* Effect.gen(function*() {
        const db = kyselyOver(yield* SecurePool)
        const before = yield* session(db)
        // the rotation: the role and the store change; the cached secret is now stale
        yield* Effect.acquireRelease(
          env.server.query(`ALTER ROLE app PASSWORD '${ROTATED_PASSWORD}'`),
          () => env.server.query(`ALTER ROLE app PASSWORD '${APP_PASSWORD}'`).pipe(Effect.orDie)
        ).pipe(Effect.orDie)
        yield* secrets.rotate("DB_PASSWORD", ROTATED_PASSWORD)
        const invalidations = yield* secrets.invalidations
        // end the pool's connections so that the next query needs a new one
        yield* env.server.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'takumi-db-test'"
        ).pipe(Effect.orDie)
        const pool = yield* SecurePool
        yield* emptied(pool)
        const after = yield* session(db)
        expect(after?.ssl).toBe(true)
        expect(after?.pid).not.toBe(before?.pid)
        expect(yield* secrets.invalidations).toBeGreaterThan(invalidations)
      }).pipe(Effect.provide(yield* withClient(secrets)))
    }))
})
