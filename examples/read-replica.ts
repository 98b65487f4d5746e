/**
 * `npm run example:read-replica` — a primary and a streaming hot standby (both throwaway
 * PostgreSQL servers from @takumi/testing; the standby made with pg_basebackup). With
 * `DB_READ_REPLICA_HOST` / `DB_READ_REPLICA_PORT` set, `ReadReplica` is a `SqlClient` on the
 * standby (verified like the primary: TLS, certificate, password), with failover to the primary
 * when the replica is down; the default `SqlClient` stays on the primary.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { ReadReplica, TakumiDb } from "@takumi/db"
import { PgTestServer } from "@takumi/testing"
import * as Effect from "effect/Effect"
import { heading, ok, runExample, startDatabase, withEnvironment } from "./internal/harness.js"

/** Which server answered: its port, and whether it is a standby. */
const whoAnswers = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ recovery: boolean; port: number; ssl: boolean }>`SELECT pg_is_in_recovery() AS recovery,
      inet_server_port() AS port, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl`,
    (rows) => rows[0]
  )

runExample(
  "Read replica: reads on a hot standby, writes on the primary",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    const standby = yield* PgTestServer.makeStandby(db.server).pipe(Effect.orDie)
    yield* ok(`hot standby ${standby.host}:${standby.port} streaming from the primary`)

    yield* heading("TakumiDb.layer with DB_READ_REPLICA_HOST and DB_READ_REPLICA_PORT:")
    yield* Effect.gen(function*() {
      const primary = yield* SqlClient.SqlClient
      const replica = yield* ReadReplica.ReadReplica
      const onPrimary = yield* whoAnswers(primary)
      const onReplica = yield* whoAnswers(replica)
      yield* ok(`SqlClient -> port ${onPrimary?.port} (in recovery: ${onPrimary?.recovery}, ssl: ${onPrimary?.ssl})`)
      yield* ok(`ReadReplica -> port ${onReplica?.port} (in recovery: ${onReplica?.recovery}, ssl: ${onReplica?.ssl})`)
      if (onReplica?.port !== standby.port || onPrimary?.port !== db.server.port) {
        return yield* Effect.dieMessage("the clients did not answer from the servers they are for")
      }
    }).pipe(
      Effect.provide(TakumiDb.layer),
      withEnvironment({
        ...db.env,
        NODE_ENV: "development",
        SECRETS_BACKEND: "env",
        DB_PASSWORD: db.password,
        DB_READ_REPLICA_HOST: standby.host,
        DB_READ_REPLICA_PORT: String(standby.port)
      })
    )
  })
)
