/**
 * Running one compiled statement on pg, as `@effect/sql-pg`'s connection does, with less around it.
 *
 * Outside a transaction: a connection from the pool (pg-pool's own checkout first; after a failed
 * attempt the pool's `recover`, where the 28P01 retry and the resilience hook's retries live, as
 * for `connect`), the statement, the connection back. Inside one: the transaction's own client.
 * What a caller can observe is `@effect/sql-pg`'s:
 *
 * - the rows (an array of row arrays for a multi-statement text), the `pg.Result` for `raw`, arrays
 *   for `values`;
 * - `SqlError` "Failed to acquire connection" (the pool's typed error as cause), "Failed to execute
 *   statement" (pg's error as cause), "Connection error" for a connection lost under the statement
 *   (its cause typed as `ConnectionLost` where pg gave no SQLSTATE: internal/connectionLoss.ts);
 * - interruption: a statement already sent is cancelled on the server (`pg_cancel_backend`, best
 *   effort, at most 5 s) before its connection goes back; a caller still waiting for a connection
 *   gives it back unused when it arrives.
 *
 * What it does not do per statement: open a `Scope`, register an `error` listener on the
 * connection (every client of our pools has one for its whole life, pool.ts), or build closures
 * beyond the two callbacks pg needs.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import { SqlError } from "@effect/sql/SqlError"
import type * as Pg from "pg"
import type { ConnectTarget } from "../classify.js"
import { ConnectionLost } from "../../DbError.js"
import { typedLoss } from "../connectionLoss.js"
import type { RunningStatement } from "../monitor.js"
import type { SecurePool } from "../pool.js"
import { ClientStatements, type Sent } from "./connection.js"

/** What the caller gets back: rows, pg's `Result`, or rows as arrays. */
export type Mode = "rows" | "raw" | "values"

type Resume = (effect: Effect.Effect<unknown, SqlError>) => void

/** `SqlError`'s message for a connection the pool could not give, as `@effect/sql-pg` words it. */
const acquireFailed = "Failed to acquire connection"

/** Whether `onPool` failed before the statement was sent: the pool gave no connection. */
export const isAcquireFailure = (error: SqlError): boolean => error.message === acquireFailed

/** A statement in flight on a connection of its own, which `end` can stop at once. */
export interface Expirable {
  /** closes the statement's connection (discarded by the pool, never reused) and fails the statement with `cause` */
  readonly end: (cause: Error) => void
}

/**
 * What watches the statements `onPool` sends (the read replica's failover deadline): `sent` when
 * the statement goes out on its connection, `answered` when it is done, whichever way.
 */
export interface Watch {
  readonly sent: (run: Expirable) => void
  readonly answered: (run: Expirable) => void
}

/** The statement text as pg takes it: `values` mode is a query config with `rowMode`. */
const queryOf = (sql: string, params: ReadonlyArray<unknown>, mode: Mode): Pg.QueryArrayConfig | string =>
  mode === "values" ? { text: sql, values: params as Array<unknown>, rowMode: "array" } : sql

/** `@effect/sql-pg`'s result shapes: a multi-statement text gives one row array per statement. */
const resultOf = (result: Pg.QueryResult | ReadonlyArray<Pg.QueryResult>, mode: Mode): unknown => {
  if (mode === "raw") return result
  return Array.isArray(result) ? result.map((r: Pg.QueryResult) => r.rows ?? []) : (result as Pg.QueryResult).rows ?? []
}

/**
 * The statement's failure as `@effect/sql-pg` words it: "Connection error" when the socket went
 * (pg emits that on the client before the statement's own callback, which `@effect/sql-pg` hears
 * first), "Failed to execute statement" for everything the server answered — a 57P01 included.
 */
const statementError = (cause: unknown, target: ConnectTarget): SqlError => {
  const typed = typedLoss(cause, target)
  return new SqlError({ cause: typed, message: typed instanceof ConnectionLost ? "Connection error" : "Failed to execute statement" })
}

/**
 * Cancels the statement running on `client` (`@effect/sql-pg`'s best effort: a
 * `pg_cancel_backend` through the pool, given up after 5 s or when the pool is ending).
 */
const cancelOn = (pool: Pg.Pool, client: Pg.PoolClient): Effect.Effect<void> => {
  const processId = (client as { readonly processID?: number }).processID
  if (processId === undefined) return Effect.void
  return Effect.async<void>((resume) => {
    if (pool.ending) return resume(Effect.void)
    pool.query(`SELECT pg_cancel_backend(${processId})`, () => resume(Effect.void))
  }).pipe(Effect.interruptible, Effect.timeoutOption(5000), Effect.asVoid)
}

/**
 * One statement outside a transaction: checkout, query, release. Its two callbacks are methods
 * bound once; the state lives in the fields. On a connection of our pools the statement goes
 * through the connection's statements with `onAnswer` as its callback (./connection.ts: timed,
 * its failure typed) rather than through the patched `client.query`, which would wrap it once more.
 *
 * The run is also the effect `Effect.async` runs when the caller is interrupted (`commit`: the
 * statement cancelled on the server, then the connection back), so that a statement allocates no
 * canceler of its own.
 */
class PooledRun extends Effectable.Class<void> implements Expirable, Sent {
  #client: Pg.PoolClient | undefined = undefined
  /** the connection's statements, when it was sent through them */
  #statements: ClientStatements | undefined = undefined
  /** its timing entry while it runs (`Sent`: set and cleared by the connection's statements) */
  running: RunningStatement | undefined = undefined
  /** the first checkout failed and went to the pool's `recover` */
  #recovering = false
  /** pg (or the monitor's sweep) has answered the statement */
  #answered = false
  /** the caller has its outcome and the connection is back (or on its way back) */
  #done = false

  constructor(
    readonly pool: SecurePool,
    readonly target: ConnectTarget,
    readonly query: Pg.QueryArrayConfig | string,
    readonly params: ReadonlyArray<unknown>,
    readonly mode: Mode,
    readonly resume: Resume,
    readonly watch: Watch | undefined
  ) {
    super()
  }

  readonly onClient = (err: Error | null | undefined, client: Pg.PoolClient | undefined): void => {
    if (this.#done) {
      // the caller was interrupted while it waited: the connection goes back unused
      client?.release()
      return
    }
    if ((err !== null && err !== undefined) || client === undefined) {
      if (!this.#recovering) {
        // the first attempt (pg-pool's own checkout) failed: the pool's retries take it from here
        this.#recovering = true
        this.pool.recover(err, this.onClient)
        return
      }
      this.#done = true
      this.resume(Effect.fail(new SqlError({ cause: err ?? new Error("No client returned"), message: acquireFailed })))
      return
    }
    this.#client = client
    try {
      // before the query: a query that throws finishes the run, and `answered` follows `sent`
      this.watch?.sent(this)
      const statements = ClientStatements.of(client)
      if (statements === undefined) client.query(this.query as string, this.params as Array<unknown>, this.onAnswer)
      else {
        this.#statements = statements
        statements.send(this.query, this.params, this)
      }
    } catch (cause) {
      // pg throws synchronously on a call it refuses (a parameter it cannot serialize is answered
      // through the callback instead, before `query` returns)
      this.#finish()
      this.resume(Effect.fail(new SqlError({ cause, message: "Failed to execute statement" })))
    }
  }

  readonly onAnswer = (err: unknown, result?: unknown): void => {
    // once, even after the run was ended or cancelled: the connection's statements time and type it
    if (this.#answered) return
    this.#answered = true
    const error = this.#statements === undefined ? err : this.#statements.answered(this, err)
    if (this.#done) return
    this.#finish()
    this.resume(
      error === null || error === undefined
        ? Effect.succeed(resultOf(result as Pg.QueryResult, this.mode))
        : Effect.fail(statementError(error, this.target))
    )
  }

  /**
   * Gives the connection back, once, without an error, as `@effect/sql-pg` does after an answer:
   * pg-pool itself drops a client that is no longer queryable, and one the server is about to
   * close (57P01) is reported lost by the pool when its socket closes (pool.ts), not ended here
   * first, which would silence that report.
   */
  #finish(): void {
    if (this.#done) return
    this.#done = true
    this.watch?.answered(this)
    this.#client?.release()
  }

  /**
   * Ends the statement now (see `Expirable`): `client.end()` destroys the socket under the active
   * query and marks the client ending, so pg-pool discards it on release instead of handing it to
   * the next caller; pg's own failure of the query, when it comes, finds the run done.
   */
  end(cause: Error): void {
    const client = this.#client
    if (this.#done || client === undefined) return
    client.end().then(undefined, () => undefined)
    this.#finish()
    this.resume(Effect.fail(new SqlError({ cause, message: cause.message })))
  }

  /** The interruption: the statement cancelled on the server, then the connection back. */
  commit(): Effect.Effect<void> {
    const client = this.#client
    if (this.#done || client === undefined) {
      this.#done = true
      return Effect.void
    }
    return Effect.ensuring(cancelOn(this.pool, client), Effect.sync(() => this.#finish()))
  }
}

/** Runs `sql` with a connection of `pool`, as described above; `watch` is told when it is sent and answered. */
export const onPool = (
  pool: SecurePool,
  target: ConnectTarget,
  sql: string,
  params: ReadonlyArray<unknown>,
  mode: Mode,
  watch?: Watch
): Effect.Effect<unknown, SqlError> =>
  Effect.async<unknown, SqlError>((resume) => {
    const run = new PooledRun(pool, target, queryOf(sql, params, mode), params, mode, resume, watch)
    pool.checkout(run.onClient)
    return run
  })

/**
 * Runs `sql` on a transaction's client (`withTransaction`, `reserve`): the transaction owns the
 * connection, so nothing is released here; an interrupted statement is cancelled on the server.
 */
export const onClient = (
  pool: Pg.Pool,
  client: Pg.PoolClient,
  target: ConnectTarget,
  sql: string,
  params: ReadonlyArray<unknown>,
  mode: Mode
): Effect.Effect<unknown, SqlError> =>
  Effect.async<unknown, SqlError>((resume) => {
    try {
      client.query(queryOf(sql, params, mode) as string, params as Array<unknown>, (err: Error | null | undefined, result: Pg.QueryResult) => {
        // as `@effect/sql-pg` inside a transaction: every failure is "Failed to execute statement"
        resume(
          err !== null && err !== undefined
            ? Effect.fail(new SqlError({ cause: typedLoss(err, target), message: "Failed to execute statement" }))
            : Effect.succeed(resultOf(result, mode))
        )
      })
    } catch (cause) {
      resume(Effect.fail(new SqlError({ cause, message: "Failed to execute statement" })))
    }
    // made only if the statement is interrupted
    return Effect.suspend(() => cancelOn(pool, client))
  })
