/**
 * Takumi's Effect metrics (`DbMetrics` of `@takumi/db`, `SecretMetrics` of `@takumi/secrets`)
 * under the OpenTelemetry database-client semantic conventions, at export time. The Effect
 * metrics keep their `takumi_*` names — other packages' tests and `Metric.value` readers use them —
 * and a `MetricProducer` wrapped around `@effect/opentelemetry`'s renames them on every collection
 * (an OpenTelemetry View cannot: Views apply to the SDK's own instruments, not to a producer).
 *
 * | Effect metric | exported as | unit | attributes |
 * |---|---|---|---|
 * | `takumi_db_query_duration_seconds` | `db.client.operation.duration` | `s` | pool attributes, and on a failed statement `error.type` (was `error_type`: the SQLSTATE, e.g. `23505`, or the error class) |
 * | `takumi_db_connections_active` | `db.client.connection.count` | `{connection}` | pool attributes, `db.client.connection.state=used` |
 * | `takumi_db_connections_idle` | `db.client.connection.count` | `{connection}` | pool attributes, `db.client.connection.state=idle` |
 * | `takumi_db_connections_waiting` | `db.client.connection.pending_requests` | `{request}` | pool attributes |
 * | `takumi_db_connection_setup_seconds` | `db.client.connection.create_time` | `s` | pool attributes |
 * | (pool settings) | `db.client.connection.max` | `{connection}` | pool attributes |
 * | `takumi_db_tls_handshake_seconds` | `takumi.db.client.tls_handshake.duration` | `s` | pool attributes |
 * | `takumi_db_connection_errors_total` | `takumi.db.client.connection.errors` | `{error}` | pool attributes, `error.type` (was `kind`) |
 * | `takumi_db_security_alerts_total` | `takumi.db.security_alerts` | `{alert}` | `kind` |
 * | `takumi_secret_fetches_total` | `takumi.secret.fetches` | `{fetch}` | `backend`, `outcome` |
 * | `takumi_secret_cache_hits_total` | `takumi.secret.cache_hits` | `{hit}` | `backend` |
 * | `takumi_secret_invalidations_total` | `takumi.secret.invalidations` | `{invalidation}` | `backend`, `outcome` |
 *
 * Pool attributes: `db.system.name=postgresql`, `server.address`, `server.port` (split from the
 * Effect `server` tag), and, for servers the producer was told about, `db.namespace` and
 * `db.client.connection.pool.name` (`address:port/namespace`, the conventions' fallback name).
 *
 * @since 0.1.0
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import type * as Resource from "@effect/opentelemetry/Resource"
import type { MetricProducer } from "@opentelemetry/sdk-metrics"
import type { DbSettings } from "@takumi/config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as internal from "./internal/translate.js"

/**
 * A PostgreSQL server the exported metrics describe: its `db.namespace` (the database) and
 * `db.client.connection.max` (the pool's maximum), which the Effect metrics do not carry.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerInfo {
  readonly host: string
  readonly port: number
  /** the database name, exported as `db.namespace` */
  readonly namespace?: string | undefined
  /** the pool maximum, exported as `db.client.connection.max` */
  readonly maxConnections?: number | undefined
}

/**
 * One line of the mapping table above.
 *
 * @since 0.1.0
 * @category models
 */
export interface Mapping {
  /** the Effect metric's name */
  readonly source: string
  /** the exported OpenTelemetry name */
  readonly name: string
  readonly unit: string
}

/**
 * The mapping table, as data (for documentation and dashboards generated from it).
 *
 * @since 0.1.0
 * @category mapping
 */
export const mappings: ReadonlyArray<Mapping> = internal.rules.map(({ name, source, unit }) => ({ source, name, unit }))

/**
 * The servers a `SecureSqlClient.layer` built from `settings` connects to: the primary and, if
 * configured, the read replica (same database, same pool maximum).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serversFromSettings = (settings: DbSettings): ReadonlyArray<ServerInfo> => {
  const primary: ServerInfo = {
    host: settings.host,
    port: settings.port,
    namespace: settings.database,
    maxConnections: settings.pool.max
  }
  return Option.match(settings.readReplica, {
    onNone: () => [primary],
    onSome: (replica) => [primary, { ...primary, host: replica.host, port: replica.port }]
  })
}

/**
 * Options of `makeProducer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProducerOptions {
  /** servers to describe with `db.namespace` and `db.client.connection.max` (default: none) */
  readonly servers?: ReadonlyArray<ServerInfo> | undefined
  /** also export the program's other Effect metrics under their own names (default true) */
  readonly passthrough?: boolean | undefined
}

/**
 * `@effect/opentelemetry`'s producer of every Effect metric, with Takumi's renamed per the table.
 * Register it on a `MetricReader` (`Metrics.registerProducer`) or use `MetricsExport`'s layers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeProducer = (options: ProducerOptions = {}): Effect.Effect<MetricProducer, never, Resource.Resource> =>
  Effect.map(Metrics.makeProducer, (inner) =>
    internal.translatingProducer(inner, {
      servers: options.servers ?? [],
      passthrough: options.passthrough ?? true
    }))
