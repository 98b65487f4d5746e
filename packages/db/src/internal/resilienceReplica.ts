/**
 * The read-replica client: a `SqlClient` whose connection acquirer picks the server per statement
 * (or per transaction). While the replica is not known to be down, a connection is taken from the
 * replica's pool (whose connect timeout is at most the failover timeout); if that fails, the
 * statement runs on a connection of the primary instead and the supervisor is told, which probes
 * the replica and, while it does not answer, keeps reads on the primary without trying the replica.
 * Statements that run on the replica have 25006 mapped to `ReadOnlyReplica`, and a connection
 * lost under them is reported to the supervisor too.
 *
 * @internal
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import { FailoverTimeout, PoolExhausted } from "../DbError.js"
import { ReadOnlyReplica } from "../ReadReplica.js"
import { classifyConnectError, classifyRuntimeError, type ConnectTarget, errorCode, errorMessage } from "./classify.js"
import type { HealthIssue } from "./resilienceSupervisor.js"
import { isConnectionLost } from "../Idempotent.js"

/** SQLSTATE read_only_sql_transaction: a write on a hot standby. */
export const readOnlyCode = "25006"

/** The typed reason a replica connection could not be had; a connect timeout is the failover timeout. */
export const replicaIssue = (cause: unknown, target: ConnectTarget): HealthIssue => {
  if (cause instanceof PoolExhausted) return cause
  const issue = classifyConnectError(cause, target)
  return issue._tag === "ConnectTimeout"
    ? new FailoverTimeout({ host: target.host, port: target.port, timeoutMillis: target.connectTimeoutMillis })
    : issue
}

const mapReplicaError = (
  target: ConnectTarget,
  onLost: (issue: HealthIssue) => Effect.Effect<void>
) =>
(error: SqlError): Effect.Effect<never, SqlError> => {
  if (errorCode(error.cause) === readOnlyCode) {
    const refused = new ReadOnlyReplica({
      host: target.host,
      port: target.port,
      code: readOnlyCode,
      reason: errorMessage(error.cause)
    })
    return Effect.fail(new SqlError({ cause: refused, message: refused.message }))
  }
  if (isConnectionLost(error)) {
    return Effect.zipRight(onLost(classifyRuntimeError(error.cause, target)), Effect.fail(error))
  }
  return Effect.fail(error)
}

/** A replica connection whose failures are mapped and reported. */
const guard = (
  connection: Connection,
  target: ConnectTarget,
  onLost: (issue: HealthIssue) => Effect.Effect<void>
): Connection => {
  const mapError = mapReplicaError(target, onLost)
  return {
    execute: (sql, params, transformRows) =>
      Effect.catchAll(connection.execute(sql, params, transformRows), mapError),
    executeRaw: (sql, params) => Effect.catchAll(connection.executeRaw(sql, params), mapError),
    executeValues: (sql, params) => Effect.catchAll(connection.executeValues(sql, params), mapError),
    executeUnprepared: (sql, params, transformRows) =>
      Effect.catchAll(connection.executeUnprepared(sql, params, transformRows), mapError),
    executeStream: (sql, params, transformRows) =>
      Stream.catchAll(connection.executeStream(sql, params, transformRows), (error) => Stream.fromEffect(mapError(error)))
  }
}

/** Options of `makeReplicaClient`. */
export interface ReplicaClientOptions {
  readonly primary: SqlClient.SqlClient
  readonly replica: PgClient.PgClient
  readonly target: ConnectTarget
  /** false while the replica is known to be down: reads go straight to the primary */
  readonly replicaUsable: Effect.Effect<boolean>
  /** the replica failed to give a connection or lost one: tell its supervisor */
  readonly onReplicaFailure: (issue: HealthIssue) => Effect.Effect<void>
}

/** Builds the routing `SqlClient`. */
export const makeReplicaClient = (
  options: ReplicaClientOptions
): Effect.Effect<SqlClient.SqlClient, never, Reactivity.Reactivity> => {
  const { primary, replica, target } = options
  const acquirer: Connection.Acquirer = Effect.flatMap(options.replicaUsable, (usable) =>
    usable
      ? replica.reserve.pipe(
        Effect.map((connection) => guard(connection, target, options.onReplicaFailure)),
        Effect.catchAll((error) => {
          const issue = replicaIssue(error.cause, target)
          // a busy replica is not a broken one: this read goes to the primary, nothing is reported
          const report = issue._tag === "PoolExhausted" ? Effect.void : options.onReplicaFailure(issue)
          return Effect.zipRight(
            Effect.zipRight(report, Effect.logDebug(`ReadReplica: read sent to the primary: ${issue.message}`)),
            primary.reserve
          )
        })
      )
      : primary.reserve)
  return SqlClient.make({
    acquirer,
    transactionAcquirer: acquirer,
    compiler: makeCompiler(),
    spanAttributes: [
      ["db.system.name", "postgresql"],
      ["server.address", target.host],
      ["server.port", target.port],
      ["takumi.db.role", "read-replica"]
    ]
  })
}
