/**
 * SecureSqlClient.layerTest: the scripted client for users' unit tests, without a server. It
 * compiles like PgClient, records every statement (transaction control included), answers from
 * its script, delivers typed failures as the real client does, and comes with ReadReplica,
 * SecurityAlerts and DbHealth.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Fs from "node:fs"
import { ConnectionLost, PoolExhausted, StatementTimeout } from "../src/DbError.js"
import * as DbHealth from "../src/DbHealth.js"
import * as Idempotent from "../src/Idempotent.js"
import * as ReadReplica from "../src/ReadReplica.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import * as SecurityAlerts from "../src/SecurityAlerts.js"

type RecordedStatement = SecureSqlClient.layerTest.RecordedStatement

const makeRecord = Ref.make<ReadonlyArray<RecordedStatement>>([])

const target = { host: "db.test", port: 5432 }

/** The `SqlError` an effect fails with (a success fails the test). */
const sqlErrorOf = <A, R>(effect: Effect.Effect<A, SqlError, R>): Effect.Effect<SqlError, never, R> =>
  effect.pipe(Effect.flatMap(() => Effect.dieMessage("expected a SqlError, the effect succeeded")), Effect.flip)

describe("SecureSqlClient.layerTest", () => {
  it.effect("records templates compiled as PgClient compiles them: $n placeholders and their parameters, in order", () =>
    Effect.gen(function*() {
      const statements = yield* makeRecord
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`SELECT * FROM ${sql("users")} WHERE id = ${42} AND name = ${"ada"}`
        yield* sql`UPDATE users SET ${sql.update({ name: "grace" })} WHERE id = ${7}`
        yield* sql`SELECT * FROM users WHERE ${sql.in("id", [1, 2])}`
      }).pipe(Effect.provide(SecureSqlClient.layerTest({ statements })))
      assert.deepStrictEqual(yield* Ref.get(statements), [
        { sql: `SELECT * FROM "users" WHERE id = $1 AND name = $2`, params: [42, "ada"] },
        { sql: `UPDATE users SET "name" = $1 WHERE id = $2`, params: ["grace", 7] },
        { sql: `SELECT * FROM users WHERE "id" IN ($1,$2)`, params: [1, 2] }
      ])
    }))

  it.effect("answers the first matching answer (text, RegExp or predicate of sql and params), and no rows otherwise", () =>
    Effect.gen(function*() {
      const layer = SecureSqlClient.layerTest({
        answers: [
          { when: "SELECT name FROM users WHERE id = $1", rows: [{ name: "ada" }] },
          { when: (_sql, params) => params[0] === "vip", rows: [{ tier: "gold" }] },
          { when: /FROM orders/, rows: [{ id: 1 }, { id: 2 }] },
          { when: /FROM orders/, rows: [{ id: 3 }] }
        ]
      })
      const [byText, byPredicate, byRegExp, unmatched] = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return [
          // a multi-line template matches its one-line spelling
          yield* sql`
            SELECT name
            FROM users WHERE id = ${1}`,
          yield* sql`SELECT tier FROM customers WHERE kind = ${"vip"}`,
          yield* sql`SELECT id FROM orders`,
          yield* sql`SELECT 1`
        ] as const
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(byText, [{ name: "ada" }])
      assert.deepStrictEqual(byPredicate, [{ tier: "gold" }])
      assert.deepStrictEqual(byRegExp, [{ id: 1 }, { id: 2 }])
      assert.deepStrictEqual(unmatched, [])
    }))

  it.effect("fails a statement with a SqlError whose cause is the scripted typed error, as the real client delivers it", () =>
    Effect.gen(function*() {
      const timeout = new StatementTimeout({ ...target, side: "server", timeoutMillis: 5000, code: "57014" })
      const exhausted = new PoolExhausted({ ...target, max: 10, timeoutMillis: 2000, waiting: 3 })
      const lost = new ConnectionLost({ ...target, code: "57P01", reason: "terminating connection" })
      const layer = SecureSqlClient.layerTest({
        answers: [
          { when: /FROM reports/, fail: timeout },
          { when: /FROM users/, fail: exhausted },
          { when: /FROM orders/, fail: lost }
        ]
      })
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const slow = yield* sqlErrorOf(sql`SELECT * FROM reports`)
        assert.instanceOf(slow, SqlError)
        assert.strictEqual(slow.cause, timeout)
        assert.strictEqual(slow.message, "Failed to execute statement")

        // a full pool fails the acquisition, before anything is sent
        const busy = yield* sql`SELECT * FROM users`.pipe(
          Effect.as("served"),
          Effect.catchTag("SqlError", (error) =>
            Effect.succeed(error.cause instanceof PoolExhausted ? `busy, ${error.cause.waiting} waiting` : "other"))
        )
        assert.strictEqual(busy, "busy, 3 waiting")
        assert.strictEqual((yield* sqlErrorOf(sql`SELECT * FROM users`)).message, "Failed to acquire connection")

        const gone = yield* sqlErrorOf(sql`SELECT * FROM orders`)
        assert.strictEqual(gone.cause, lost)
        assert.isTrue(Idempotent.isConnectionLost(gone))
      }).pipe(Effect.provide(layer))
    }))

  it.effect("records BEGIN, the statements and COMMIT for a transaction that succeeds", () =>
    Effect.gen(function*() {
      const statements = yield* makeRecord
      const result = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`UPDATE accounts SET balance = balance - ${100} WHERE id = ${1}`
          yield* sql`UPDATE accounts SET balance = balance + ${100} WHERE id = ${2}`
          return "moved"
        }))
      }).pipe(Effect.provide(SecureSqlClient.layerTest({ statements })))
      assert.strictEqual(result, "moved")
      assert.deepStrictEqual(yield* Ref.get(statements), [
        { sql: "BEGIN", params: [] },
        { sql: "UPDATE accounts SET balance = balance - $1 WHERE id = $2", params: [100, 1] },
        { sql: "UPDATE accounts SET balance = balance + $1 WHERE id = $2", params: [100, 2] },
        { sql: "COMMIT", params: [] }
      ])
    }))

  it.effect("records ROLLBACK for a transaction whose statement fails, and the caller gets the statement's SqlError", () =>
    Effect.gen(function*() {
      const statements = yield* makeRecord
      const overdrawn = Object.assign(new Error("new row violates check constraint \"balance_positive\""), {
        code: "23514"
      })
      const error = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sqlErrorOf(sql.withTransaction(Effect.gen(function*() {
          yield* sql`UPDATE accounts SET balance = balance - ${500} WHERE id = ${1}`
          yield* sql`UPDATE accounts SET balance = balance + ${500} WHERE id = ${2}`
        })))
      }).pipe(Effect.provide(SecureSqlClient.layerTest({
        statements,
        answers: [{ when: (sql, params) => sql.includes("balance - ") && params[0] === 500, fail: overdrawn }]
      })))
      assert.strictEqual(error.cause, overdrawn)
      assert.deepStrictEqual(yield* Ref.get(statements), [
        { sql: "BEGIN", params: [] },
        { sql: "UPDATE accounts SET balance = balance - $1 WHERE id = $2", params: [500, 1] },
        { sql: "ROLLBACK", params: [] }
      ])
    }))

  it.effect("fails a transaction whose connection cannot be acquired before anything runs: no statement, no ROLLBACK", () =>
    Effect.gen(function*() {
      const statements = yield* makeRecord
      const exhausted = new PoolExhausted({ ...target, max: 10, timeoutMillis: 2000 })
      const error = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sqlErrorOf(sql.withTransaction(sql`UPDATE accounts SET balance = 0`))
      }).pipe(Effect.provide(SecureSqlClient.layerTest({ statements, answers: [{ when: "BEGIN", fail: exhausted }] })))
      assert.strictEqual(error.cause, exhausted)
      assert.strictEqual(error.message, "Failed to acquire connection for transaction")
      assert.deepStrictEqual(yield* Ref.get(statements), [{ sql: "BEGIN", params: [] }])
    }))

  it.effect("answers ReadReplica from its own script and records its statements apart from the primary's", () =>
    Effect.gen(function*() {
      const primaryStatements = yield* makeRecord
      const replicaStatements = yield* makeRecord
      const layer = SecureSqlClient.layerTest({
        statements: primaryStatements,
        answers: [{ when: /FROM users/, rows: [{ name: "from primary" }] }],
        replica: { statements: replicaStatements, answers: [{ when: /FROM users/, rows: [{ name: "from replica" }] }] }
      })
      const [read, written] = yield* Effect.gen(function*() {
        const replica = yield* ReadReplica.ReadReplica
        const sql = yield* SqlClient.SqlClient
        return [yield* replica`SELECT name FROM users WHERE id = ${1}`, yield* sql`SELECT name FROM users`] as const
      }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(read, [{ name: "from replica" }])
      assert.deepStrictEqual(written, [{ name: "from primary" }])
      assert.deepStrictEqual(yield* Ref.get(replicaStatements), [{ sql: "SELECT name FROM users WHERE id = $1", params: [1] }])
      assert.deepStrictEqual(yield* Ref.get(primaryStatements), [{ sql: "SELECT name FROM users", params: [] }])
    }))

  it.effect("makes ReadReplica the SqlClient itself when the script has no replica", () =>
    Effect.gen(function*() {
      const statements = yield* makeRecord
      const rows = yield* Effect.flatMap(ReadReplica.ReadReplica, (replica) => replica`SELECT ${1}::int AS one`).pipe(
        Effect.provide(SecureSqlClient.layerTest({ statements, answers: [{ when: /AS one/, rows: [{ one: 1 }] }] }))
      )
      assert.deepStrictEqual(rows, [{ one: 1 }])
      assert.deepStrictEqual(yield* Ref.get(statements), [{ sql: "SELECT $1::int AS one", params: [1] }])
    }))

  it.scoped("provides a real SecurityAlerts: a published alert reaches a subscriber", () =>
    Effect.gen(function*() {
      const alerts = yield* SecurityAlerts.SecurityAlerts
      const subscription = yield* alerts.subscribe
      const alert = new SecurityAlerts.PoolNearExhaustion({ ...target, active: 9, max: 10, waiting: 0, ratio: 0.8 })
      yield* alerts.publish(alert)
      assert.strictEqual(yield* Queue.take(subscription), alert)
    }).pipe(Effect.provide(SecureSqlClient.layerTest())))

  it.effect("reports healthy by default and the scripted status otherwise, readiness failing while down", () =>
    Effect.gen(function*() {
      const healthy = yield* Effect.flatMap(DbHealth.DbHealth, (health) => health.get).pipe(
        Effect.provide(SecureSqlClient.layerTest())
      )
      assert.strictEqual(healthy.status, "healthy")
      const degraded = yield* Effect.flatMap(DbHealth.DbHealth, (health) => health.get).pipe(
        Effect.provide(SecureSqlClient.layerTest({ health: "degraded" }))
      )
      assert.strictEqual(degraded.status, "degraded")
      const unready = yield* Effect.flip(DbHealth.readiness).pipe(
        Effect.provide(SecureSqlClient.layerTest({ health: "down" }))
      )
      assert.strictEqual(unready._tag, "DatabaseUnavailable")
    }))
})

describe("packages/db README, Test layers", () => {
  it("quotes examples/testing/unit-test-layers.ts verbatim (the code the typecheck covers)", () => {
    const read = (path: string) => Fs.readFileSync(new URL(path, import.meta.url), "utf8")
    assert.include(read("../README.md"), "### Test layers")
    assert.include(read("../README.md"), "```ts\n" + read("../../../examples/testing/unit-test-layers.ts") + "```")
  })
})
