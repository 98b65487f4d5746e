/**
 * The server the database benches measure against: a throwaway PostgreSQL 15 with a test PKI
 * (TLS 1.3), the `app` role and database (`TestDatabase.make`), the development settings that
 * point SecureSqlClient at it, SecureSqlClient itself with the password from memory, and the raw
 * `pg.Client` the startup benches compare it with.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Pg from "pg"
import type * as Scope from "effect/Scope"
import { DbConfig, type DbSettings, testSettings } from "@takumi/config"
import { SecureSqlClient } from "@takumi/db"
import { SecretsBackend } from "@takumi/secrets"
import { type PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"

export interface Options {
  /** the password of the `app` role */
  readonly password: string
  /** `application_name`, so that a bench's connections can be told apart in pg_stat_activity */
  readonly applicationName: string
  /** the pool's maximum (its minimum is 0) */
  readonly poolMax: number
}

/** What `make` returns. */
export interface BenchDatabase {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  readonly settings: DbSettings
}

/** Why `make` failed: the PKI or the server could not be created. */
export type StartError = PgTestServer.PgTestServerError | TestPki.TestPkiError

/** The server and PKI (removed when the scope closes) and the settings for SecureSqlClient. */
export const make = (options: Options): Effect.Effect<BenchDatabase, StartError, Scope.Scope> =>
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({
      roles: [{ name: "app", password: options.password }],
      database: "app"
    })
    const settings: DbSettings = testSettings({
      environment: "development",
      host: server.host,
      port: server.port,
      database: "app",
      user: "app",
      applicationName: options.applicationName,
      tls: { ca: Option.some({ _tag: "File", path: pki.ca.certPath }) },
      pool: { min: 0, max: options.poolMax }
    })
    return { pki, server, settings }
  })

/** SecureSqlClient on `settings`, its password from an in-memory secrets backend. */
export const secureSqlClient = (
  settings: DbSettings,
  password: string
): Layer.Layer<Layer.Layer.Success<typeof SecureSqlClient.layer>, Layer.Layer.Error<typeof SecureSqlClient.layer>> =>
  SecureSqlClient.layer.pipe(
    Layer.provide(Layer.succeed(DbConfig, settings)),
    Layer.provide(SecretsBackend.layerTest({ DB_PASSWORD: password }))
  )

/** The raw `pg.Client` of the startup benches: the same server, TLS with the same CA (verify-full), not connected. */
export const rawClient = (database: BenchDatabase, password: string): Pg.Client =>
  new Pg.Client({
    host: database.server.host,
    port: database.server.port,
    database: "app",
    user: "app",
    password,
    ssl: { ca: database.pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2" }
  })
