/**
 * @since 0.1.0
 */

/**
 * Test PKI: CA, server, client and deliberately broken certificates generated at test time.
 *
 * @since 0.1.0
 */
export * as TestPki from "./TestPki.js"

/**
 * Throwaway PostgreSQL servers (TLS, pg_hba, reload/restart, standby) for integration tests.
 *
 * @since 0.1.0
 */
export * as PgTestServer from "./PgTestServer.js"

/**
 * A TCP server that accepts and never answers, for connect-timeout tests.
 *
 * @since 0.1.0
 */
export * as BlackholeServer from "./BlackholeServer.js"
