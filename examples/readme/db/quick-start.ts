import * as SqlClient from "@effect/sql/SqlClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { TakumiDb } from "@takumi/db"

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ one: number }>`SELECT 1 AS one`
  yield* Effect.log(rows)
})

// configuration from the environment, secrets backend from SECRETS_BACKEND, verified client
NodeRuntime.runMain(program.pipe(Effect.provide(TakumiDb.layer)))
