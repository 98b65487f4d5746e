/**
 * `npm run example:graceful-shutdown` — what a service does on SIGTERM. `NodeRuntime.runMain`
 * turns SIGTERM (and SIGINT) into an interruption of the main fiber; here the example interrupts
 * the service's fiber itself, which is the same thing, and then checks from outside:
 *
 * - a unit of work in flight (a transaction marked `Effect.uninterruptible`) finishes and commits;
 * - `TakumiDb.layer`'s scope then closes: the pool ends, waiting for its connections to close;
 * - pg_stat_activity, read as the superuser, lists no session of the service afterwards.
 *
 * The database is a throwaway PostgreSQL with TLS from @takumi/testing.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import { heading, ok, runExample, sessionsOf, startDatabase, withEnvironment } from "./internal/harness.js"

runExample(
  "Graceful shutdown: in-flight work finishes, the pool closes, no connection is left",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    const inFlight = yield* Deferred.make<void>()
    const committed = yield* Ref.make(false)

    // the service: one order written in a transaction that takes a while, then it serves forever
    const service = Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE orders (id serial PRIMARY KEY, placed_at timestamptz NOT NULL DEFAULT now())`
      // a unit of work that must not be cut in half: an interruption waits for it
      yield* Effect.gen(function*() {
        yield* sql`INSERT INTO orders DEFAULT VALUES`
        yield* Deferred.succeed(inFlight, undefined)
        yield* sql`SELECT pg_sleep(0.5)`
      }).pipe(sql.withTransaction, Effect.zipRight(Ref.set(committed, true)), Effect.uninterruptible)
      return yield* Effect.never
    }).pipe(
      Effect.provide(TakumiDb.layer),
      withEnvironment({ ...db.env, NODE_ENV: "development", SECRETS_BACKEND: "env", DB_PASSWORD: db.password })
    )

    const fiber = yield* Effect.fork(service)
    yield* Deferred.await(inFlight)
    yield* ok(`a transaction is in flight; the service has ${yield* sessionsOf(db.server)} session(s) open`)

    yield* heading("Interrupting the service (what SIGTERM does under NodeRuntime.runMain):")
    const exit = yield* Fiber.interrupt(fiber)
    yield* ok(`the service stopped (${exit._tag === "Failure" ? "interrupted" : "ended"})`)
    yield* ok(`the transaction in flight ${(yield* Ref.get(committed)) ? "finished and committed" : "was cut off"}`)
    const left = yield* sessionsOf(db.server)
    yield* ok(`pg_stat_activity: ${left} session(s) of the service left`)
    if (!(yield* Ref.get(committed)) || left !== 0) {
      return yield* Effect.dieMessage("the shutdown was not graceful")
    }
  })
)
