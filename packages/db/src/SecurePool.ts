/**
 * The verified `pg.Pool` that `SecureSqlClient.layer` builds, as a service, so that code written
 * against `pg` (Kysely's `PostgresDialect`, `drizzle-orm/node-postgres`, a hand-written
 * `pool.query`) shares the one pool instead of opening a second, unchecked one.
 *
 * ```ts
 * import { SecurePool } from "@takumi/db"
 * import { Kysely, PostgresDialect } from "kysely"
 *
 * const db = Effect.map(SecurePool.SecurePool, (pool) => new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) }))
 * ```
 *
 * What every connection of this pool keeps, whoever checks it out:
 *
 * - the TLS policy of the settings (CA, minimum version, ciphers, server name; no `sslmode` or
 *   `PG*` variable can change it) and the certificate check on every new connection;
 * - the authentication policy (`DB_REQUIRE_AUTH`, `DB_CHANNEL_BINDING`);
 * - the password read from the `SecretsBackend` for each new connection, and on a 28P01 one retry
 *   with a re-read secret (rotation without restart);
 * - the `DbMetrics` instruments (pool gauges, connection errors, statement durations) and the
 *   `SecurityAlerts` of failed authentication;
 * - the statement and idle-in-transaction timeouts (`DB_STATEMENT_TIMEOUT`, `DB_QUERY_TIMEOUT`,
 *   `DB_IDLE_IN_TRANSACTION_TIMEOUT`);
 * - the error listeners: a connection dying never takes the process down.
 *
 * What it bypasses, because those live in the `SqlClient` layer above the pool: the acquisition
 * retries on the reconnect schedule and `PoolExhausted` (a caller of `pool.connect` gets pg's own
 * error), `Idempotent` re-runs, the read-replica routing of `ReadReplica` (this is the primary's
 * pool), and the `@effect/sql` spans of each statement.
 *
 * The pool's lifetime is the layer's: do not call `pool.end()` (a `Kysely#destroy()` does, so
 * let the layer's scope end it instead).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Pg from "pg"

/**
 * The primary's verified, TLS-checked, rotation-aware `pg.Pool`, provided by
 * `SecureSqlClient.layer` (and so by `TakumiDb.layer`).
 *
 * @since 0.1.0
 * @category tags
 */
export class SecurePool extends Context.Tag("@takumi/db/SecurePool")<SecurePool, Pg.Pool>() {}
