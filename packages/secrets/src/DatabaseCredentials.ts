/**
 * Dynamic database credentials: a user name and password issued together under a lease (Vault's
 * database secrets engine, `VAULT_DB_ROLE`), renewed while the pool lives and replaced by a new
 * pair before the lease's max TTL. A pool reads `current` for every new connection and retires
 * its connections on an older `generation` when `changes` announces a new one.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Stream from "effect/Stream"

/**
 * One credential pair and its lease.
 *
 * @since 0.1.0
 * @category models
 */
export interface DatabaseCredential {
  readonly username: string
  readonly password: Redacted.Redacted<string>
  /** 1 for the first pair, one more at each rollover */
  readonly generation: number
  /** the lease id (not a secret: revoking or renewing it takes a token with that permission) */
  readonly leaseId: string
  /** the end of the lease as last granted (renewals move it, up to the max TTL) */
  readonly expiresAt: Date
}

/**
 * The dynamic credentials of a secrets backend (see `SecretsBackendService.databaseCredentials`).
 *
 * @since 0.1.0
 * @category models
 */
export interface DatabaseCredentials {
  /** the newest pair: the one every new connection must use */
  readonly current: Effect.Effect<DatabaseCredential>
  /** the newest pair, then every new pair as the rollover publishes it */
  readonly changes: Stream.Stream<DatabaseCredential>
}
