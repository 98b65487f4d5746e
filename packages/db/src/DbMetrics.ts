/**
 * The database metrics the monitoring requirements ask for, as Effect `Metric`s (names prefixed
 * `takumi_db_`). `SecureSqlClient.layer` feeds them for its primary and read-replica pools; every
 * metric is tagged `server` (`host:port`), so one process can watch several servers.
 *
 * | metric | type | tags | fed from |
 * |---|---|---|---|
 * | `takumi_db_connections_active` | gauge | `server` | `pool.totalCount - pool.idleCount`, sampled every second and on every physical connect / close |
 * | `takumi_db_connections_idle` | gauge | `server` | `pool.idleCount`, likewise |
 * | `takumi_db_connections_waiting` | gauge | `server` | `pool.waitingCount`, likewise |
 * | `takumi_db_connection_errors_total` | counter | `server`, `kind` | every failed connection attempt (`kind` = the typed error's `_tag`) and every established connection lost (`ConnectionLost`) |
 * | `takumi_db_query_duration_seconds` | histogram | `server`, and `error_type` on a failed statement | every statement, timed around the driver's `client.query`; `error_type` is the SQLSTATE of a server error (`23505`, `57014`, ...) or the error's class name (`Error`) when the driver failed without one |
 * | `takumi_db_connection_setup_seconds` | histogram | `server` | every new physical connection: TCP + TLS + authentication (password lookup included) |
 * | `takumi_db_tls_handshake_seconds` | histogram | `server` | every new TLS connection: from the TCP `connect` to the TLS socket's `secureConnect` (PostgreSQL's SSLRequest round trip included) |
 * | `takumi_db_security_alerts_total` | counter | `kind` | every `SecurityAlerts` alert (`kind` = the alert's `_tag`) |
 * | `takumi_secret_fetches_total`, `takumi_secret_cache_hits_total` | counters | `backend`, `outcome` | `@takumi/secrets` (`SecretMetrics`), re-exported here as `secretFetches` / `secretCacheHits` |
 *
 * Average query time is `sum / count` of the histogram, p95 comes from its buckets (e.g.
 * Prometheus `histogram_quantile(0.95, …)`). Per statement the cost is two clock reads and one
 * histogram update; the gauges cost nothing per statement.
 *
 * Export them like any Effect metric: `Metric.snapshot` returns every metric with its tags and
 * state (feed it to a `/metrics` endpoint), or install an OpenTelemetry metrics exporter
 * (`@effect/opentelemetry`), which reads the same registry.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as Pg from "pg"
import * as MetricBoundaries from "effect/MetricBoundaries"
import { SecretMetrics } from "@takumi/secrets"

/**
 * Connections checked out of the pool (in use by a statement or a transaction).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsActive = Metric.gauge("takumi_db_connections_active", {
  description: "PostgreSQL connections checked out of the pool"
})

/**
 * Open connections waiting in the pool for work.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsIdle = Metric.gauge("takumi_db_connections_idle", {
  description: "PostgreSQL connections idle in the pool"
})

/**
 * Callers queued for a connection because every one is busy and the pool is at its maximum.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsWaiting = Metric.gauge("takumi_db_connections_waiting", {
  description: "Callers waiting for a PostgreSQL connection"
})

/**
 * Failed connection attempts and lost connections, tagged `kind` with the typed error's `_tag`
 * (`AuthenticationFailed`, `ConnectionRefused`, `CertificateExpired`, `PoolExhausted`,
 * `ConnectionLost`, a secrets error when the password could not be read, …).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionErrors = Metric.counter("takumi_db_connection_errors_total", {
  description: "Failed PostgreSQL connection attempts and lost connections, by kind",
  incremental: true
})

/**
 * Bucket bounds in seconds: 0.5 ms to 30 s, so that both a local primary-key lookup and a
 * statement near the 5 s slow-query threshold land in a bucket of their own.
 */
const latencyBoundaries = MetricBoundaries.fromIterable([
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30
])

/**
 * Statement duration in seconds, as the driver sees it (sent to result or error).
 *
 * @since 0.1.0
 * @category metrics
 */
export const queryDuration = Metric.histogram(
  "takumi_db_query_duration_seconds",
  latencyBoundaries,
  "PostgreSQL statement duration in seconds"
)

/**
 * Time to open a new physical connection, in seconds: TCP, TLS, password lookup and authentication.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionSetup = Metric.histogram(
  "takumi_db_connection_setup_seconds",
  latencyBoundaries,
  "Time to open a PostgreSQL connection (TCP, TLS, authentication) in seconds"
)

/**
 * Time of the TLS handshake of a new connection, in seconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const tlsHandshake = Metric.histogram(
  "takumi_db_tls_handshake_seconds",
  latencyBoundaries,
  "TLS handshake time of a new PostgreSQL connection in seconds"
)

/**
 * Security alerts raised, tagged `kind` with the alert's `_tag` (see `SecurityAlerts`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const securityAlerts = Metric.counter("takumi_db_security_alerts_total", {
  description: "Security alerts raised, by kind",
  incremental: true
})

/**
 * Secrets backend reads by `backend` and `outcome` (`SecretMetrics.fetches` of `@takumi/secrets`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const secretFetches = SecretMetrics.fetches

/**
 * Secret reads served from the cache, by `backend` (`SecretMetrics.cacheHits` of `@takumi/secrets`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const secretCacheHits = SecretMetrics.cacheHits

/**
 * Vault token renewals or logins that failed near the token's end
 * (`SecretMetrics.vaultTokenExpiring` of `@takumi/secrets`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const vaultTokenExpiring = SecretMetrics.vaultTokenExpiring

/**
 * The tag every pool metric carries: the server as `host:port`.
 *
 * @since 0.1.0
 * @category tags
 */
export const serverTag = "server"

/**
 * The tag of `connectionErrors` and `securityAlerts`: the error's or alert's `_tag`.
 *
 * @since 0.1.0
 * @category tags
 */
export const kindTag = "kind"

/**
 * The tag of `queryDuration` that marks a failed statement: the SQLSTATE of a server error, or
 * the error's class name when the driver failed without one. A statement that succeeded has no
 * such tag (the OpenTelemetry conventions' `error.type`, which the export renames it to).
 *
 * @since 0.1.0
 * @category tags
 */
export const errorTypeTag = "error_type"

/**
 * The `error_type` of a statement failure: the SQLSTATE code of a PostgreSQL error, otherwise the
 * error's class name (`_OTHER` for a value that is not an error).
 *
 * @since 0.1.0
 * @category tags
 */
export const errorType = (error: unknown): string => {
  if (error instanceof Pg.DatabaseError && error.code !== undefined) return error.code
  return error instanceof Error ? error.name : "_OTHER"
}

/**
 * The value of the `server` tag for a host and port.
 *
 * @since 0.1.0
 * @category tags
 */
export const serverLabel = (host: string, port: number): string => `${host}:${port}`

/**
 * A metric narrowed to one server (and optionally more tags), e.g. to read its value in a
 * health endpoint or a test: `Metric.value(DbMetrics.forServer(DbMetrics.connectionsActive, host, port))`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const forServer = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  host: string,
  port: number
): Metric.Metric<Type, In, Out> => Metric.tagged(metric, serverTag, serverLabel(host, port))
