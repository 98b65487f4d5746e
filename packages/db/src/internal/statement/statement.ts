/**
 * The statements of SecureSqlClient's `SqlClient`: `@effect/sql`'s own, executed with less around
 * them when nobody can tell the difference.
 *
 * A statement is `@effect/sql`'s own (the same segments, compiler, fragments and helpers), built
 * on first use: a template whose arguments are all plain parameters needs no compiler — its text is
 * the literal parts joined by `$1`, `$2`, … (cached per call site) and its parameters are the
 * arguments, which is what `@effect/sql-pg`'s compiler makes of it. Running it goes straight to pg
 * (./run.ts) when all of these hold:
 *
 * - the fiber's tracer is Effect's built-in one, whose spans nobody receives (with a tracer
 *   installed — OpenTelemetry, a test's recording tracer — `@effect/sql`'s path runs, with its
 *   `sql.execute` span and attributes);
 * - no `Statement.withTransformer` / `setTransformer` is in effect (a transformer may rewrite the
 *   statement or reroute it);
 * - outside a transaction, or inside one whose connection is a client of this pool.
 *
 * Those are the rules of `PoolExecutor`, the primary's; `ReadReplica`'s client wraps its statements
 * the same way with an executor of its own (internal/resilience/replica.ts), outside transactions.
 *
 * Otherwise, and always for `stream`, the wrapped statement runs as `@effect/sql` runs it. What the
 * direct path leaves out is most of what `@effect/sql`'s statement cost per query in
 * `bench/db-throughput.bench.ts` (BENCHMARKS.md): the segments and the compiler for a plain
 * template, a `Scope` opened and closed per statement, a span built for nobody, a closure chain and
 * an `error` listener per checkout.
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

/** A statement's text and parameters, as `compile` gives them. */
type Compiled = readonly [sql: string, params: ReadonlyArray<unknown>]

/** A statement as an executor sees it: the text and parameters to send. */
export interface Compilable {
  compiled(withoutTransform: boolean): Compiled
}

/** Where the statements of a wrapped client (`wrapClient`) run when they can run directly. */
export interface Executor {
  /**
   * The direct run of `statement` in this fiber, or `undefined` where `@effect/sql`'s path must run
   * (see the module comment).
   */
  run(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    statement: Compilable,
    mode: Run.Mode,
    withoutTransform: boolean
  ): Effect.Effect<unknown, SqlError> | undefined
}

/** Whether this fiber's statements must take `@effect/sql`'s path: a tracer is installed or a transformer set. */
export const needsUpstream = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  fiber.currentTracer !== builtInTracer || fiber.getFiberRef(Statement.currentTransformer)._tag === "Some"

/** The connection of the transaction this fiber is in, if any. */
export const transactionOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Context.getOrElse(fiber.currentContext, SqlClient.TransactionConnection, noTransaction)

/** The executor of a pool's own client: outside a transaction or inside one of this pool's. */
export class PoolExecutor implements Executor {
  constructor(readonly pool: SecurePool, readonly target: ConnectTarget) {}

  run(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    statement: Compilable,
    mode: Run.Mode,
    withoutTransform: boolean
  ): Effect.Effect<unknown, SqlError> | undefined {
    if (needsUpstream(fiber)) return undefined
    const transaction = transactionOf(fiber)
    if (transaction === undefined) {
      const [sql, params] = statement.compiled(withoutTransform)
      return Run.onPool(this.pool, this.target, sql, params, mode)
    }
    const client = (transaction[0] as { readonly pg?: unknown }).pg
    if (!(client instanceof Pg.Client) || !this.pool.owns(client)) return undefined
    const [sql, params] = statement.compiled(withoutTransform)
    return Run.onClient(this.pool, client as Pg.PoolClient, this.target, sql, params, mode)
  }
}

/** What `@effect/sql`'s template tag takes for something other than a parameter (its `isHelper`). */
const helperTags: ReadonlySet<unknown> = new Set([
  "ArrayHelper",
  "RecordInsertHelper",
  "RecordUpdateHelper",
  "RecordUpdateHelperSingle",
  "Identifier"
])

const isPlainParameter = (arg: unknown): boolean =>
  typeof arg !== "object" || arg === null || !(Statement.isFragment(arg) || helperTags.has((arg as { readonly _tag?: unknown })._tag))

/** The text of a template whose arguments are all parameters, per call site (`strings` is one object per site). */
const templateTexts = new WeakMap<TemplateStringsArray, string>()

const templateText = (strings: TemplateStringsArray): string => {
  let text = templateTexts.get(strings)
  if (text === undefined) {
    text = strings[0] ?? ""
    for (let i = 1; i < strings.length; i++) text += `$${i}${strings[i]}`
    templateTexts.set(strings, text)
  }
  return text
}

/**
 * What `@effect/sql-pg`'s compiler makes of a template whose arguments are all plain parameters
 * — the literal parts joined by `$1`, `$2`, … and the arguments as they are — or `undefined` when
 * one is a fragment or a helper (then its compiler runs). Any object that merely looks like a helper
 * goes to the compiler too, which tells them apart exactly.
 */
const compiledTemplate = (strings: TemplateStringsArray, args: ReadonlyArray<unknown>): Compiled | undefined => {
  for (let i = 0; i < args.length; i++) if (!isPlainParameter(args[i])) return undefined
  return [templateText(strings), args]
}

/** How a statement is run: what is sent and returned, and `@effect/sql`'s own effect for it. */
interface RunKind {
  readonly mode: Run.Mode
  readonly withoutTransform: boolean
  readonly upstream: (statement: Statement.Statement<unknown>) => Effect.Effect<unknown, SqlError>
}

/** The statement's accessors that run it (`commit` is `yield*`), and how each runs. */
const runs = {
  commit: { mode: "rows", withoutTransform: false, upstream: (s) => s },
  withoutTransform: { mode: "rows", withoutTransform: true, upstream: (s) => s.withoutTransform },
  raw: { mode: "raw", withoutTransform: true, upstream: (s) => s.raw },
  values: { mode: "values", withoutTransform: false, upstream: (s) => s.values },
  // `@effect/sql-pg` runs an unprepared statement like every other
  unprepared: { mode: "rows", withoutTransform: false, upstream: (s) => s.unprepared }
} satisfies Record<string, RunKind>

/**
 * A statement of the client: `@effect/sql`'s own (`upstream`, built on first use from the template
 * and its arguments, or from `unsafe`'s text and parameters) run directly where it can be (see the
 * module comment). `direct` is its compiled form when known without the compiler (see
 * `compiledTemplate`).
 */
class PgStatement<A> extends Effectable.Class<ReadonlyArray<A>, SqlError> implements Statement.Statement<A>, Compilable {
  #upstream: Statement.Statement<A> | undefined = undefined

  constructor(
    readonly client: SqlClient.SqlClient,
    /** the template's literal parts, or `unsafe`'s text */
    readonly source: TemplateStringsArray | string,
    /** the template's arguments, or `unsafe`'s parameters */
    readonly args: ReadonlyArray<unknown> | undefined,
    readonly direct: Compiled | undefined,
    readonly executor: Executor
  ) {
    super()
  }

  get upstream(): Statement.Statement<A> {
    if (this.#upstream === undefined) {
      this.#upstream = typeof this.source === "string"
        ? this.client.unsafe<A & object>(this.source, this.args)
        : this.client<A & object>(this.source, ...(this.args ?? []))
    }
    return this.#upstream
  }

  /** The text and parameters to send; the same as `compile` returns. */
  compiled(withoutTransform: boolean): Compiled {
    return this.direct ?? this.upstream.compile(withoutTransform)
  }

  get [Statement.FragmentId]() {
    return identity
  }

  get segments(): ReadonlyArray<Statement.Segment> {
    return this.upstream.segments
  }

  #direct<X>(run: RunKind): Effect.Effect<X, SqlError> {
    return Effect.withFiberRuntime((fiber) =>
      (this.executor.run(fiber, this, run.mode, run.withoutTransform) ?? run.upstream(this.upstream)) as Effect.Effect<X, SqlError>
    )
  }

  commit(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.#direct(runs.commit)
  }

  get withoutTransform(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.#direct(runs.withoutTransform)
  }

  get raw(): Effect.Effect<unknown, SqlError> {
    return this.#direct(runs.raw)
  }

  get values(): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> {
    return this.#direct(runs.values)
  }

  get unprepared(): Effect.Effect<ReadonlyArray<A>, SqlError> {
    return this.#direct(runs.unprepared)
  }

  get stream(): Stream.Stream<A, SqlError> {
    return this.upstream.stream
  }

  compile(withoutTransform?: boolean | undefined): Compiled {
    return this.upstream.compile(withoutTransform)
  }

  toJSON(): unknown {
    return (this.upstream as unknown as { toJSON(): unknown }).toJSON()
  }
}

/**
 * `client` with the statements of this module: its template tag and `unsafe` make
 * {@link PgStatement}s over `@effect/sql`'s statements, run by `executor` where they can be;
 * everything else (helpers, `withTransaction`, `reserve`, and a `PgClient`'s `listen` and `json`)
 * is `client`'s own. `safe` is the new client, as `@effect/sql` makes it. The client must not
 * rename result columns (`transformResultNames`): direct runs return pg's rows as they are.
 */
export const wrapClient = <C extends SqlClient.SqlClient>(client: C, executor: Executor): C => {
  function sql(strings: unknown, ...args: Array<unknown>): unknown {
    if (!(Array.isArray(strings) && "raw" in strings)) return client(strings as string)
    const template = strings as unknown as TemplateStringsArray
    return new PgStatement(client, template, args, compiledTemplate(template, args), executor)
  }
  const wrapped = Object.assign(sql, client, {
    unsafe: (text: string, params?: ReadonlyArray<unknown>) =>
      new PgStatement(client, text, params, [text, params ?? []], executor)
  }) as unknown as C
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
  const upstream = Context.get(context, PgClient.PgClient)
  if (upstream.config.transformResultNames !== undefined) return context
  const client = wrapClient(upstream, new PoolExecutor(pool, target))
  return context.pipe(Context.add(PgClient.PgClient, client), Context.add(SqlClient.SqlClient, client))
}
