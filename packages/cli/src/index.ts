/**
 * @since 0.1.0
 */

/**
 * Audit logging settings: check and enable `log_connections`, `log_disconnections`, `log_statement`.
 *
 * @since 0.1.0
 */
export * as AuditLogging from "./AuditLogging.js"

/**
 * The `takumi-db` command tree, its runner and exit codes.
 *
 * @since 0.1.0
 */
export * as Cli from "./Cli.js"

/**
 * `takumi-db doctor`: configuration, security policy findings and the verified connection posture.
 *
 * @since 0.1.0
 */
export * as Doctor from "./Doctor.js"

/**
 * `takumi-db pool-size --pooler pgbouncer`: the connection budget of both legs through PgBouncer.
 *
 * @since 0.1.0
 */
export * as PoolerBudget from "./PoolerBudget.js"

/**
 * `takumi-db pool-size`: the pool-size formula and the per-environment presets.
 *
 * @since 0.1.0
 */
export * as PoolSize from "./PoolSize.js"

/**
 * @since 0.1.0
 */
export * from "./UsageError.js"
