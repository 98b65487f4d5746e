import * as SqlClient from "@effect/sql/SqlClient"
import { SecurityAlerts, TakumiDb } from "@takumi/db"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

declare const pageOnCall: (message: string) => Effect.Effect<void> // your paging integration
const program = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)

const watchAlerts = Effect.gen(function*() {
  const alerts = yield* SecurityAlerts.SecurityAlerts
  yield* Stream.runForEach(alerts.stream, (alert) => {
    switch (alert._tag) {
      case "RepeatedAuthenticationFailures":
      case "UnencryptedConnection":
        return pageOnCall(alert.message)
      default:
        return Effect.void // already logged and counted
    }
  })
})

export const main = Effect.gen(function*() {
  yield* Effect.forkScoped(watchAlerts)
  yield* program
}).pipe(Effect.scoped, Effect.provide(TakumiDb.layer))
