/**
 * The statements of SecureSqlClient's `SqlClient`: `@effect/sql`'s own, executed with less around
 * them when nobody can tell the difference.
 *
 * A statement is built by `@effect/sql`'s constructor as usual (the same segments, compiler,
 * compile cache, fragments and helpers) and wrapped here. Running it goes straight to pg
 * (./run.ts) when all of these hold:
 *
 * - the fiber's tracer is Effect's built-in one, whose spans nobody receives (with a tracer
 *   installed — OpenTelemetry, a test's recording tracer — `@effect/sql`'s path runs, with its
 *   `sql.execute` span and attributes);
 * - no `Statement.withTransformer` / `setTransformer` is in effect (a transformer may rewrite the
 *   statement or reroute it);
 * - outside a transaction, or inside one whose connection is a client of this pool.
 *
 * Otherwise, and always for `stream`, the wrapped statement runs as `@effect/sql` runs it. What the
 * direct path leaves out is what made `@effect/sql`'s statement several times the cost of the query
 * itself in `bench/db-throughput.bench.ts` (BENCHMARKS.md): a `Scope` opened and closed per
 * statement, a span built for nobody, a closure chain per checkout.
 *
 * Rows are not renamed: SecureSqlClient builds its client without `transformResultNames`, so
 * `@effect/sql`'s statements have no row transform either (`wrapClient` checks it).
 *
 * @internal
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import type * as Fiber from "effect/Fiber"
import { identity } from "effect/Function"
import type * as Stream from "effect/Stream"
import * as Pg from "pg"
import type { ConnectTarget } from "../classify.js"
import type { SecurePool } from "../pool.js"
import * as Run from "./run.js"

/** Effect's default tracer: spans made with it reach no exporter. */
const builtInTracer = Effect.runSync(Effect.tracer)

const noTransaction = () => undefined

/** The pool a client's direct statements run on. */
export class Executor {
  constructor(readonly pool: SecurePool, readonly target: ConnectTarget) {}

  /**
   * The direct run of `statement` in this fiber, or `undefined` where `@effect/sql`'s path must run
   * (see the module comment).
   */
  run(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    statement: Statement.Statement<unknown>,
    mode: Run.Mode,
    withoutTransform: boolean
  ): Effect.Effect<unknown, SqlError> | undefined {
    if (fiber.currentTracer !== builtInTracer || fiber.getFiberRef(Statement.currentTransformer)._tag === "Some") {
      return undefined
    }
    const transaction = Context.getOrElse(fiber.currentContext, SqlClient.TransactionConnection, noTransaction)
    if (transaction === undefined) {
      const [sql, params] = statement.compile(withoutTransform)
      return Run.onPool(this.pool, this.target, sql, params, mode)
    }
    const client = (transaction[0] as { readonly pg?: unknown }).pg
    if (!(client instanceof Pg.Client) || !this.pool.owns(client)) return undefined
    const [sql, params] = statement.compile(withoutTransform)
    return Run.onClient(this.pool, client as Pg.PoolClient, this.target, sql, params, mode)
  }
}

/** `@effect/sql`'s statement `upstream`, run directly where it can be (see the module comment). */
class PgStatement<A> extends Effectable.Class<ReadonlyArray<A>, SqlError> implements Statement.Statement<A> {
  constructor(readonly upstream: Statement.Statement<A>, readonly executor: Executor) {
    super()
  }

  get [Statement.FragmentId]() {
    return identity
  }

  get segments(): ReadonlyArray<Statement.Segment> {
    return this.upstream.segments
  }

  #direct<X>(fallback: Effect.Effect<X, SqlError>, mode: Run.Mode, withoutTransform: boolean): Effect.Effect<X, SqlError> {
    return Effect.withFiberRuntime((fiber) =>
      (this.executor.run(fiber, this.upstream, mode, withoutTransform) as Effect.Effect<X, SqlError> | undefined) ?? fallback
    )
  }

  commit(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.#direct(this.upstream, "rows", false)
  }

  get withoutTransform(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.#direct(this.upstream.withoutTransform, "rows", true)
  }

  get raw(): Effect.Effect<unknown, SqlError> {
    return this.#direct(this.upstream.raw, "raw", true)
  }

  get values(): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.#direct(this.upstream.values, "values", false)
  }

  get unprepared(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    // `@effect/sql-pg` runs an unprepared statement as any other
    return this.#direct(this.upstream.unprepared, "rows", false)
  }

  get stream(): Stream.Stream<A, SqlError> {
    return this.upstream.stream
  }

  compile(withoutTransform?: boolean | undefined): readonly [sql: string, params: ReadonlyArray<unknown>] {
    return this.upstream.compile(withoutTransform)
  }

  toJSON(): unknown {
    return (this.upstream as unknown as { toJSON(): unknown }).toJSON()
  }
}

/**
 * `client` with the statements of this module: its template tag and `unsafe` wrap
 * `@effect/sql`'s statements; everything else (helpers, `withTransaction`, `reserve`, `listen`,
 * `json`) is `client`'s own. `safe` is the new client, as `@effect/sql` makes it.
 */
export const wrapClient = (client: PgClient.PgClient, executor: Executor): PgClient.PgClient => {
  if (client.config.transformResultNames !== undefined) return client
  function sql(strings: unknown, ...args: Array<unknown>): unknown {
    return Array.isArray(strings) && "raw" in strings
      ? new PgStatement(client(strings as unknown as TemplateStringsArray, ...args), executor)
      : client(strings as string)
  }
  const wrapped = Object.assign(sql, client, {
    unsafe: <A extends object>(text: string, params?: ReadonlyArray<unknown>) =>
      new PgStatement(client.unsafe<A>(text, params), executor)
  }) as unknown as PgClient.PgClient
  Object.assign(wrapped, { safe: wrapped })
  return wrapped
}

/**
 * A `PgClient.layerFromPool` context with its client replaced by {@link wrapClient}'s, under both
 * tags (`PgClient` and `SqlClient` are one object, as `@effect/sql-pg` provides them).
 */
export const directly = (pool: SecurePool, target: ConnectTarget) =>
<A extends PgClient.PgClient | SqlClient.SqlClient>(
  context: Context.Context<A | PgClient.PgClient>
): Context.Context<A | PgClient.PgClient> => {
  const client = wrapClient(Context.get(context, PgClient.PgClient), new Executor(pool, target))
  return context.pipe(Context.add(PgClient.PgClient, client), Context.add(SqlClient.SqlClient, client))
}
