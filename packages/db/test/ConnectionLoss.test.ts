/**
 * A connection that dies without a word from the server (the postmaster killed with SIGKILL: its
 * backends exit and close their sockets, no 57P01 is sent) fails the statement in flight with a
 * typed `ConnectionLost` as the `SqlError`'s cause — not pg's bare "Connection terminated
 * unexpectedly", which the soak (test/soak) found escaping untyped. Real PostgreSQL 15.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { TestDatabase } from "@takumi/testing"
import { ConnectionLost } from "../src/DbError.js"
import * as Idempotent from "../src/Idempotent.js"
import { clientLayer, makeTestSecrets, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-connloss-7e21"

layer(TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" }), {
  timeout: 120_000,
  excludeTestServices: true
})("ConnectionLoss", (it) => {
  it.scoped("a statement whose server was killed with SIGKILL fails with SqlError caused by ConnectionLost, which Idempotent treats as a loss", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const error = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const sleeping = yield* Effect.fork(Effect.flip(sql`SELECT pg_sleep(60)`))
        // wait until the statement runs on the server
        yield* env.server.query("SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'").pipe(
          Effect.filterOrFail((rows) => rows.length === 1),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds"))),
          Effect.orDie
        )
        process.kill(Option.getOrThrow(yield* env.server.pid), "SIGKILL")
        return yield* Fiber.join(sleeping)
      }).pipe(Effect.provide(clientLayer(makeSettings(env.server, env.pki), secrets)))
      // the server comes back for the rest of the file (its orphaned backends exit first)
      yield* env.server.resume.pipe(
        Effect.zipRight(env.server.query("SELECT 1")),
        Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("30 seconds"))),
        Effect.orDie
      )
      expect(error).toBeInstanceOf(SqlError)
      expect(error instanceof SqlError ? error.cause : error).toBeInstanceOf(ConnectionLost)
      expect(Idempotent.isConnectionLost(error)).toBe(true)
    }))
})

describe("ConnectionLoss typing", () => {
  it("leaves a loss the server announced (57P01) as pg's error with its SQLSTATE", async () => {
    const { typedLoss } = await import("../src/internal/connectionLoss.js")
    const target = { host: "127.0.0.1", port: 5432, user: "app", database: "app", connectTimeoutMillis: 2000, poolMax: 4 }
    const announced = Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" })
    expect(typedLoss(announced, target)).toBe(announced)
    const silent = new Error("Connection terminated unexpectedly")
    expect(typedLoss(silent, target)).toBeInstanceOf(ConnectionLost)
  })
})
