/**
 * The secrets metrics the monitoring requirements ask for ("secret fetches by backend and
 * outcome; cache hits"), and the re-reads forced by `invalidate`, as Effect `Metric`s updated by every `SecretCache`. Export them with
 * the rest of the program's metrics (e.g. a Prometheus endpoint); they never carry a value.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * Backend reads, tagged `backend` and `outcome`: `success`, `stale` (an expired value served
 * because the backend was unavailable), or the error tag (`SecretNotFound`,
 * `SecretAccessDenied`, `SecretsBackendUnavailable`, `SecretMalformed`), or `interrupted`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const fetches = Metric.counter("takumi_secret_fetches_total", {
  description: "Secrets backend reads by backend and outcome",
  incremental: true
})

/**
 * `get`s answered from the cache without a backend read, tagged `backend`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const cacheHits = Metric.counter("takumi_secret_cache_hits_total", {
  description: "Secret gets served from the cache",
  incremental: true
})

/**
 * `invalidate` calls, tagged `backend` and `outcome`: `reread` (the cached value was dropped, so
 * the next `get` reads the backend; that read is counted in `fetches` too) or `rate-limited`
 * (within the re-read interval of the last `reread` of the key: nothing was dropped). A steady
 * stream of `rate-limited` means something keeps refusing the password, e.g. a wrong secret or
 * a server that answers 28P01 to every connection.
 *
 * @since 0.1.0
 * @category metrics
 */
export const invalidations = Metric.counter("takumi_secret_invalidations_total", {
  description: "Secret cache invalidations by backend and outcome (reread or rate-limited)",
  incremental: true
})

/**
 * Vault token renewals (or new logins) that failed, and renewals of a static token that Vault
 * capped at its max TTL, each after the renewal point (a third of the token's TTL or less left):
 * the token will expire unless one of the retries works. Tagged by nothing; @takumi/db raises
 * `VaultTokenExpiring` on a rise. Never carries the token.
 *
 * @since 0.1.0
 * @category metrics
 */
export const vaultTokenExpiring = Metric.counter("takumi_vault_token_expiring_total", {
  description: "Vault token renewals or logins that failed (or were capped) while the token nears its end",
  incremental: true
})
