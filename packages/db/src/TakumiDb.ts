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
import * as Layer from "effect/Layer"
import { type ConfigError, DbConfig, type DbSettings, type InsecureConfiguration } from "@takumi/config"
import { type SecretsBackendUnavailable, SecretsBackend } from "@takumi/secrets"
import * as SecureSqlClient from "./SecureSqlClient.js"
import type * as SecurityAlerts from "./SecurityAlerts.js"

/**
 * Everything that can stop a Takumi DB program from starting, configuration to connection.
 *
 * @since 0.1.0
 * @category errors
 */
export type StartupError = ConfigError | InsecureConfiguration | SecretsBackendUnavailable | SecureSqlClient.StartupError

/**
 * What `TakumiDb.layer` provides: the SQL clients (with `DbHealth`, `ReadReplica` and
 * `SecurityAlerts`), plus the configuration and the secrets
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
