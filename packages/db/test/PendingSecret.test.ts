/**
 * The pool's use of a backend's pending value (`SecretsBackend.pending`, AWS Secrets Manager's
 * AWSPENDING) against a real PostgreSQL 15 server, with an in-memory backend whose current and
 * pending values the test sets: when the pending value is tried, how long it is kept, and how
 * the pool gets back to the current one. Every query below runs on a new connection.
 */
import { assert, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { SecretsBackend } from "@takumi/secrets"
import { type PgTestServer, TestDatabase } from "@takumi/testing"
import { SecureSqlClient } from "../src/index.js"
import { configLayer, makeSettings, untilNoConnections } from "./fixtures.js"

const OLD_PASSWORD = "pending-old-Pa55word-71aa"
const NEW_PASSWORD = "pending-new-Pa55word-e3b9"

const database = TestDatabase.layer({ roles: [{ name: "app", password: OLD_PASSWORD }], database: "app" })

/** A backend with a current and an optional pending value; counts the `pending` reads. */
const makeBackend = Effect.gen(function*() {
  const current = yield* Ref.make(OLD_PASSWORD)
  const pending = yield* Ref.make(Option.none<string>())
  const pendingReads = yield* Ref.make(0)
  const service: SecretsBackend["Type"] = {
    get: () => Effect.map(Ref.get(current), Redacted.make),
    invalidate: () => Effect.void,
    pending: () =>
      Effect.zipRight(Ref.update(pendingReads, (n) => n + 1), Effect.map(Ref.get(pending), Option.map(Redacted.make)))
  }
  return { layer: Layer.succeed(SecretsBackend, service), current, pending, pendingReads: Ref.get(pendingReads) }
})

const setRolePassword = (server: PgTestServer.PgTestServer, password: string) =>
  Effect.orDie(server.query(`ALTER ROLE app PASSWORD '${password}'`))

const connect = (env: Context.Tag.Service<TestDatabase.TestDatabase>, secrets: Layer.Layer<SecretsBackend>) =>
  Effect.gen(function*() {
    const settings = makeSettings(env.server, env.pki, { idleTimeout: Duration.millis(20) })
    const context = yield* Layer.build(
      SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets)))
    )
    const sql = Context.get(context, SqlClient.SqlClient)
    /** one query on a new connection */
    return Effect.zipRight(untilNoConnections(env.server), sql<{ one: number }>`SELECT 1 AS one`)
  })

/**
 * A client, and a rotation between `setSecret` and `finishSecret`: the role has the new password,
 * the backend's current value is the old one and its pending value the new one. One query has
 * run on a new connection (through the pending value).
 */
const inRotationWindow = Effect.gen(function*() {
  const env = yield* TestDatabase.TestDatabase
  const backend = yield* makeBackend
  const query = yield* connect(env, backend.layer)
  yield* Ref.set(backend.pending, Option.some(NEW_PASSWORD))
  yield* setRolePassword(env.server, NEW_PASSWORD)
  assert.deepStrictEqual(yield* query, [{ one: 1 }])
  return { env, backend, query }
})

layer(database, { timeout: 60_000, excludeTestServices: true })("SecureSqlClient with a pending secret (rotation window)", (it) => {
  it.scoped("tries the pending value once the current one is refused twice, then keeps it for new connections without asking again", () =>
    Effect.gen(function*() {
      const { backend, env, query } = yield* inRotationWindow
      for (let i = 0; i < 4; i++) assert.deepStrictEqual(yield* query, [{ one: 1 }])
      // the health probe's fresh connections may have asked too, but not every new connection
      assert.isAtLeast(yield* backend.pendingReads, 1)
      assert.isAtMost(yield* backend.pendingReads, 2)
      yield* setRolePassword(env.server, OLD_PASSWORD)
    }))

  it.scoped("goes back to the current value when the pending one is refused and no rotation is pending any more (an abandoned rotation)", () =>
    Effect.gen(function*() {
      const { backend, env, query } = yield* inRotationWindow
      // the rotation is rolled back: the role has the current value again, nothing is pending
      yield* setRolePassword(env.server, OLD_PASSWORD)
      yield* Ref.set(backend.pending, Option.none())
      for (let i = 0; i < 3; i++) assert.deepStrictEqual(yield* query, [{ one: 1 }])
    }))

  it.scoped("uses the current value again once it equals the pending one (the rotation finished)", () =>
    Effect.gen(function*() {
      const { backend, env, query } = yield* inRotationWindow
      // finishSecret: AWSCURRENT is the new value, AWSPENDING is gone
      yield* Ref.set(backend.current, NEW_PASSWORD)
      yield* Ref.set(backend.pending, Option.none())
      assert.deepStrictEqual(yield* query, [{ one: 1 }])
      const readsAfterFinish = yield* backend.pendingReads
      // a later rotation without a pending stage (ALTER ROLE, then the current value): had the
      // old pending value been kept, the pool would send it first and need pending again
      yield* Ref.set(backend.current, OLD_PASSWORD)
      yield* setRolePassword(env.server, OLD_PASSWORD)
      for (let i = 0; i < 3; i++) assert.deepStrictEqual(yield* query, [{ one: 1 }])
      assert.strictEqual(yield* backend.pendingReads, readsAfterFinish)
    }))
})
