/**
 * A connection lost under a statement, typed where the client reports it.
 *
 * When the socket closes without a server message (the postmaster killed with SIGKILL, a network
 * reset), pg reports it as a plain `Error` "Connection terminated unexpectedly", or a Node
 * `ECONNRESET` / `EPIPE`, with no SQLSTATE: as the client's `error` event, which `@effect/sql-pg`
 * turns into `SqlError("Connection error")` for the statement in flight, and to the statement's own
 * callback. Both would reach the caller as a `SqlError` whose cause is neither a typed error nor a
 * pg error with a SQLSTATE. The soak (test/soak, issue #16) found them under a `kill -9`: here they
 * become `ConnectionLost` (code and reason kept), so every statement failure's cause is typed.
 * A loss the server announced (57P01, 57P03) keeps its pg error, as the README documents.
 *
 * @internal
 */
import type * as Pg from "pg"
import { ConnectionLost } from "../DbError.js"
import { classifyRuntimeError, type ConnectTarget, errorCode, isConnectionLoss } from "./classify.js"

const SQLSTATE = /^[0-9A-Z]{5}$/

/** `err` as `ConnectionLost` when it is a loss without a SQLSTATE; anything else unchanged. */
export const typedLoss = (err: unknown, target: ConnectTarget): unknown => {
  if (err instanceof ConnectionLost || !isConnectionLoss(err)) return err
  const code = errorCode(err)
  return code !== undefined && SQLSTATE.test(code) ? err : classifyRuntimeError(err, target)
}

/** The client class of a pool: `Base` whose `error` events carry a typed loss (see {@link typedLoss}). */
export const withTypedLosses = (Base: typeof Pg.Client, target: ConnectTarget): typeof Pg.Client =>
  class LossTypedClient extends Base {
    // pg's client events carry at most one argument ('drain' after every statement, none); a fixed
    // arity keeps the per-statement 'drain' free of rest arrays
    override emit(event: string | symbol, arg?: unknown): boolean {
      if (event === "error") return super.emit(event, typedLoss(arg, target))
      return arguments.length < 2 ? super.emit(event) : super.emit(event, arg)
    }
  }
