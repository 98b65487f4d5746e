/**
 * A connection attempt that fails on the client's side closes its socket (internal/failedConnect):
 * pg alone leaves it open, and the server then holds the half-authenticated backend until
 * `authentication_timeout` — the soak (test/soak) saw a pool retrying during a secrets outage fill
 * `max_connections` that way (PostgreSQL 15's pg_stat_activity does not list a backend still
 * authenticating, so the socket is what the tests look at). Real PostgreSQL 15; the password
 * callback rejects, as the credentials' does when the secrets backend is down.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Pg from "pg"
import { TestDatabase } from "@takumi/testing"
import { withSocketClosedOnFailure } from "../src/internal/failedConnect.js"

const APP_PASSWORD = "app-Pa55word-failedconn-3c8d"

/** Connects with a password callback that rejects; returns the client once connect has failed. */
const failedConnect = (Client: typeof Pg.Client, env: TestDatabase.TestDatabase["Type"]) =>
  Effect.promise(async () => {
    const client = new Client({
      host: env.server.host,
      port: env.server.port,
      database: "app",
      user: "app",
      password: () => Promise.reject(new Error("the secrets backend is unavailable")),
      ssl: { ca: env.pki.ca.certPem }
    })
    client.on("error", () => {})
    const failure = await client.connect().then(() => undefined, (err: unknown) => err)
    assert.instanceOf(failure, Error)
    return client
  })

layer(TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" }), {
  timeout: 60_000,
  excludeTestServices: true
})("a failed connect", (it) => {
  it.scoped("closes its socket, so the server's half-authenticated backend goes at once", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const client = yield* failedConnect(withSocketClosedOnFailure(Pg.Client), env)
      // closed with the failure: the server's backend sees it at once instead of at authentication_timeout
      assert.isTrue(client.connection.stream.destroyed)
    }))

  it.scoped("is left open by pg's own client (what the class changes)", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const client = yield* failedConnect(Pg.Client, env)
      assert.isFalse(client.connection.stream.destroyed)
      client.connection.stream.destroy()
    }))
})
