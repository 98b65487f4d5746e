import * as SqlClient from "@effect/sql/SqlClient"
import { Idempotent } from "@takumi/db"
import * as Effect from "effect/Effect"

export const program = (id: number) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const moveMoney = Effect.zipRight(
    sql`UPDATE accounts SET balance = balance - 10 WHERE id = 1`,
    sql`UPDATE accounts SET balance = balance + 10 WHERE id = 2`
  )

  // a read: safe to run again if the connection drops under it
  const user = yield* Idempotent.retry(sql`SELECT * FROM users WHERE id = ${id}`)

  // a whole transaction, re-run from BEGIN if its connection is lost (the server rolled the lost
  // attempt back). A loss during COMMIT leaves it unknown whether it committed: marking the
  // transaction idempotent is your statement that running it again is harmless.
  yield* Idempotent.retry(sql.withTransaction(moveMoney))
  return user
})
