/**
 * Every statement of one connection of our pools, in one place:
 *
 * - timed by the monitor when the pool has one (the duration histogram, `SlowQuery`, and the end of
 *   a statement past `DB_QUERY_TIMEOUT` by the monitor's sweep; internal/monitor.ts);
 * - its failure typed: `StatementTimeout` when a bound ended it, `ConnectionLost` for a connection
 *   lost without a SQLSTATE (internal/statementTimeout.ts, internal/connectionLoss.ts), which
 *   `@effect/sql-pg` wraps as the `cause` of its `SqlError`;
 * - after a client-side timeout, the connection ended (pg would leave it waiting for an answer
 *   that may never come) and a `ROLLBACK` sent to it afterwards answered as done without being
 *   sent: `withTransaction` rolls back on the same connection and turns a failed ROLLBACK into a
 *   defect, whereas the transaction cannot commit any more (its COMMIT can never reach the server)
 *   and the server rolls it back when the session ends (at the latest at
 *   `idle_in_transaction_session_timeout`). The transaction then fails with the typed
 *   `StatementTimeout`, not a defect.
 *
 * `client.query` is patched once per connection, for everything that calls pg itself (the pool's
 * users, `@effect/sql`'s own statement path, transactions); it costs a statement a small object
 * with its callback and one timing entry. SecureSqlClient's direct statements (./run.ts) send
 * through {@link ClientStatements.send} instead, as the `Sent` they already are.
 * Cursors and streams (submittables) and config objects with a `callback` of their own pass
 * untouched, with pg's own read timeout.
 *
 * @internal
 */
import type * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import type { ConnectTarget } from "../classify.js"
import { typedLoss } from "../connectionLoss.js"
import type { RunningStatement, StatementTimer } from "../monitor.js"
import { passesThrough, type QueryCallback, type QueryMethod, statementText, withCallback } from "../queryArguments.js"
import { classifyStatementTimeout, type StatementBounds, statementBounds } from "../statementTimeout.js"

/** `ROLLBACK` and `ROLLBACK TO SAVEPOINT …`, as `withTransaction` sends them. */
const rollback = /^\s*ROLLBACK\b/i

/** What pg answers a `ROLLBACK` with; handed out for the one that cannot be sent any more. */
const rolledBack = (): Pg.QueryResult => ({ command: "ROLLBACK", rowCount: null, oid: 0, fields: [], rows: [] })

/** Sends nothing and answers a `ROLLBACK` on the next tick (see the module comment). */
const noSend = (_config: unknown, _values: unknown, callback: QueryCallback): void => {
  process.nextTick(() => callback(undefined, rolledBack()))
}

/** Where a connection keeps its `ClientStatements`. */
const statementsKey = Symbol("@takumi/db/internal/ClientStatements")

/** The statements of one connection (see the module comment). */
export class ClientStatements {
  /** set by the first client-side timeout: the connection is being ended */
  #timedOut = false

  constructor(
    readonly client: Pg.Client,
    /** pg's own `client.query`, under the patch */
    readonly query: QueryMethod,
    readonly target: ConnectTarget,
    readonly bounds: StatementBounds,
    readonly timer: StatementTimer | undefined
  ) {}

  /** The statements of `client`, when it is a connection of our pools. */
  static of(client: Pg.ClientBase): ClientStatements | undefined {
    return (client as { readonly [statementsKey]?: ClientStatements })[statementsKey]
  }

  /**
   * Sends a statement with pg's own `query`, timed from now. pg calls `sent.onAnswer` with its
   * answer — sometimes before `query` returns (a parameter it cannot serialize), sometimes more
   * than once (that error, then the ReadyForQuery after it) — and the monitor's sweep may call it
   * first, at `DB_QUERY_TIMEOUT`; its first call must hand the answer to {@link answered}.
   */
  send(config: unknown, values: unknown, sent: Sent): void {
    // set before pg is called: an answer from within the call finds it
    sent.running = this.timer?.begin(this.client, config, sent.onAnswer)
    try {
      this.query.call(this.client, config, values, sent.onAnswer)
    } catch (cause) {
      // pg throws synchronously on a call it refuses (no query text): nothing was sent, and nothing
      // must stay in the sweep's set (at DB_QUERY_TIMEOUT it would end this connection)
      this.#endTiming(sent, cause)
      throw cause
    }
  }

  /** The answer to a statement `send` sent: its timing ended, and its error as the caller gets it. */
  answered(sent: Sent, err: unknown): unknown {
    this.#endTiming(sent, err)
    if (err === undefined || err === null) return err
    const timeout = classifyStatementTimeout(err, this.target, this.bounds)
    // not a bound: a connection lost without a SQLSTATE is typed too (see connectionLoss.ts)
    if (timeout === undefined) return typedLoss(err, this.target)
    if (timeout.side === "client" && !this.#timedOut) {
      this.#timedOut = true
      // the socket is destroyed under the unanswered statement; a failure to close it changes nothing
      this.client.end().then(undefined, () => undefined)
    }
    return timeout
  }

  /** Ends the timing of `sent`, once. */
  #endTiming(sent: Sent, err: unknown): void {
    const running = sent.running
    if (running === undefined) return
    sent.running = undefined
    this.timer?.end(running, err)
  }

  /** `client.query` as the patch runs it, with pg's arguments. */
  submit(config: unknown, values: unknown, callback: unknown): unknown {
    if (passesThrough(config)) {
      this.timer?.untimed(config)
      return this.query.call(this.client, config, values, callback)
    }
    if (this.#timedOut && rollback.test(statementText(config) ?? "")) return withCallback(config, values, callback, noSend)
    return withCallback(config, values, callback, this.#sendFor)
  }

  /** `send` for a caller's own callback: answered once. */
  readonly #sendFor = (config: unknown, values: unknown, done: QueryCallback): void => {
    this.send(config, values, new Submitted(this, done))
  }
}

/** A statement sent with {@link ClientStatements.send}: how it is answered, and its timing. */
export interface Sent {
  /** the monitor's entry for it while it runs (set by `send`, cleared by `answered`) */
  running: RunningStatement | undefined
  /** pg's callback for it, and the sweep's */
  readonly onAnswer: QueryCallback
}

/** A pg-level caller's statement: its callback gets the first answer, typed. */
class Submitted implements Sent {
  running: RunningStatement | undefined = undefined
  #settled = false

  constructor(readonly statements: ClientStatements, readonly done: QueryCallback) {}

  readonly onAnswer = (err: unknown, result?: unknown): void => {
    // the sweep may answer first (read timeout); pg's own answer then finds it settled
    if (this.#settled) return
    this.#settled = true
    this.done(this.statements.answered(this, err), result)
  }
}

/**
 * The client class of a pool: `Base` (pg's, or the monitor's instrumented one) with its statements
 * as described above, timed by `timer` when there is one.
 */
export const withStatements = (
  Base: typeof Pg.Client,
  target: ConnectTarget,
  settings: DbSettings,
  timer: StatementTimer | undefined
): typeof Pg.Client => {
  const bounds = statementBounds(settings)
  return class StatementsClient extends Base {
    constructor(config?: string | Pg.ClientConfig) {
      super(config)
      const statements = new ClientStatements(this, this.query as QueryMethod, target, bounds, timer)
      Object.defineProperty(this, statementsKey, { value: statements })
      Object.defineProperty(this, "query", {
        value: (config: unknown, values?: unknown, callback?: unknown) => statements.submit(config, values, callback),
        writable: true,
        configurable: true
      })
    }
  }
}
