/**
 * What the examples share: a throwaway PostgreSQL with TLS from @takumi/testing (a real
 * PostgreSQL 15 on 127.0.0.1 with a test CA), the `DB_*` variables that point at it, a
 * `ConfigProvider` standing in for the process environment, and the printing and running of an
 * example. Not part of any package: examples only.
 */
import type { DbSettings } from "@takumi/config"
import { type PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"

/** The application name every example connects with, to find its sessions in pg_stat_activity. */
export const applicationName = "takumi-example"

/** Prints a verified fact. */
export const ok = (line: string) => Effect.sync(() => console.log(`  ✓ ${line}`))

/** Prints a section heading. */
export const heading = (line: string) => Effect.sync(() => console.log(`\n${line}`))

/** Runs `effect` with `env` as the process environment (a ConfigProvider, not `process.env`). */
export const withEnvironment = (env: Readonly<Record<string, string>>) =>
<A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

/** A random password, never printed. */
export const newPassword = () => randomBytes(18).toString("base64url")

export interface Database {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  /** the password of role `app` */
  readonly password: string
  /** `DB_*` variables for role `app` on database `app`, TLS verified against the test CA */
  readonly env: Readonly<Record<string, string>>
}

/**
 * A throwaway PostgreSQL 15 with TLS (certificate from the test CA; pg_hba `hostssl` only) and a
 * role `app` owning database `app`. Removed when the scope closes.
 */
export const startDatabase = (
  server?: Partial<PgTestServer.ServerSettings>
): Effect.Effect<Database, never, Scope.Scope> =>
  Effect.gen(function*() {
    const password = newPassword()
    const { pki, server: pg } = yield* TestDatabase.make({
      roles: [{ name: "app", password }],
      database: "app",
      ...(server === undefined ? {} : { server })
    })
    yield* ok(`PostgreSQL ${pg.host}:${pg.port} (a throwaway server from @takumi/testing, TLS with a test CA)`)
    const env = {
      DB_HOST: pg.host,
      DB_PORT: String(pg.port),
      DB_NAME: "app",
      DB_USER: "app",
      DB_SSL: "true",
      DB_SSL_CA: pki.ca.certPath,
      DB_APPLICATION_NAME: applicationName
    }
    return { pki, server: pg, password, env }
  }).pipe(Effect.orDie)

/** The sessions of the examples on `server`, as pg_stat_activity lists them (read as the superuser). */
export const sessionsOf = (server: PgTestServer.PgTestServer) =>
  Effect.map(
    server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [applicationName]),
    (rows) => Number(rows[0]?.["n"] ?? 0)
  ).pipe(Effect.orDie)

/** Role, TLS version and cipher of the current session, from pg_stat_ssl. */
export const sessionQuery = `SELECT current_user AS "user", s.ssl, s.version, s.cipher
  FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()`

/** What `sessionQuery` returns. */
export interface Session {
  readonly user: string
  readonly ssl: boolean
  readonly version: string | null
  readonly cipher: string | null
}

/** The settings' TLS summary, for the output. */
export const describeTls = (settings: DbSettings) =>
  `TLS ${settings.tls.minVersion}+, certificate validation ${settings.tls.rejectUnauthorized ? "on" : "off"}`

/**
 * Runs an example: prints its title, runs it scoped (everything it started is stopped and removed
 * at the end), shows only warnings and errors of the library, and exits with 1 on a failure.
 */
export const runExample = <E>(title: string, example: Effect.Effect<void, E, Scope.Scope>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      yield* Effect.sync(() => console.log(title))
      yield* example
      yield* heading("Done: servers stopped, temporary files removed.")
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(Logger.pretty, Logger.minimumLogLevel(LogLevel.Warning)))
    )
  ).catch((error: unknown) => {
    console.error("example failed:", error)
    process.exitCode = 1
  })
