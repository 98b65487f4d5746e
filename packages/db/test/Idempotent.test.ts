/**
 * `Idempotent.retry` against a real PostgreSQL 15 server (PgTestServer, TLS): connections are cut
 * under running statements with `pg_terminate_backend`, and what gets run again is counted.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { type PgTestServer, TestDatabase } from "@takumi/testing"
import * as Idempotent from "../src/Idempotent.js"
import { errorCode } from "../src/internal/classify.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import { configLayer, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-idem-3c9f"

class Env extends Context.Tag("idempotent-test/Env")<Env, {
  readonly server: PgTestServer.PgTestServer
  readonly client: Layer.Layer<SqlClient.SqlClient>
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })
    const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
    const client = SecureSqlClient.layer.pipe(
      Layer.provide(Layer.mergeAll(configLayer(makeSettings(server, pki)), secrets.layer)),
      Layer.orDie
    )
    return { server, client }
  }).pipe(Effect.orDie)
)

/** Terminates the backend running a statement that contains `marker`, as soon as it is running. */
const terminateWhenRunning = (server: PgTestServer.PgTestServer, marker: string) =>
  server.query(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
     WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
    [marker]
  ).pipe(
    Effect.filterOrFail((rows) => rows.length > 0, () => "not running yet"),
    Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 500 }),
    Effect.orDie
  )

/** `effect`, counting how many times it is run. */
const counted = <A, E, R>(count: Ref.Ref<number>, effect: Effect.Effect<A, E, R>) =>
  Effect.zipRight(Ref.update(count, (n) => n + 1), effect)

layer(EnvLive, { timeout: 60_000, excludeTestServices: true })("Idempotent", (it) => {
  const withClient = <A, E>(body: (sql: SqlClient.SqlClient, server: PgTestServer.PgTestServer) => Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      const { client, server } = yield* Env
      return yield* Effect.flatMap(SqlClient.SqlClient, (sql) => body(sql, server)).pipe(Effect.provide(client))
    })

  it.effect("fails a statement whose connection is lost while it runs when it is not marked idempotent", () =>
    withClient((sql, server) =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const statement = counted(runs, sql`SELECT pg_sleep(2), 'marker-plain'`)
        const fiber = yield* Effect.fork(statement)
        yield* terminateWhenRunning(server, "marker-plain")
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isFailure(exit)).toBe(true)
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        expect(error).toBeInstanceOf(SqlError)
        expect(Idempotent.isConnectionLost(error)).toBe(true)
        expect(yield* Ref.get(runs)).toBe(1)
      })
    ))

  it.effect("runs a statement marked idempotent again when its connection is lost, and returns its result", () =>
    withClient((sql, server) =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const statement = counted(runs,
          sql<{ answer: number }>`SELECT 42 AS answer, pg_sleep(0.3), 'marker-idem'`
        )
        const fiber = yield* Effect.fork(Idempotent.retry(statement))
        yield* terminateWhenRunning(server, "marker-idem")
        const rows = yield* Fiber.join(fiber)
        expect(rows[0]?.answer).toBe(42)
        expect(yield* Ref.get(runs)).toBe(2)
      })
    ))

  it.effect("never re-runs a statement inside a transaction, even marked idempotent: the transaction fails and rolls back", () =>
    withClient((sql, server) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE IF NOT EXISTS tx_piecemeal (id int PRIMARY KEY)`
        const runs = yield* Ref.make(0)
        const transaction = sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO tx_piecemeal VALUES (1)`
          yield* Idempotent.retry(counted(runs, sql`SELECT pg_sleep(2), 'marker-tx-inner'`))
        }))
        const fiber = yield* Effect.fork(transaction)
        yield* terminateWhenRunning(server, "marker-tx-inner")
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isFailure(exit)).toBe(true)
        expect(yield* Ref.get(runs)).toBe(1)
        expect(yield* sql`SELECT id FROM tx_piecemeal`).toEqual([])
      })
    ))

  it.effect("re-runs a whole transaction marked idempotent from BEGIN, which then commits exactly once", () =>
    withClient((sql, server) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE IF NOT EXISTS tx_whole (id int PRIMARY KEY)`
        const runs = yield* Ref.make(0)
        const transaction = counted(runs,
          sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO tx_whole VALUES (1)`
            yield* sql`SELECT pg_sleep(0.3), 'marker-tx-whole'`
          }))
        )
        const fiber = yield* Effect.fork(Idempotent.retry(transaction))
        yield* terminateWhenRunning(server, "marker-tx-whole")
        yield* Fiber.join(fiber)
        expect(yield* Ref.get(runs)).toBe(2)
        // the first attempt died before COMMIT and was rolled back by the server; the second committed
        expect(yield* sql`SELECT id FROM tx_whole`).toEqual([{ id: 1 }])
      })
    ))

  it.effect("never retries a statement's own error, even marked idempotent", () =>
    withClient((sql) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE IF NOT EXISTS unique_once (id int PRIMARY KEY)`
        yield* sql`INSERT INTO unique_once VALUES (7) ON CONFLICT DO NOTHING`
        const runs = yield* Ref.make(0)
        const error = yield* Effect.flip(
          Idempotent.retry(Effect.zipRight(Ref.update(runs, (n) => n + 1), sql`INSERT INTO unique_once VALUES (7)`))
        )
        expect(errorCode(error.cause)).toBe("23505")
        expect(yield* Ref.get(runs)).toBe(1)
      })
    ))
})

describe("Idempotent.isConnectionLost", () => {
  const sqlError = (cause: unknown, message = "Failed to execute statement") => new SqlError({ cause, message })
  const withCode = (code: string, message: string) => Object.assign(new Error(message), { code })

  it("treats server shutdown, terminated backends and resets as a lost connection", () => {
    expect(Idempotent.isConnectionLost(sqlError(withCode("57P01", "terminating connection due to administrator command"))))
      .toBe(true)
    expect(Idempotent.isConnectionLost(sqlError(withCode("ECONNRESET", "read ECONNRESET")))).toBe(true)
    expect(Idempotent.isConnectionLost(sqlError(new Error("Connection terminated unexpectedly")))).toBe(true)
    expect(Idempotent.isConnectionLost(sqlError(new Error("boom"), "Connection error"))).toBe(true)
  })

  it("treats a statement's own errors and anything that is not a SqlError as not lost", () => {
    expect(Idempotent.isConnectionLost(sqlError(withCode("23505", "duplicate key value")))).toBe(false)
    expect(Idempotent.isConnectionLost(sqlError(withCode("40001", "could not serialize access")))).toBe(false)
    expect(Idempotent.isConnectionLost(withCode("57P01", "not wrapped"))).toBe(false)
  })
})
