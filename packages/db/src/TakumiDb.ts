/**
 * Everything composed from the environment: configuration (`DbConfig.layer`), the secrets
 * backend that `SECRETS_BACKEND` names (`SecretsBackend.layerFromConfig`) and the verified
 * PostgreSQL client (`SecureSqlClient.layer`), so that a program needs one `Effect.provide`:
 *
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { TakumiDb } from "@takumi/db"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`SELECT 1 AS one`
 * })
 *
 * NodeRuntime.runMain(program.pipe(Effect.provide(TakumiDb.layer)))
 * ```
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import { type ConfigError, DbConfig, type DbSettings, type InsecureConfiguration } from "@takumi/config"
import { type SecretsBackendUnavailable, SecretsBackend } from "@takumi/secrets"
import * as SecureSqlClient from "./SecureSqlClient.js"
import type * as SecurityAlerts from "./SecurityAlerts.js"
import type { SecurePool } from "./SecurePool.js"

/**
 * Everything that can stop a Takumi DB program from starting, configuration to connection.
 *
 * @since 0.1.0
 * @category errors
 */
export type StartupError = ConfigError | InsecureConfiguration | SecretsBackendUnavailable | SecureSqlClient.StartupError

/**
 * What `TakumiDb.layer` provides: the SQL clients (with `DbHealth`, `ReadReplica` and
 * `SecurityAlerts`; `SecurePool` for pg-based code), plus the configuration and the secrets
 * backend it was built from (for health checks, the CLI, or a program's own secrets).
 *
 * @since 0.1.0
 * @category models
 */
export type Services =
  | PgClient.PgClient
  | SqlClient.SqlClient
  | Layer.Layer.Success<typeof SecureSqlClient.layer>
  | SecurityAlerts.SecurityAlerts
  | SecurePool
  | DbConfig
  | SecretsBackend

/**
 * The whole stack from the environment (and `.env` in development and test).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Services, StartupError> = SecureSqlClient.layer.pipe(
  Layer.provideMerge(SecretsBackend.layerFromConfig),
  Layer.provideMerge(DbConfig.layer)
)

/**
 * The whole stack from settings built in code (policy checked by `DbConfig.layerFrom`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFrom = (settings: DbSettings): Layer.Layer<Services, StartupError> =>
  SecureSqlClient.layer.pipe(
    Layer.provideMerge(SecretsBackend.layerFromConfig),
    Layer.provideMerge(DbConfig.layerFrom(settings))
  )

/** A typed failure that explains itself: every `StartupError` (and every `Schema.TaggedError`) is one. */
const isExplainedError = <E>(u: E): u is E & { readonly _tag: string; readonly message: string } =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && Predicate.hasProperty(u, "message") &&
  typeof u.message === "string"

/**
 * Reports why a program stopped as one log line per failure, for a program run with
 * `NodeRuntime.runMain(program, { disableErrorReporting: true, disablePrettyLogger: true })`:
 * a typed error (every `StartupError`) becomes one ERROR line `<_tag>: <message>` (the message
 * carries the fix) annotated with `error` = its tag, and its Cause, stack included, is logged
 * only at DEBUG; a defect is logged at ERROR with its Cause, as runMain itself would. The failure
 * is passed on unchanged, so runMain's teardown still exits with status 1; an interruption is not
 * reported.
 *
 * @since 0.1.0
 * @category combinators
 */
export const reportStartupFailure = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapErrorCause(self, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failures = Array.from(Cause.failures(cause))
    const explained = failures.filter(isExplainedError)
    // a defect or an error without a message is not ours to summarise: the whole Cause, at ERROR
    if (explained.length === 0 || explained.length < failures.length || Cause.defects(cause).length > 0) {
      return Effect.logError("the program stopped", cause)
    }
    return Effect.forEach(explained, (error) =>
      Effect.logError(`${error._tag}: ${error.message}`).pipe(Effect.annotateLogs("error", error._tag)), { discard: true }).pipe(
        Effect.zipRight(Effect.logDebug("the cause of the failure", cause)),
        // reported: the runtime's own DEBUG "Fiber terminated with an unhandled error" would be the
        // same Cause again, through the default (not JSON) logger once runMain's fiber has ended
        Effect.zipRight(FiberRef.set(FiberRef.unhandledErrorLogLevel, Option.none()))
      )
  })
