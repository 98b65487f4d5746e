/**
 * The defaults applied when a variable is unset, from the requirements (timeouts, secret cache,
 * alert thresholds) and our own choices (application name, retry budget, stale window).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import type { Environment } from "./DbSettings.js"

/**
 * `DB_PORT`.
 *
 * @since 0.1.0
 * @category constants
 */
export const port = 5432

/**
 * `DB_CONNECTION_TIMEOUT`: 2000 ms. `pg` has no default and would wait forever.
 *
 * @since 0.1.0
 * @category constants
 */
export const connectTimeout: Duration.Duration = Duration.millis(2000)

/**
 * `DB_IDLE_TIMEOUT`: 30000 ms.
 *
 * @since 0.1.0
 * @category constants
 */
export const idleTimeout: Duration.Duration = Duration.millis(30_000)

/**
 * `DB_FAILOVER_TIMEOUT`: 5000 ms.
 *
 * @since 0.1.0
 * @category constants
 */
export const failoverTimeout: Duration.Duration = Duration.millis(5000)

/**
 * `DB_APPLICATION_NAME`.
 *
 * @since 0.1.0
 * @category constants
 */
export const applicationName = "takumi-db"

/**
 * `DB_SSL_MIN_VERSION`.
 *
 * @since 0.1.0
 * @category constants
 */
export const tlsMinVersion = "TLSv1.2" as const

/**
 * `SECRETS_CACHE_TTL`: 5 minutes, as the requirements say.
 *
 * @since 0.1.0
 * @category constants
 */
export const secretsCacheTtl: Duration.Duration = Duration.minutes(5)

/**
 * `SECRETS_MAX_STALE`: 10 minutes past expiry during a backend outage.
 *
 * @since 0.1.0
 * @category constants
 */
export const secretsMaxStale: Duration.Duration = Duration.minutes(10)

/**
 * `SECRETS_REQUEST_TIMEOUT`: 3000 ms per backend request (neither SDK has a default).
 *
 * @since 0.1.0
 * @category constants
 */
export const secretsRequestTimeout: Duration.Duration = Duration.millis(3000)

/**
 * `SECRETS_PREFIX`: `takumi/<environment>/`.
 *
 * @since 0.1.0
 * @category constants
 */
export const secretsPrefix = (environment: Environment): string => `takumi/${environment}/`

/**
 * `AWS_MAX_ATTEMPTS`: the SDK's own default.
 *
 * @since 0.1.0
 * @category constants
 */
export const awsMaxAttempts = 3

/**
 * Alert thresholds from the requirements: 5 failed authentications in 5 minutes, pool use at
 * 90 % of max, queries over 5 s, certificates within 30 days of expiry.
 *
 * @since 0.1.0
 * @category constants
 */
export const alerts = {
  failedAuthThreshold: 5,
  failedAuthWindow: Duration.minutes(5),
  poolUsageRatio: 0.9,
  slowQuery: Duration.seconds(5),
  certificateExpiry: Duration.days(30)
} as const
