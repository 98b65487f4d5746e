/**
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * from "./SecretError.js"

/**
 * @since 0.1.0
 */
export * from "./SecretsBackend.js"

/**
 * The cache in front of every real backend: TTL, single flight, bounded stale window, fail closed.
 *
 * @since 0.1.0
 */
export * as SecretCache from "./SecretCache.js"

/**
 * Secret fetches by backend and outcome, and cache hits, as Effect metrics.
 *
 * @since 0.1.0
 */
export * as SecretMetrics from "./SecretMetrics.js"

/**
 * A secret's metadata (when it changed, rotation), for the credential-age check.
 *
 * @since 0.1.0
 */
export * as SecretMetadata from "./SecretMetadata.js"

/**
 * Dynamic database credentials (Vault's database secrets engine): user and password under a lease.
 *
 * @since 0.1.0
 */
export * as DatabaseCredentials from "./DatabaseCredentials.js"
