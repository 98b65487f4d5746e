/**
 * @since 0.1.0
 */

/**
 * Every connection and runtime failure, one typed error per failure mode, each with a remedy.
 *
 * @since 0.1.0
 */
export * from "./DbError.js"

/**
 * The PostgreSQL client layer: TLS policy, secret-backed credentials, verified startup.
 *
 * @since 0.1.0
 */
export * as SecureSqlClient from "./SecureSqlClient.js"

/**
 * The verified `pg.Pool` behind the SqlClient, as a service for pg-based code (Kysely, drizzle-orm/node-postgres).
 *
 * @since 0.1.0
 */
export * as SecurePool from "./SecurePool.js"

/**
 * Configuration, secrets backend and SecureSqlClient composed from the environment: one `Effect.provide`.
 *
 * @since 0.1.0
 */
export * as TakumiDb from "./TakumiDb.js"

/**
 * Database health (healthy / degraded / down, last error, since when) for readiness and liveness checks.
 *
 * @since 0.1.0
 */
export * as DbHealth from "./DbHealth.js"

/**
 * Marking a statement or a whole transaction safe to re-run when its connection is lost.
 *
 * @since 0.1.0
 */
export * as Idempotent from "./Idempotent.js"

/**
 * The read-replica `SqlClient`, with failover to the primary.
 *
 * @since 0.1.0
 */
export * as ReadReplica from "./ReadReplica.js"

/**
 * The reconnect backoff (exponential, jittered, capped) and retry budget.
 *
 * @since 0.1.0
 */
export * as ReconnectSchedule from "./ReconnectSchedule.js"

/**
 * The database metrics (`takumi_db_*`): pool gauges, connection errors, query / setup / TLS histograms.
 *
 * @since 0.1.0
 */
export * as DbMetrics from "./DbMetrics.js"

/**
 * Least privilege: the role's privileges an application rarely needs (CREATEROLE, BYPASSRLS, ...).
 *
 * @since 0.1.0
 */
export * as RolePrivileges from "./RolePrivileges.js"

/**
 * Typed security alerts as a stream, also logged and counted.
 *
 * @since 0.1.0
 */
export * as SecurityAlerts from "./SecurityAlerts.js"

/**
 * What a listed host is (primary or hot standby) and which host `DB_TARGET_SESSION_ATTRS` would choose.
 *
 * @since 0.1.0
 */
export * as HostState from "./HostState.js"
