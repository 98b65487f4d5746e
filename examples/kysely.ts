/**
 * `npm run example:kysely` — a query builder over the verified pool: Kysely's `PostgresDialect`
 * takes a `pg.Pool`, and `SecurePool` is the one `SecureSqlClient.layer` (here `TakumiDb.layer`)
 * built and checked. Its connections keep the TLS policy, the certificate checks, the password
 * rotation and the metrics; they bypass the acquisition retries, `Idempotent`, read-replica
 * routing and the `@effect/sql` spans. The database is a throwaway PostgreSQL with TLS from
 * @takumi/testing, the password comes from `SECRETS_BACKEND=env` (development).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SecurePool, TakumiDb } from "@takumi/db"
import * as Effect from "effect/Effect"
import { type Generated, Kysely, PostgresDialect, sql } from "kysely"
import { heading, ok, runExample, startDatabase, withEnvironment } from "./internal/harness.js"

interface Schema {
  readonly todo: { readonly id: Generated<number>; readonly title: string; readonly done: Generated<boolean> }
}

runExample(
  "Kysely over SecurePool, the verified pg.Pool of TakumiDb.layer",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    yield* heading("One pool for @effect/sql and Kysely:")
    yield* Effect.gen(function*() {
      const pool = yield* SecurePool.SecurePool
      // never `kysely.destroy()`: it would end the layer's pool, whose lifetime is the layer's
      const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) })
      const sqlClient = yield* SqlClient.SqlClient
      yield* sqlClient`CREATE TABLE todo (id serial PRIMARY KEY, title text NOT NULL, done boolean NOT NULL DEFAULT false)`
      yield* ok("table created through the SqlClient")
      const rows = yield* Effect.promise(async () => {
        await kysely.insertInto("todo").values([{ title: "verify TLS" }, { title: "share the pool" }]).execute()
        await kysely.updateTable("todo").set({ done: true }).where("title", "=", "share the pool").execute()
        return kysely.selectFrom("todo").select(["title", "done"]).orderBy("id").execute()
      })
      yield* ok(`Kysely inserted, updated and read ${rows.length} rows: ${rows.map((r) => `${r.title}=${r.done}`).join(", ")}`)
      const tls = yield* Effect.promise(() =>
        sql<{ ssl: boolean; version: string }>`SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
          .execute(kysely)
      )
      yield* ok(`Kysely's connection is TLS: pg_stat_ssl ssl=${tls.rows[0]?.ssl} ${tls.rows[0]?.version}`)
      yield* ok(`one pool: ${pool.totalCount} connection(s) open for both clients`)
    }).pipe(
      Effect.provide(TakumiDb.layer),
      withEnvironment({ ...db.env, NODE_ENV: "development", SECRETS_BACKEND: "env", DB_PASSWORD: db.password })
    )
  })
)
