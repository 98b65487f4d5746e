import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import * as Effect from "effect/Effect"

const program = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)

export const main = program.pipe(
  Effect.provide(TakumiDb.layer),
  Effect.catchTag("CertificateExpired", (e) =>
    Effect.logError(`renew the database certificate (${e.code}) at ${e.host}:${e.port}`)),
  Effect.catchTag("InsecureServer", (e) =>
    Effect.logError(e.findings.map((f) => f.rule).join(", ")))
)
