import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"

const program = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)

NodeRuntime.runMain(
  program.pipe(Effect.provide(TakumiDb.layer), TakumiDb.reportStartupFailure, Effect.provide(Logger.json)),
  { disableErrorReporting: true, disablePrettyLogger: true }
)
