/**
 * A `SqlClient` for reads. With `DB_READ_REPLICA_HOST` set, its statements go to the read replica,
 * over a pool built exactly like the primary's (same TLS policy, same credentials from the secrets
 * backend, the replica's host and port). When the replica cannot serve a read within
 * `DB_FAILOVER_TIMEOUT` the read goes to the primary, a `ReadReplicaFailedOver` alert is logged,
 * and the replica is re-probed on the reconnect backoff; once it answers, reads return to it
 * (`ReadReplicaRestored`). Without a replica configured, `ReadReplica` is the primary client.
 *
 * Replication lag applies: a read on the replica may not yet see a write just committed on the
 * primary. Read your own writes through `SqlClient`.
 *
 * Writes sent to the replica fail with a `SqlError` whose `cause` is `ReadOnlyReplica` (the server
 * answered 25006 read_only_sql_transaction); `isReadOnlyReplica` tells them apart.
 *
 * `SecureSqlClient.layer` provides `ReadReplica`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/**
 * The client for reads (a `SqlClient`).
 *
 * @since 0.1.0
 * @category tags
 */
export class ReadReplica extends Context.Tag("@takumi/db/ReadReplica")<ReadReplica, SqlClient.SqlClient>() {}

/**
 * A write reached the read replica, which is a hot standby and refuses it (SQLSTATE 25006).
 *
 * @since 0.1.0
 * @category errors
 */
export class ReadOnlyReplica extends Schema.TaggedError<ReadOnlyReplica>()("ReadOnlyReplica", {
  host: Schema.String,
  port: Schema.Number,
  /** `25006` read_only_sql_transaction */
  code: Schema.String,
  /** the server's own text, e.g. "cannot execute INSERT in a read-only transaction" */
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const reason = this.reason === undefined ? "" : `: ${this.reason}`
    return `The read replica at ${this.host}:${this.port} refused a write (${this.code})${reason}. ` +
      "Send writes through SqlClient (the primary); ReadReplica is for reads only."
  }
}

/**
 * True when a `SqlError` is a write refused by the read replica.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isReadOnlyReplica = (error: unknown): error is SqlError & { readonly cause: ReadOnlyReplica } =>
  error instanceof SqlError && error.cause instanceof ReadOnlyReplica

/**
 * Alert: the read replica could not serve and reads now go to the primary.
 *
 * @since 0.1.0
 * @category alerts
 */
export class ReadReplicaFailedOver extends Schema.TaggedClass<ReadReplicaFailedOver>()("ReadReplicaFailedOver", {
  host: Schema.String,
  port: Schema.Number,
  /** `_tag` of the error that made the replica unusable, e.g. `ConnectionRefused`, `FailoverTimeout` */
  error: Schema.String,
  reason: Schema.String,
  failoverTimeoutMillis: Schema.Number
}) {
  get message(): string {
    return `Read replica ${this.host}:${this.port} unavailable, reads go to the primary: ${this.reason}`
  }
}

/**
 * Alert: the read replica answers again and reads go back to it.
 *
 * @since 0.1.0
 * @category alerts
 */
export class ReadReplicaRestored extends Schema.TaggedClass<ReadReplicaRestored>()("ReadReplicaRestored", {
  host: Schema.String,
  port: Schema.Number
}) {
  get message(): string {
    return `Read replica ${this.host}:${this.port} answers again, reads go back to it`
  }
}

/**
 * Reads on the primary: `ReadReplica` as the `SqlClient` itself (what `SecureSqlClient.layer`
 * provides when no replica is configured; also handy in tests).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromPrimary: Layer.Layer<ReadReplica, never, SqlClient.SqlClient> = Layer.effect(
  ReadReplica,
  SqlClient.SqlClient
)
