/**
 * Behind a transaction-pooling PgBouncer (`DB_POOLER=pgbouncer`). What changes, and why
 * (measured with PgBouncer 1.18, see the README's "Behind PgBouncer"):
 *
 * - Startup parameters. PgBouncer answers every startup parameter it does not track with
 *   08P01 "unsupported startup parameter", unless `ignore_startup_parameters` lists it — and then
 *   drops it. So the client sends only what PgBouncer tracks (user, database, application_name,
 *   client_encoding): not `options` or `replication` (their job, keeping `PGOPTIONS` /
 *   `PGREPLICATION` out, is done by PgBouncer itself, which refuses or drops them), and not
 *   `statement_timeout` / `idle_in_transaction_session_timeout`. No `SET` either: in transaction
 *   mode it would stick to a server connection other clients then use, and `SET LOCAL` per
 *   transaction costs a round trip on every statement.
 * - The bounds therefore belong to the server (`ALTER ROLE app SET statement_timeout = …`), and
 *   startup checks that the server enforces what `DB_STATEMENT_TIMEOUT` and
 *   `DB_IDLE_IN_TRANSACTION_TIMEOUT` say: a mismatch is a posture finding (refused in production,
 *   a warning elsewhere), so a bound is never silently lost.
 * - TLS posture. Through PgBouncer, `pg_stat_ssl` describes PgBouncer's connection to PostgreSQL,
 *   not ours; our own leg is the socket we hold. The startup check keeps both: the socket must be
 *   TLS 1.2+ with a strong cipher (client → PgBouncer, verified with our own CA and host check)
 *   and so must the row in `pg_stat_ssl` (PgBouncer → PostgreSQL). A PgBouncer with
 *   `server_tls_sslmode = disable` is therefore `TlsNotNegotiated`.
 *
 * @internal
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import type { PostureFinding } from "../DbError.js"
import { classifyRuntimeError, type ConnectTarget } from "./classify.js"
import { boundMillis } from "./statementTimeout.js"

/** Whether the client talks to PostgreSQL itself and may send every startup parameter. */
export const direct = (settings: DbSettings): boolean => settings.pooler === "none"

/**
 * The startup parameters only PostgreSQL accepts: `options` (keeps `PGOPTIONS` from injecting
 * server settings such as search_path or role) and `replication` (keeps `PGREPLICATION` out;
 * a replication connection is never what this pool wants). None behind PgBouncer.
 */
export const serverOnlyParameters = (settings: DbSettings): { readonly options?: string; readonly replication?: string } =>
  direct(settings) ? { options: "-c client_encoding=UTF8", replication: "false" } : {}

/** The two server settings a bound maps to, in milliseconds (0 = none), as the server reports them. */
interface ServerBounds {
  readonly statement_timeout: number
  readonly idle_in_transaction_session_timeout: number
}

const boundsQuery = `SELECT name, setting FROM pg_settings
WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout')`

const readBounds = (client: Pg.Client, target: ConnectTarget) =>
  Effect.tryPromise({
    try: () => client.query<{ name: string; setting: string }>(boundsQuery),
    catch: (cause) => classifyRuntimeError(cause, target)
  }).pipe(Effect.map((result): ServerBounds => {
    const setting = (name: string) => Number(result.rows.find((row) => row.name === name)?.setting ?? "0")
    return {
      statement_timeout: setting("statement_timeout"),
      idle_in_transaction_session_timeout: setting("idle_in_transaction_session_timeout")
    }
  }))

/** The bounds the settings ask for that the server does not enforce. */
export const boundFindings = (settings: DbSettings, server: ServerBounds): Array<PostureFinding> => {
  const wanted: ReadonlyArray<readonly [keyof ServerBounds, string, number]> = [
    ["statement_timeout", "DB_STATEMENT_TIMEOUT", boundMillis(settings.statementTimeout) ?? 0],
    ["idle_in_transaction_session_timeout", "DB_IDLE_IN_TRANSACTION_TIMEOUT", boundMillis(settings.idleInTransactionTimeout) ?? 0]
  ]
  return wanted.filter(([name, , millis]) => server[name] !== millis).map(([name, variable, millis]) => ({
    rule: "StatementBoundsNotApplied",
    detail: `${variable}=${millis} but the server runs with ${name} = ${server[name]} ms: behind DB_POOLER=pgbouncer ` +
      `the client cannot send it (ALTER ROLE ${settings.user} SET ${name} = ${millis})`
  }))
}

/** The pooler's findings for a freshly opened connection: none when the client talks to PostgreSQL itself. */
export const inspect = (
  client: Pg.Client,
  settings: DbSettings,
  target: ConnectTarget
): Effect.Effect<Array<PostureFinding>, ReturnType<typeof classifyRuntimeError>> =>
  direct(settings)
    ? Effect.succeed([])
    : Effect.map(readBounds(client, target), (server) => boundFindings(settings, server))

/** What `PgClient.listen` fails with behind PgBouncer. */
export const listenRefusedMessage = (channel: string): string =>
  `LISTEN ${channel} cannot work through PgBouncer in transaction pooling mode (DB_POOLER=pgbouncer): the server ` +
  "connection that listens goes back to the pool after the statement and the notifications never arrive. Listen on a " +
  "direct connection to PostgreSQL (a second client with DB_POOLER=none) or through a session-mode PgBouncer pool."

/**
 * The one transaction-mode breakage the client can see coming: `PgClient.listen` fails at once
 * with a `SqlError` naming the fix instead of a stream that never emits. The client object is
 * fresh from `PgClient.fromPool` (one per layer), so replacing its `listen` touches nobody else's.
 */
export const guardTransactionMode = (settings: DbSettings) =>
<A extends PgClient.PgClient | SqlClient.SqlClient>(
  context: Context.Context<A | PgClient.PgClient>
): Context.Context<A | PgClient.PgClient> => {
  if (direct(settings)) return context
  const client = Context.get(context, PgClient.PgClient)
  Object.assign(client, {
    listen: (channel: string) => Stream.fail(new SqlError({ message: listenRefusedMessage(channel) }))
  })
  return context
}
