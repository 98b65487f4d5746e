/**
 * A service's unit test without a database server, as packages/db/README.md shows it ("Test
 * layers"): `SecureSqlClient.layerTest` answers from a script and records every statement. Written
 * as an @effect/vitest test, the way a service's own test file would be (type-checked here).
 */
import { assert, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { PoolExhausted, SecureSqlClient } from "@takumi/db"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

// the code under test: renames a user, answers "busy" when the pool is exhausted
const renameUser = (id: number, name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      const rows = yield* sql<{ readonly name: string }>`SELECT name FROM users WHERE id = ${id} FOR UPDATE`
      yield* sql`UPDATE users SET name = ${name} WHERE id = ${id}`
      return rows[0]?.name ?? "unknown"
    }))
  }).pipe(
    Effect.catchTag("SqlError", (error) =>
      error.cause instanceof PoolExhausted ? Effect.succeed("busy") : Effect.fail(error))
  )

it.effect("renames a user in one transaction and returns the previous name", () =>
  Effect.gen(function*() {
    const statements = yield* Ref.make<ReadonlyArray<SecureSqlClient.layerTest.RecordedStatement>>([])
    const previous = yield* renameUser(1, "grace").pipe(
      Effect.provide(SecureSqlClient.layerTest({
        statements,
        answers: [{ when: /^SELECT name FROM users/, rows: [{ name: "ada" }] }]
      }))
    )
    assert.strictEqual(previous, "ada")
    assert.deepStrictEqual(yield* Ref.get(statements), [
      { sql: "BEGIN", params: [] },
      { sql: "SELECT name FROM users WHERE id = $1 FOR UPDATE", params: [1] },
      { sql: "UPDATE users SET name = $1 WHERE id = $2", params: ["grace", 1] },
      { sql: "COMMIT", params: [] }
    ])
  }))

it.effect("answers busy when no connection is free", () =>
  Effect.gen(function*() {
    const exhausted = new PoolExhausted({ host: "db", port: 5432, max: 10, timeoutMillis: 2000 })
    const answer = yield* renameUser(1, "grace").pipe(
      Effect.provide(SecureSqlClient.layerTest({ answers: [{ when: "BEGIN", fail: exhausted }] }))
    )
    assert.strictEqual(answer, "busy")
  }))
