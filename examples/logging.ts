/**
 * The production logging setup the README's "Logging" section shows: one JSON object per line for
 * every event, and a startup failure as one line that says what to fix.
 *
 * - `Logger.json` replaces Effect's default logger, and `NodeRuntime.runMain` is told
 *   `disablePrettyLogger: true`: without it runMain adds its pretty logger and every event is
 *   printed twice, once as JSON and once pretty.
 * - `TakumiDb.reportStartupFailure` logs a typed error (every `TakumiDb.StartupError`) as one ERROR
 *   line `<_tag>: <message>` with its Cause only at DEBUG, and `disableErrorReporting: true` stops
 *   runMain from printing the same failure again as a multi-line stack trace. The failure still
 *   reaches runMain, which exits with status 1.
 * - `LOG_LEVEL` (`Debug`, `Info`, ...; default `Info`) sets the minimum level; at `Debug` the
 *   failure's Cause, stack included, follows the one line.
 *
 * Run it with `npx tsx --conditions=@takumi/source examples/logging.ts`: it starts a throwaway
 * TLS PostgreSQL (`TestDatabase`), runs a service on it, then starts the same service with a wrong
 * password, which stops the program with `AuthenticationFailed` as one line.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import { TestDatabase } from "@takumi/testing"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

const PASSWORD = "logging-example-Pw-6d2f0b"

/** What the service does once connected. */
const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly usr: string }>`SELECT current_user AS usr`
  yield* Effect.logInfo("connected").pipe(Effect.annotateLogs("user", rows[0]?.usr ?? "unknown"))
})

/** The service on `TakumiDb.layer`, its environment given as variables. */
const service = (env: Record<string, string>) =>
  program.pipe(
    Effect.provide(TakumiDb.layer),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const main = Effect.gen(function*() {
  const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: PASSWORD }], database: "app" })
  const env: Record<string, string> = {
    NODE_ENV: "development",
    DB_HOST: server.host,
    DB_PORT: String(server.port),
    DB_NAME: "app",
    DB_USER: "app",
    DB_PASSWORD: PASSWORD,
    DB_SSL_CA: pki.ca.certPath,
    DB_POOL_MIN: "1",
    DB_POOL_MAX: "2",
    SECRETS_BACKEND: "env"
  }
  yield* service(env)
  // the same service deployed with a stale password: a startup failure
  yield* service({ ...env, DB_PASSWORD: "not-the-password-1f9e" })
}).pipe(Effect.scoped)

/** `LOG_LEVEL` from the environment, for every line including the failure report. */
const minimumLevel = Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
const setMinimumLevel = Effect.flatMap(minimumLevel, (level) => FiberRef.set(FiberRef.currentMinimumLogLevel, level))

Effect.zipRight(setMinimumLevel, main).pipe(
  TakumiDb.reportStartupFailure,
  Effect.provide(Logger.json),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
