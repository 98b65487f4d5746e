/**
 * `npm run example:migrations` — schema migrations with `@effect/sql-pg`'s `PgMigrator` over
 * `TakumiDb.layer`: the migrator needs a `PgClient` and a `SqlClient`, which the layer provides
 * (verified TLS, secret-backed password), plus the Node platform services (`NodeContext.layer`).
 * Migrations here come from a record (`Migrator.fromRecord`); `Migrator.fromFileSystem(dir)`
 * reads `<id>_<name>.ts` files instead. The database is a throwaway PostgreSQL with TLS from
 * @takumi/testing.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as PgMigrator from "@effect/sql-pg/PgMigrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import * as Effect from "effect/Effect"
import { heading, ok, runExample, startDatabase, withEnvironment } from "./internal/harness.js"

const migrations = PgMigrator.fromRecord({
  "1_create_accounts": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE)`),
  "2_add_created_at": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`ALTER TABLE accounts ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()`)
})

runExample(
  "Migrations with PgMigrator over TakumiDb.layer",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    yield* heading("PgMigrator.run, twice:")
    yield* Effect.gen(function*() {
      const first = yield* PgMigrator.run({ loader: migrations })
      yield* ok(`first run applied ${first.length} migration(s): ${first.map(([id, name]) => `${id}_${name}`).join(", ")}`)
      const second = yield* PgMigrator.run({ loader: migrations })
      yield* ok(`second run applied ${second.length} (already recorded in effect_sql_migrations)`)
      const sql = yield* SqlClient.SqlClient
      const columns = yield* sql<{ column_name: string }>`
        SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`
      yield* ok(`accounts has columns ${columns.map((c) => c.column_name).join(", ")}`)
    }).pipe(
      Effect.provide(NodeContext.layer),
      Effect.provide(TakumiDb.layer),
      withEnvironment({ ...db.env, NODE_ENV: "development", SECRETS_BACKEND: "env", DB_PASSWORD: db.password })
    )
  })
)
