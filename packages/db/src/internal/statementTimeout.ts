/**
 * Statements cannot hang forever: the time bounds of `DbSettings` as `pg` options, and the two
 * ways a bound ends a statement told apart as `StatementTimeout` (a connection's statements are
 * typed with it in internal/statement/connection.ts).
 *
 * - `statement_timeout` and `idle_in_transaction_session_timeout` go to the server as startup
 *   parameters of every connection (pg sends them in the startup packet; no extra round trip, and
 *   no `SET` that a transaction-mode PgBouncer would leak into another client's session). The
 *   server cancels a statement at its bound with SQLSTATE 57014 on a healthy connection.
 *   Behind PgBouncer (1.18) a startup parameter it does not track is refused (08P01 "unsupported
 *   startup parameter", as FACTS.md records for the `options` and `replication` this pool already
 *   sends) unless listed in `ignore_startup_parameters` — and an ignored one is dropped, not
 *   applied. With `DB_POOLER=pgbouncer` they are therefore not sent: the bounds are set on the
 *   server (`ALTER ROLE … SET statement_timeout`) and checked at startup (`pooler.ts`);
 *   `DB_QUERY_TIMEOUT` works either way.
 * - `query_timeout` is pg's own timer per statement, for a peer that stops answering: the server
 *   cannot cancel anything it never hears about. pg then fails the statement with
 *   "Query read timeout" and leaves the connection as it was — still waiting for the answer to
 *   the statement it sent, so the next statement on it would queue behind a reply that may never
 *   come. The connection is therefore ended (internal/statement/connection.ts) before the caller
 *   hears of the failure, so that pg-pool discards it on release instead of handing it to the
 *   next caller.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import { StatementTimeout } from "../DbError.js"
import { type ConnectTarget, errorCode, errorMessage } from "./classify.js"

/** pg's message when `query_timeout` passed without an answer (pg 8 `client.js`; it has no code). */
export const queryReadTimeoutMessage = "Query read timeout"

/** SQLSTATE query_canceled: what `statement_timeout` ends a statement with. */
export const queryCanceledCode = "57014"

/**
 * The largest bound both ends accept: the server's `statement_timeout` is an int of milliseconds
 * and Node's `setTimeout` (pg's `query_timeout`) fires at once for anything above 2^31 - 1.
 */
const maxMillis = 2_147_483_647

/** A bound in whole milliseconds, or `undefined` for none (zero, negative or infinite: nothing is sent). */
export const boundMillis = (duration: Duration.Duration): number | undefined => {
  const millis = Duration.toMillis(duration)
  return Number.isFinite(millis) && millis > 0 ? Math.min(Math.ceil(millis), maxMillis) : undefined
}

/** The bounds a connection runs with, as `StatementTimeout` reports them. */
export interface StatementBounds {
  /** `DB_STATEMENT_TIMEOUT`, sent as `statement_timeout` */
  readonly statementMillis: number | undefined
  /** `DB_QUERY_TIMEOUT`, pg's `query_timeout` */
  readonly queryMillis: number | undefined
}

/** The bounds of the settings. */
export const statementBounds = (settings: DbSettings): StatementBounds => ({
  statementMillis: boundMillis(settings.statementTimeout),
  queryMillis: boundMillis(settings.queryTimeout)
})

/**
 * The pg options for the settings' bounds. A bound of zero is left out, so the server's default
 * (postgresql.conf, `ALTER ROLE` / `ALTER DATABASE ... SET`) applies; pg sends nothing for an
 * absent option and, for these three, never falls back to a `PG*` environment variable.
 */
export const timeoutOptions = (
  settings: DbSettings
): Pick<Pg.ClientConfig, "statement_timeout" | "idle_in_transaction_session_timeout" | "query_timeout"> => {
  const { queryMillis } = statementBounds(settings)
  // behind PgBouncer the server bounds are the server's own, checked at startup (internal/pooler.ts)
  const startup = settings.pooler === "none"
  const statementMillis = startup ? boundMillis(settings.statementTimeout) : undefined
  const idleMillis = startup ? boundMillis(settings.idleInTransactionTimeout) : undefined
  return {
    ...(statementMillis === undefined ? {} : { statement_timeout: statementMillis }),
    ...(idleMillis === undefined ? {} : { idle_in_transaction_session_timeout: idleMillis }),
    ...(queryMillis === undefined ? {} : { query_timeout: queryMillis })
  }
}

/**
 * A statement's failure as a `StatementTimeout`, when it is one. The server's cancellation is told
 * from an administrator's `pg_cancel_backend` (57014 as well, "due to user request") by its text,
 * which is English unless the server's `lc_messages` says otherwise: under another language a
 * statement timeout stays the plain `SqlError` with code 57014.
 */
export const classifyStatementTimeout = (
  cause: unknown,
  target: Pick<ConnectTarget, "host" | "port">,
  bounds: StatementBounds
): StatementTimeout | undefined => {
  const { host, port } = target
  const code = errorCode(cause)
  const message = errorMessage(cause)
  if (code === undefined && message === queryReadTimeoutMessage) {
    return new StatementTimeout({
      host,
      port,
      side: "client",
      ...(bounds.queryMillis === undefined ? {} : { timeoutMillis: bounds.queryMillis })
    })
  }
  if (code === queryCanceledCode && /statement timeout/i.test(message)) {
    return new StatementTimeout({
      host,
      port,
      side: "server",
      code,
      ...(bounds.statementMillis === undefined ? {} : { timeoutMillis: bounds.statementMillis })
    })
  }
  return undefined
}
