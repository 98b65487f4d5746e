/**
 * TakumiDb.layer: configuration from a ConfigProvider (standing in for the process
 * environment), the `env` secrets backend and SecureSqlClient against a real TLS server.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DbConfig } from "@takumi/config"
import { StallingProxy, TestDatabase } from "@takumi/testing"
import { TakumiDb } from "../src/index.js"
import { developmentVariables } from "./fixtures.js"

const PASSWORD = "takumi-Pa55word-c41d9e"

const database = TestDatabase.layer({ roles: [{ name: "app", password: PASSWORD }], database: "app" })

/**
 * The environment of a program reaching the test server through `target`, a StallingProxy in
 * front of it that counts the connections it accepts (the proxy only moves bytes: TLS runs end to end).
 */
const environment = (
  env: Context.Tag.Service<TestDatabase.TestDatabase>,
  target: { readonly host: string; readonly port: number },
  extra: Record<string, string> = {}
) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(
    new Map(Object.entries({
      ...developmentVariables(env),
      DB_HOST: target.host,
      DB_PORT: String(target.port),
      DB_APPLICATION_NAME: "takumi-db-compose",
      SECRETS_BACKEND: "env",
      DB_PASSWORD: PASSWORD,
      ...extra
    }))
  ))

layer(database, { timeout: 60_000, excludeTestServices: true })("TakumiDb", (it) => {
  it.scoped("provides a working SqlClient and DbConfig from the environment with one Effect.provide", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const counter = yield* StallingProxy.make({ target: env.server })
      const [row, settings] = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ ssl: boolean; app: string }>`
          SELECT ssl, current_setting('application_name') AS app FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
        return [rows[0], yield* DbConfig] as const
      }).pipe(Effect.provide(TakumiDb.layer.pipe(Layer.provide(environment(env, counter)))))
      assert.deepStrictEqual(row, { ssl: true, app: "takumi-db-compose" })
      assert.strictEqual(settings.port, counter.port)
      // the counter sees the program's connections (so the test below can see that there were none)
      expect(yield* counter.accepted).toBeGreaterThan(0)
    }))

  it.scoped("fails with the configuration's typed error before any connection is attempted", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const counter = yield* StallingProxy.make({ target: env.server })
      const error = yield* Effect.flip(
        Layer.build(TakumiDb.layer.pipe(Layer.provide(environment(env, counter, { NODE_ENV: "production" })))).pipe(
          Effect.scoped
        )
      )
      // production forbids the env backend and DB_PASSWORD in the environment
      assert.strictEqual(error._tag, "InsecureConfiguration")
      expect(error.message).toMatch(/SECRETS_BACKEND|DB_PASSWORD/)
      assert.strictEqual(yield* counter.accepted, 0)
    }))
})
