/**
 * The read-replica client: a `SqlClient` whose connection acquirer picks the server per statement
 * (or per transaction). While the replica is not known to be down, a connection is taken from the
 * replica's pool (whose connect timeout is at most the failover timeout); if that fails, the
 * statement runs on a connection of the primary instead and the supervisor is told, which probes
 * the replica and, while it does not answer, keeps reads on the primary without trying the replica.
 * Statements that run on the replica have 25006 mapped to `ReadOnlyReplica`, and a connection
 * lost under them is reported to the supervisor too. A statement the replica does not answer
 * within `DB_FAILOVER_TIMEOUT` runs again on the primary.
 *
 * Outside a transaction, statements take the direct path of internal/statement/ (`ReplicaExecutor`,
 * the deadline from `failoverDeadline`'s sweep); transactions, streams, and fibers with a tracer or
 * a statement transformer take `@effect/sql`'s path, through the acquirers below (the deadline as
 * a timer per statement, see `guard`). Both route and report alike.
 *
 * @internal
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Pg from "pg"
import type * as Scope from "effect/Scope"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import { FailoverTimeout, PoolExhausted } from "../../DbError.js"
import { ReadOnlyReplica } from "../../ReadReplica.js"
import { classifyConnectError, classifyRuntimeError, type ConnectTarget, errorCode, errorMessage } from "../classify.js"
import type { SecurePool } from "../pool.js"
import * as Run from "../statement/run.js"
import * as Statements from "../statement/statement.js"
import * as FailoverDeadline from "./failoverDeadline.js"
import type { HealthIssue } from "./supervisor.js"
import { isConnectionLost } from "../../Idempotent.js"

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

/** `ROLLBACK` and `ROLLBACK TO SAVEPOINT …`, as `withTransaction` sends them. */
const rollback = /^\s*ROLLBACK\b/i

/** The `pg` client under a connection of `@effect/sql-pg` (its `reserve` hands out the checked-out client). */
const pgClientOf = (connection: Connection): Pg.Client | undefined =>
  "pg" in connection && connection.pg instanceof Pg.Client ? connection.pg : undefined

/** How a replica connection handles a statement that did not answer within the failover timeout. */
interface Deadline {
  readonly timeout: Duration.Duration
  /**
   * runs the statement again elsewhere (on the primary); `undefined` inside a transaction, whose
   * statements cannot move to another server one by one: the statement then fails
   */
  readonly runElsewhere: (<A>(run: (connection: Connection) => Effect.Effect<A, SqlError>) => Effect.Effect<A, SqlError>) | undefined
}

/**
 * A replica connection whose failures are mapped and reported, and whose statements are bounded
 * by the failover timeout. A statement the replica has not answered by then (a frozen or
 * partitioned server: the connection was idle in the pool and looked fine) has its connection
 * closed — `client.end()` destroys the socket under an active query and marks the client ending,
 * so pg-pool discards it on release instead of handing it to the next read — is reported as
 * `FailoverTimeout`, and runs again on the primary.
 *
 * Running it again is safe: a statement on a hot standby cannot change anything (a write fails
 * there with 25006, read_only_sql_transaction), so whatever the replica did or did not do with it,
 * running it on the primary applies it at most once. (A write sent to the replica by mistake is
 * refused by a standby that answers; one that does not answer sends it to the primary, as a
 * replica that cannot give a connection always has.) Streams (`executeStream`) are not bounded:
 * their rows may legitimately take any time to arrive.
 */
const guard = (
  connection: Connection,
  target: ConnectTarget,
  onLost: (issue: HealthIssue) => Effect.Effect<void>,
  deadline: Deadline
): Connection => {
  const mapError = mapReplicaError(target, onLost)
  const client = pgClientOf(connection)
  // set once the deadline has closed the connection
  let closed = false
  const timedOut = () => new FailoverTimeout({ host: target.host, port: target.port, timeoutMillis: Duration.toMillis(deadline.timeout) })
  const expired = (): Effect.Effect<never, SqlError> => {
    const issue = timedOut()
    return Effect.zipRight(onLost(issue), Effect.fail(new SqlError({ cause: issue, message: issue.message })))
  }
  const bounded = <A>(run: (connection: Connection) => Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> => {
    const onReplica: Effect.Effect<A, SqlError> = client === undefined
      // not a pg client underneath (never with @effect/sql-pg): interrupt the statement instead
      ? run(connection).pipe(
        Effect.disconnect,
        Effect.timeoutFail({ duration: deadline.timeout, onTimeout: () => new SqlError({ cause: timedOut(), message: timedOut().message }) }),
        Effect.catchAll((error) => (error.cause instanceof FailoverTimeout ? expired() : mapError(error)))
      )
      : Effect.suspend(() => {
        // the statement is not interrupted (that would make @effect/sql-pg send pg_cancel_backend
        // through the same hung replica pool): its connection is closed, which fails it at once
        let ended = false
        const expire = Effect.sleep(deadline.timeout).pipe(
          Effect.zipRight(Effect.sync(() => {
            ended = true
            closed = true
            client.end().then(undefined, () => undefined)
          }))
        )
        // interruptible whatever the caller's region (`withTransaction` begins uninterruptibly):
        // interrupting the timer must stop it, not wait for it to fire
        return Effect.flatMap(Effect.fork(Effect.interruptible(expire)), (timer) =>
          run(connection).pipe(
            Effect.ensuring(Fiber.interrupt(timer)),
            Effect.catchAll((error) => (ended ? expired() : mapError(error)))
          ))
      })
    const elsewhere = deadline.runElsewhere
    // a connection the deadline closed takes no further statement (the rest of its transaction)
    const attempt = Effect.suspend(() => (closed ? expired() : onReplica))
    return elsewhere === undefined ? attempt : Effect.catchIf(
      attempt,
      (error) => error.cause instanceof FailoverTimeout,
      (error) =>
        Effect.zipRight(
          Effect.logDebug(`ReadReplica: read sent again to the primary: ${error.message}`),
          elsewhere(run)
        )
    )
  }
  return {
    execute: (sql, params, transformRows) => bounded((c) => c.execute(sql, params, transformRows)),
    executeRaw: (sql, params) => bounded((c) => c.executeRaw(sql, params)),
    executeValues: (sql, params) => bounded((c) => c.executeValues(sql, params)),
    executeUnprepared: (sql, params, transformRows) =>
      // `withTransaction` rolls back on the same connection and turns a failed ROLLBACK into a
      // defect; once the deadline closed the connection the server discards the transaction with
      // it, so the rollback is done and the transaction fails with the typed FailoverTimeout
      Effect.suspend(() =>
        closed && rollback.test(sql)
          ? Effect.succeed([])
          : bounded((c) => c.executeUnprepared(sql, params, transformRows))
      ),
    executeStream: (sql, params, transformRows) =>
      Stream.catchAll(connection.executeStream(sql, params, transformRows), (error) => Stream.fromEffect(mapError(error)))
  }
}

/** Options of `makeReplicaClient`. */
export interface ReplicaClientOptions {
  readonly primary: SqlClient.SqlClient
  readonly replica: PgClient.PgClient
  /** the pools under `primary` and `replica`, and the primary's target, for the direct path */
  readonly primaryPool: SecurePool
  readonly primaryTarget: ConnectTarget
  readonly replicaPool: SecurePool
  /** the replica's */
  readonly target: ConnectTarget
  /** `DB_FAILOVER_TIMEOUT`: how long a statement on the replica may go unanswered before it runs on the primary */
  readonly failoverTimeout: Duration.Duration
  /** false while the replica is known to be down: reads go straight to the primary */
  readonly replicaUsable: Effect.Effect<boolean>
  /** the replica failed to give a connection or lost one: tell its supervisor */
  readonly onReplicaFailure: (issue: HealthIssue) => Effect.Effect<void>
}

/**
 * The replica gave no connection (`error`'s cause is the pool's): reported unless the replica is
 * merely busy, and logged; the caller then sends the read to the primary.
 */
const noReplicaConnection = (error: SqlError, options: ReplicaClientOptions): Effect.Effect<void> => {
  const issue = replicaIssue(error.cause, options.target)
  // a busy replica is not a broken one: this read goes to the primary, nothing is reported
  const report = issue._tag === "PoolExhausted" ? Effect.void : options.onReplicaFailure(issue)
  return Effect.zipRight(report, Effect.logDebug(`ReadReplica: read sent to the primary: ${issue.message}`))
}

/**
 * The replica client's direct statements, outside a transaction: on the replica while it is not
 * known to be down, bounded by the failover deadline, with its failures mapped as `guard` maps
 * them; a read the replica cannot take — no connection (reported, unless the replica is merely
 * busy) or no answer within the timeout (reported) — runs on the primary, as the acquirers of
 * `makeReplicaClient` send it there on `@effect/sql`'s path.
 */
class ReplicaExecutor implements Statements.Executor {
  readonly mapError: (error: SqlError) => Effect.Effect<never, SqlError>

  constructor(readonly options: ReplicaClientOptions, readonly deadline: Run.Watch) {
    this.mapError = mapReplicaError(options.target, options.onReplicaFailure)
  }

  run(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    statement: Statements.Compilable,
    mode: Run.Mode,
    withoutTransform: boolean
  ): Effect.Effect<unknown, SqlError> | undefined {
    if (Statements.needsUpstream(fiber) || Statements.transactionOf(fiber) !== undefined) return undefined
    const [sql, params] = statement.compiled(withoutTransform)
    const { replicaPool, replicaUsable, target } = this.options
    return Effect.flatMap(replicaUsable, (usable) =>
      usable
        ? Effect.catchAll(
          Run.onPool(replicaPool, target, sql, params, mode, this.deadline),
          (error) => this.recover(error, sql, params, mode)
        )
        : this.onPrimary(sql, params, mode))
  }

  onPrimary(sql: string, params: ReadonlyArray<unknown>, mode: Run.Mode): Effect.Effect<unknown, SqlError> {
    return Run.onPool(this.options.primaryPool, this.options.primaryTarget, sql, params, mode)
  }

  /** A failure on the replica: the read goes to the primary when the replica could not take it. */
  recover(error: SqlError, sql: string, params: ReadonlyArray<unknown>, mode: Run.Mode): Effect.Effect<unknown, SqlError> {
    if (Run.isAcquireFailure(error)) return Effect.zipRight(noReplicaConnection(error, this.options), this.onPrimary(sql, params, mode))
    if (error.cause instanceof FailoverTimeout) {
      return Effect.zipRight(
        Effect.zipRight(this.options.onReplicaFailure(error.cause), Effect.logDebug(`ReadReplica: read sent again to the primary: ${error.message}`)),
        this.onPrimary(sql, params, mode)
      )
    }
    return this.mapError(error)
  }
}

/** Builds the routing `SqlClient` (its direct path's deadline swept until the scope closes). */
export const makeReplicaClient = (
  options: ReplicaClientOptions
): Effect.Effect<SqlClient.SqlClient, never, Reactivity.Reactivity | Scope.Scope> => {
  const { primary, replica, target } = options
  const onPrimary = <A>(run: (connection: Connection) => Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
    Effect.scoped(Effect.flatMap(primary.reserve, run))
  const makeAcquirer = (deadline: Deadline): Connection.Acquirer =>
    Effect.flatMap(options.replicaUsable, (usable) =>
      usable
        ? replica.reserve.pipe(
          Effect.map((connection) => guard(connection, target, options.onReplicaFailure, deadline)),
          Effect.catchAll((error) => Effect.zipRight(noReplicaConnection(error, options), primary.reserve))
        )
        : primary.reserve)
  const upstream = SqlClient.make({
    acquirer: makeAcquirer({ timeout: options.failoverTimeout, runElsewhere: onPrimary }),
    transactionAcquirer: makeAcquirer({ timeout: options.failoverTimeout, runElsewhere: undefined }),
    compiler: makeCompiler(),
    spanAttributes: [
      ["db.system.name", "postgresql"],
      ["server.address", target.host],
      ["server.port", target.port],
      ["takumi.db.role", "read-replica"]
    ]
  })
  return Effect.zipWith(upstream, FailoverDeadline.make(target, options.failoverTimeout), (client, deadline) =>
    Statements.wrapClient(client, new ReplicaExecutor(options, deadline)))
}
