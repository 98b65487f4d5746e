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
 * A real PgBouncer (transaction pooling, TLS on both legs, SCRAM) in front of a PgTestServer.
 *
 * @since 0.1.0
 */
export * as PgBouncerTestServer from "./PgBouncerTestServer.js"

/**
 * A TCP server that accepts and never answers, for connect-timeout tests.
 *
 * @since 0.1.0
 */
export * as BlackholeServer from "./BlackholeServer.js"

/**
 * An impostor PostgreSQL server that asks for cleartext, MD5, SCRAM or no authentication and records what the client sends.
 *
 * @since 0.1.0
 */
export * as HostilePgServer from "./HostilePgServer.js"

/**
 * A loopback TCP proxy to a real server that can stop forwarding (both directions, sockets kept open) and resume.
 *
 * @since 0.1.0
 */
export * as StallingProxy from "./StallingProxy.js"

/**
 * A TLS-terminating man in the middle before a real PostgreSQL (any certificate, or `N` to the SSLRequest; can strip SCRAM-SHA-256-PLUS) that records what the client gives away.
 *
 * @since 0.1.0
 */
export * as InterceptionProxy from "./InterceptionProxy.js"

/**
 * A protocol-level double of Vault's KV v2 engine (not Vault) for the real `node-vault` client.
 *
 * @since 0.1.0
 */
export * as VaultDouble from "./VaultDouble.js"

/**
 * A protocol-level double of AWS Secrets Manager's `GetSecretValue` (not AWS) for the real AWS SDK client.
 *
 * @since 0.1.0
 */
export * as SecretsManagerDouble from "./SecretsManagerDouble.js"

/**
 * A test PKI plus a TLS server with the roles and database a test needs, as one fixture.
 *
 * @since 0.1.0
 */
export * as TestDatabase from "./TestDatabase.js"

/**
 * A registry of the secrets a test run creates and a scanner that finds them in output (plain, URL-encoded, base64), for the suite's leak guard.
 *
 * @since 0.1.0
 */
export * as LeakGuard from "./LeakGuard.js"
