/**
 * The scripted client behind `SecureSqlClient.layerTest`: a real `@effect/sql` `SqlClient`
 * (`SqlClient.make` with `@effect/sql-pg`'s compiler, so templates, fragments, parameters and
 * `withTransaction` compile and behave exactly as with `PgClient`) over a fake `Connection` that
 * records every statement it is given and answers it from the test's script.
 *
 * Failures are wrapped the way `@effect/sql-pg` wraps them: a `SqlError` whose `cause` is the
 * scripted error, with the message `PgClient` gives it — "Failed to acquire connection" (or
 * "... for transaction", on `BEGIN`) for what can only happen while a connection is acquired (a
 * full pool, a refused or failed connect; the acquisition hook of `SecureSqlClient` rejects with
 * those typed errors), "Failed to execute statement" for everything else.
 *
 * @internal
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection, Row } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type { DbError } from "../DbError.js"
import * as DbHealth from "../DbHealth.js"
import * as ReadReplica from "../ReadReplica.js"
import * as SecurityAlerts from "../SecurityAlerts.js"

/** One statement as the client was asked to run it: compiled text (`$1`, `$2`, ...) and parameters. */
export interface RecordedStatement {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
}

/**
 * Which statements an answer is for: the text (compared with runs of whitespace collapsed and the
 * ends trimmed, so a multi-line template matches its one-line spelling), a `RegExp` tested on the
 * compiled text, or a predicate of the compiled text and the parameters.
 */
export type Match = string | RegExp | ((sql: string, params: ReadonlyArray<unknown>) => boolean)

/** An answer of the script: rows for the matching statements, or a failure. */
export type Answer =
  | { readonly when: Match; readonly rows: ReadonlyArray<Row> }
  | {
    readonly when: Match
    /** the `cause` of the `SqlError` the statement fails with: a typed `DbError`, or a driver error */
    readonly fail: DbError | ReadReplica.ReadOnlyReplica | Error
  }

/** The script of one client. */
export interface ClientScript {
  /** tried in order, the first match answers; a statement nothing matches returns no rows */
  readonly answers?: ReadonlyArray<Answer> | undefined
  /** receives every statement, in order, BEGIN / COMMIT / ROLLBACK / SAVEPOINT included */
  readonly statements?: Ref.Ref<ReadonlyArray<RecordedStatement>> | undefined
}

/** The script of `SecureSqlClient.layerTest`. */
export interface Script extends ClientScript {
  /** `ReadReplica`'s own script; without it `ReadReplica` is the `SqlClient` itself */
  readonly replica?: ClientScript | undefined
  /** what `DbHealth` reports (default `healthy`) */
  readonly health?: DbHealth.HealthStatus | undefined
}

/**
 * Errors the real client can only meet while acquiring a connection: `pool.connect` rejects with
 * them (see `resilience/acquire.ts`). `ConnectionLost` is not among them: it also ends statements.
 */
const acquisitionTags: ReadonlySet<string> = new Set([
  "PoolExhausted",
  "SslNotSupportedByServer",
  "CertificateUntrusted",
  "CertificateExpired",
  "CertificateRevoked",
  "CertificateHostMismatch",
  "TlsProtocolRejected",
  "AuthenticationFailed",
  "AuthenticationMethodRefused",
  "ChannelBindingFailed",
  "ConnectionRejected",
  "DatabaseNotFound",
  "TooManyConnections",
  "ConnectionRefused",
  "ConnectTimeout",
  "TlsMaterialInvalid",
  "InsecureServer"
])

const collapse = (text: string): string => text.replace(/\s+/g, " ").trim()

const matches = (when: Match, sql: string, params: ReadonlyArray<unknown>): boolean =>
  typeof when === "string"
    ? collapse(when) === collapse(sql)
    : when instanceof RegExp
    ? new RegExp(when.source, when.flags.replace(/[gy]/g, "")).test(sql) // no `lastIndex` carried between statements
    : when(sql, params)

const answerFor = (answers: ReadonlyArray<Answer>, sql: string, params: ReadonlyArray<unknown>): Answer | undefined =>
  answers.find((candidate) => matches(candidate.when, sql, params))

const isAcquisitionFailure = (cause: unknown): boolean =>
  Predicate.hasProperty(cause, "_tag") && typeof cause._tag === "string" && acquisitionTags.has(cause._tag)

const beginTransaction = "BEGIN"

const record = (statements: Ref.Ref<ReadonlyArray<RecordedStatement>>, sql: string, params: ReadonlyArray<unknown>) =>
  Ref.update(statements, (recorded) => [...recorded, { sql, params: [...params] }])

/** The fake connection: records, then answers from the script. */
const makeConnection = (
  answers: ReadonlyArray<Answer>,
  statements: Ref.Ref<ReadonlyArray<RecordedStatement>>
): Connection => {
  const run = (sql: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
    Effect.zipRight(
      record(statements, sql, params),
      Effect.suspend(() => {
        const answer = answerFor(answers, sql, params)
        if (answer === undefined) return Effect.succeed([])
        if ("rows" in answer) return Effect.succeed(answer.rows)
        const message = isAcquisitionFailure(answer.fail) ? "Failed to acquire connection" : "Failed to execute statement"
        return Effect.fail(new SqlError({ cause: answer.fail, message }))
      })
    )
  const execute = (
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
    Effect.map(run(sql, params), (rows) => (transformRows === undefined ? rows : transformRows(rows)))
  return {
    execute,
    executeUnprepared: execute,
    executeRaw: run,
    executeValues: (sql, params) => Effect.map(run(sql, params), (rows) => rows.map((row) => Object.values(row))),
    executeStream: (sql, params, transformRows) =>
      Stream.flatMap(Stream.fromEffect(execute(sql, params, transformRows)), Stream.fromIterable)
  }
}

/**
 * The connection of a transaction (and of `reserve`). An acquisition failure scripted for `BEGIN`
 * fails here, as the real pool does before anything is sent: `BEGIN` is recorded (the code asked
 * for it) and the transaction ends there, without a `ROLLBACK` (there is no connection to roll back).
 */
const transactionAcquirer = (
  answers: ReadonlyArray<Answer>,
  statements: Ref.Ref<ReadonlyArray<RecordedStatement>>,
  connection: Connection
): Connection.Acquirer =>
  Effect.suspend(() => {
    const answer = answerFor(answers, beginTransaction, [])
    return answer !== undefined && "fail" in answer && isAcquisitionFailure(answer.fail)
      ? Effect.zipRight(
        record(statements, beginTransaction, []),
        Effect.fail(new SqlError({ cause: answer.fail, message: "Failed to acquire connection for transaction" }))
      )
      : Effect.succeed(connection)
  })

/** A scripted `SqlClient` compiling as `PgClient` does (no name transforms, as `SecureSqlClient.layer`). */
export const makeClient = (
  script: ClientScript,
  role: "primary" | "read-replica"
): Effect.Effect<SqlClient.SqlClient, never, Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const statements = script.statements ?? (yield* Ref.make<ReadonlyArray<RecordedStatement>>([]))
    const answers = script.answers ?? []
    const connection = makeConnection(answers, statements)
    return yield* SqlClient.make({
      acquirer: Effect.succeed(connection),
      transactionAcquirer: transactionAcquirer(answers, statements, connection),
      compiler: makeCompiler(),
      beginTransaction,
      spanAttributes: [["db.system.name", "postgresql"], ["takumi.db.role", role]]
    })
  })

/** `SecureSqlClient.layerTest`. */
export const layer = (
  script: Script
): Layer.Layer<SqlClient.SqlClient | ReadReplica.ReadReplica | SecurityAlerts.SecurityAlerts | DbHealth.DbHealth> => {
  const primary = Layer.effect(SqlClient.SqlClient, makeClient(script, "primary"))
  const replica: Layer.Layer<ReadReplica.ReadReplica, never, SqlClient.SqlClient | Reactivity.Reactivity> =
    script.replica === undefined
      ? ReadReplica.layerFromPrimary
      : Layer.effect(ReadReplica.ReadReplica, makeClient(script.replica, "read-replica"))
  return Layer.mergeAll(
    Layer.provideMerge(replica, primary),
    SecurityAlerts.layer,
    DbHealth.layerTest(script.health)
  ).pipe(Layer.provide(Reactivity.layer))
}
