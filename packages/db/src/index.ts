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
 * Configuration, secrets backend and SecureSqlClient composed from the environment: one `Effect.provide`.
 *
 * @since 0.1.0
 */
export * as TakumiDb from "./TakumiDb.js"
