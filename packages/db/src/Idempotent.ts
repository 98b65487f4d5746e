/**
 * Marking work as safe to run twice.
 *
 * Takumi DB retries on its own only what cannot have reached the server: opening or acquiring a
 * connection. A statement whose connection was lost while it ran (server restart, terminated
 * backend, network reset) may or may not have been executed and committed; running it again could
 * apply it twice. It is therefore failed with its `SqlError`, unless the caller says it is
 * idempotent with `Idempotent.retry` — then it is run again on the reconnect backoff, within the
 * policy's budget.
 *
 * Transactions are never retried piecemeal: inside `withTransaction` the combinator does nothing
 * (the connection, and with it the transaction, is gone; re-running one statement on a new
 * connection would run it outside the transaction). Mark the whole transaction instead:
 *
 * ```ts
 * // the whole transaction is re-run from BEGIN when its connection is lost
 * Idempotent.retry(sql.withTransaction(transfer))
 * ```
 *
 * A connection lost during COMMIT leaves it unknown whether the transaction committed; marking the
 * transaction idempotent is the caller's statement that running it again is harmless.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { StatementTimeout } from "./DbError.js"
import { isConnectionLoss } from "./internal/classify.js"
import * as ReconnectSchedule from "./ReconnectSchedule.js"

/**
 * pg's own words for a client whose connection is gone, and `@effect/sql-pg`'s message when the
 * checked-out client emitted `error` while a statement ran.
 */
const lostMessages = /^(Connection terminated|Client has encountered a connection error|Client was closed|Connection error$)/

/**
 * True for a failure that means the connection was lost while (or before) the statement ran — the
 * failures `retry` retries. A client-side `StatementTimeout` (no answer within `DB_QUERY_TIMEOUT`)
 * is one: the connection was discarded and whether the statement ran is unknown. Any other
 * `SqlError` (a constraint violation, a syntax error, a serialization failure, a statement the
 * server cancelled at `DB_STATEMENT_TIMEOUT`, which would only run as long again) is the
 * statement's own result and is never retried.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isConnectionLost = (error: unknown): boolean => {
  if (!(error instanceof SqlError)) return false
  if (error.cause instanceof StatementTimeout) return error.cause.side === "client"
  if (isConnectionLoss(error.cause)) return true
  const message = error.cause instanceof Error ? error.cause.message : error.message
  return lostMessages.test(message) || lostMessages.test(error.message)
}

/**
 * True inside `withTransaction` (any client's).
 *
 * @since 0.1.0
 * @category predicates
 */
export const inTransaction: Effect.Effect<boolean> = Effect.map(
  Effect.serviceOption(SqlClient.TransactionConnection),
  Option.isSome
)

/**
 * `withTransaction` turns a failed ROLLBACK into a defect; when the connection is gone, ROLLBACK
 * fails too, so a transaction whose connection was lost ends as that defect. Carried as a failure
 * while retrying, and turned back into the same defect if the retries run out.
 */
class LostInTransaction {
  constructor(readonly defect: SqlError) {}
}

const isLostInTransaction = (u: unknown): u is LostInTransaction => u instanceof LostInTransaction

/**
 * Re-runs `self` when its connection was lost, on the given policy's backoff and within its budget.
 * Inside a transaction it runs `self` once, unchanged.
 *
 * @since 0.1.0
 * @category combinators
 */
export const retryWith = (policy: ReconnectSchedule.ReconnectPolicy) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(inTransaction, (inside) =>
    inside ? self : self.pipe(
      Effect.catchAllDefect((defect) =>
        defect instanceof SqlError && isConnectionLost(defect)
          ? Effect.fail(new LostInTransaction(defect))
          : Effect.die(defect)
      ),
      Effect.retry({
        schedule: ReconnectSchedule.retry(policy),
        while: (error) => isLostInTransaction(error) || isConnectionLost(error)
      }),
      Effect.catchIf(isLostInTransaction, (lost) => Effect.die(lost.defect))
    ))

/**
 * Marks `self` idempotent: re-runs it when its connection was lost, on the reconnect policy in the
 * context (`ReconnectSchedule`, or the defaults). Inside a transaction it runs `self` once, unchanged:
 * wrap the whole `withTransaction` effect instead.
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(ReconnectSchedule.policy, (policy) => retryWith(policy)(self))
