/**
 * The defaults applied when a variable is unset, from the requirements (timeouts, secret cache,
 * alert thresholds) and our own choices (application name, retry budget, stale window).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import type { AuthMethod, Environment, SecretsBackendKind } from "./DbSettings.js"

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
 * `DB_STATEMENT_TIMEOUT`: 30000 ms. A service statement that runs longer is almost always a
 * missing index or a lock wait; the server cancels it (SQLSTATE 57014) instead of holding a pool
 * connection indefinitely. Set a longer value (or 0) for a role that runs reports or migrations.
 *
 * @since 0.1.0
 * @category constants
 */
export const statementTimeout: Duration.Duration = Duration.millis(30_000)

/**
 * `DB_IDLE_IN_TRANSACTION_TIMEOUT`: 60000 ms. A transaction left open by a stuck caller holds
 * locks and blocks vacuum; the server ends the session after this long idle inside it.
 *
 * @since 0.1.0
 * @category constants
 */
export const idleInTransactionTimeout: Duration.Duration = Duration.millis(60_000)

/**
 * `DB_QUERY_TIMEOUT` when unset: the statement timeout plus this margin, so that the server's
 * own cancellation (a clean 57014 on a healthy connection) arrives before the client gives up on
 * a peer that stopped answering.
 *
 * @since 0.1.0
 * @category constants
 */
export const queryTimeoutMargin: Duration.Duration = Duration.millis(5000)

/**
 * `DB_QUERY_TIMEOUT` for a statement timeout: the timeout plus `queryTimeoutMargin`; none (0)
 * when the statement timeout is none.
 *
 * @since 0.1.0
 * @category constants
 */
export const queryTimeout = (statementTimeout: Duration.Duration): Duration.Duration =>
  Duration.isZero(statementTimeout) ? Duration.zero : Duration.sum(statementTimeout, queryTimeoutMargin)

/**
 * `DB_MAX_LIFETIME`: 30 minutes, HikariCP's default, in every environment. Long enough that
 * retiring connections costs nothing measurable (one reconnect per connection per ~30 min), short
 * enough that a rotated password, a DNS change or a promoted primary reaches every connection
 * within half an hour. Keep it a few minutes below any lifetime the network or a pooler imposes
 * (PgBouncer's `server_lifetime` is 1 h by default; load balancers often cut idle TCP at 350 s to 1 h).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxLifetime: Duration.Duration = Duration.minutes(30)

/**
 * `DB_CHANNEL_BINDING`: `prefer` (libpq's default): SCRAM-SHA-256-PLUS whenever the server offers
 * it; PgBouncer does not, so `require` is the stricter opt-in.
 *
 * @since 0.1.0
 * @category constants
 */
export const channelBinding = "prefer" as const

/**
 * `DB_POOLER`: `none`, the client talks to PostgreSQL directly.
 *
 * @since 0.1.0
 * @category constants
 */
export const pooler = "none" as const

/**
 * `DB_REQUIRE_AUTH` per environment: production and staging accept SCRAM-SHA-256 or no password
 * request at all (certificate authentication); development and test accept every method (md5 and
 * cleartext warn once), as a local server may be configured either way. With
 * `SECRETS_BACKEND=rds-iam` production and staging accept cleartext only: RDS checks an IAM token
 * through PAM, which asks for the password in cleartext, and the `rds-iam-tls` rule makes sure it
 * goes only over verified TLS to the named host (the token is valid for 15 minutes and that host).
 *
 * @since 0.1.0
 * @category constants
 */
export const requireAuth = (environment: Environment, backend?: SecretsBackendKind): ReadonlyArray<AuthMethod> =>
  environment !== "production" && environment !== "staging"
    ? ["scram-sha-256", "md5", "password", "none"]
    : backend === "rds-iam"
    ? ["password"]
    : ["scram-sha-256", "none"]

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
 * `VAULT_DB_MOUNT`: where Vault mounts the database secrets engine unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const vaultDatabaseMount = "database"

/**
 * Alert thresholds from the requirements: 5 failed authentications in 5 minutes, pool use at
 * 90 % of max, queries over 5 s, certificates within 30 days of expiry, a database credential
 * older than 90 days ("rotate credentials regularly (every 90 days minimum)").
 *
 * @since 0.1.0
 * @category constants
 */
export const alerts = {
  failedAuthThreshold: 5,
  failedAuthWindow: Duration.minutes(5),
  poolUsageRatio: 0.9,
  slowQuery: Duration.seconds(5),
  certificateExpiry: Duration.days(30),
  credentialMaxAge: Duration.days(90)
} as const
