/**
 * Mutual TLS with the env backend, end to end through `TakumiDb.layer`: a client certificate and
 * key stand in for `DB_PASSWORD`, which is then not required; a server that authenticates by
 * certificate is reached without a password, and one that asks for a password anyway gets the
 * env backend's typed `SecretNotFound` for `DB_PASSWORD`, not a crash.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { TakumiDb } from "@takumi/db"
import { TestDatabase } from "@takumi/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

/** A TLS server with role `app`, a client certificate for it, and development variables without DB_PASSWORD. */
const setup = (method: "cert" | "scram-sha-256") =>
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: "mtls-unused-Pw-2c81" }], database: "app" })
    yield* server.reload({ hba: [{ type: "hostssl", method, clientCert: "verify-full" }] })
    const client = yield* pki.client("app")
    const env: Record<string, string> = {
      NODE_ENV: "development",
      DB_HOST: server.host,
      DB_PORT: String(server.port),
      DB_NAME: "app",
      DB_USER: "app",
      DB_SSL_CA: pki.ca.certPath,
      DB_SSL_CERT: client.certPath,
      DB_SSL_KEY: client.keyPath,
      DB_POOL_MIN: "1",
      DB_POOL_MAX: "2",
      SECRETS_BACKEND: "env"
    }
    return env
  })

const withEnvironment = (env: Record<string, string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const currentUser = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly usr: string }>`SELECT current_user AS usr`
  return rows[0]?.usr
})

describe("TakumiDb.layer with mutual TLS and SECRETS_BACKEND=env", () => {
  it.live("connects by certificate authentication with no DB_PASSWORD set", () =>
    Effect.gen(function*() {
      const env = yield* setup("cert")
      const user = yield* currentUser.pipe(Effect.provide(TakumiDb.layer), withEnvironment(env))
      assert.strictEqual(user, "app")
    }).pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Error))))

  it.live("fails with SecretNotFound for DB_PASSWORD when the server asks for a password the env backend does not have", () =>
    Effect.gen(function*() {
      const env = yield* setup("scram-sha-256")
      const error = yield* currentUser.pipe(Effect.provide(TakumiDb.layer), withEnvironment(env), Effect.flip)
      assert.strictEqual(error._tag, "SecretNotFound")
      assert.include(error.message, "DB_PASSWORD")
    }).pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Error))))
})
