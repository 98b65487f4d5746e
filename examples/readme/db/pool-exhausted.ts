import * as SqlClient from "@effect/sql/SqlClient"
import { PoolExhausted } from "@takumi/db"
import * as Effect from "effect/Effect"

declare const respondBusy: (waiting: number | undefined) => Effect.Effect<void> // e.g. an HTTP 503 with Retry-After

export const query = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`SELECT 1`.pipe(Effect.catchTag("SqlError", (e) =>
    e.cause instanceof PoolExhausted ? respondBusy(e.cause.waiting) : Effect.fail(e))))
