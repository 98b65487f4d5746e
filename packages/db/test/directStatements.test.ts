/**
 * The direct statement path (internal/statement/): when it runs, and that what it sends is what
 * `@effect/sql-pg`'s compiler would have sent. What users observe on a real server (rows, errors,
 * transactions, streams, interruption, spans) is SqlBehaviour.test.ts, on both clients.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Statement from "@effect/sql/Statement"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tracer from "effect/Tracer"
import fc from "fast-check"
import * as Pg from "pg"
import type { SecurePool } from "../src/internal/pool.js"
import * as Statements from "../src/internal/statement/statement.js"

const target = { host: "127.0.0.1", port: 1, user: "app", database: "app", connectTimeoutMillis: 100, poolMax: 1 }

/** The wrapped client over a pool that never connects (nothing here runs a statement). */
const clients = Effect.gen(function*() {
  const pool = new Pg.Pool({ host: target.host, port: target.port })
  const upstream = Context.get(yield* Layer.build(PgClient.layerFromPool({ acquire: Effect.succeed(pool) })), PgClient.PgClient)
  // the pool's `owns` is only asked inside a transaction, which nothing here opens
  const executor = new Statements.PoolExecutor(pool as unknown as SecurePool, target)
  return { upstream, sql: Statements.wrapClient(upstream, executor), executor }
})

/** Whether `statement` would run directly in the current fiber. */
const runsDirectly = (executor: Statements.Executor, statement: Statement.Statement<unknown>) =>
  Effect.withFiberRuntime((fiber) =>
    Effect.succeed(executor.run(fiber, statement as unknown as Statements.Compilable, "rows", false) !== undefined)
  )

/** Effect's built-in tracer, and another one (any installed tracer, e.g. OpenTelemetry's) */
const builtIn = Effect.runSync(Effect.tracer)
const installed = Tracer.make({ span: (...args) => builtIn.span(...args), context: (f) => f() })

describe("direct statements", () => {
  it.scoped("a template of plain parameters is sent as @effect/sql-pg's compiler makes it", () =>
    Effect.gen(function*() {
      const { sql } = yield* clients
      const literal = fc.string({ maxLength: 12 }).filter((s) => !s.includes("$"))
      const parameter = fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.constant(undefined), fc.date(), fc.array(fc.integer()), fc.boolean())
      fc.assert(
        fc.property(fc.array(fc.tuple(literal, parameter), { maxLength: 6 }), literal, (parts, last) => {
          const strings = Object.assign([...parts.map(([s]) => s), last], { raw: [...parts.map(([s]) => s), last] })
          const statement = sql(strings as unknown as TemplateStringsArray, ...parts.map(([, p]) => p)) as unknown as {
            compiled(withoutTransform: boolean): readonly [string, ReadonlyArray<unknown>]
            compile(): readonly [string, ReadonlyArray<unknown>]
            direct: unknown
          }
          assert.isDefined(statement.direct)
          assert.deepStrictEqual(statement.compiled(false), statement.compile())
        })
      )
    }))

  it.scoped("fragments, helpers and identifiers go through the compiler, with the same result", () =>
    Effect.gen(function*() {
      const { sql } = yield* clients
      const cases = [
        sql`SELECT * FROM t WHERE id IN ${sql.in([1, 2, 3])}`,
        sql`INSERT INTO t ${sql.insert({ a: 1, b: "x" })}`,
        sql`SELECT ${sql("col")} FROM t WHERE ${sql.and(["a = 1", sql`b = ${2}`])}`,
        sql`SELECT * FROM (${sql`SELECT ${1} AS one`}) s WHERE x = ${"y"}`,
        sql`SELECT ${sql.json({ a: 1 })}::jsonb`,
        // looks like a helper, is a parameter for @effect/sql (its check is by class): the compiler decides
        sql`SELECT ${{ _tag: "Identifier", value: "x" }}`
      ]
      for (const statement of cases) {
        const s = statement as unknown as { compiled(w: boolean): unknown; compile(): unknown; direct: unknown }
        assert.isUndefined(s.direct)
        assert.deepStrictEqual(s.compiled(false), s.compile())
      }
      const unsafe = sql.unsafe("SELECT $1::int", [7]) as unknown as { compiled(w: boolean): unknown; compile(): unknown }
      assert.deepStrictEqual(unsafe.compiled(false), unsafe.compile())
    }))

  it.scoped("runs directly with the built-in tracer only, and never under a transformer", () =>
    Effect.gen(function*() {
      const { sql, executor } = yield* clients
      const statement = sql`SELECT ${1}::int`
      assert.strictEqual(yield* Effect.tracer, builtIn)
      assert.isTrue(yield* runsDirectly(executor, statement))
      assert.isFalse(yield* runsDirectly(executor, statement).pipe(Effect.withTracer(installed)))
      assert.isFalse(
        yield* runsDirectly(executor, statement).pipe(Statement.withTransformer((self) => Effect.succeed(self)))
      )
      assert.isTrue(
        yield* runsDirectly(executor, statement).pipe(
          Statement.withTransformerDisabled,
          Statement.withTransformer((self) => Effect.succeed(self))
        )
      )
    }))

  it.scoped("is the same client under both tags, with safe, helpers and withTransaction of its own", () =>
    Effect.gen(function*() {
      const { sql, upstream } = yield* clients
      assert.strictEqual(sql.safe, sql)
      assert.strictEqual(sql.withTransaction, upstream.withTransaction)
      assert.strictEqual(sql.listen, upstream.listen)
      assert.strictEqual(sql.onDialectOrElse({ pg: () => "pg", orElse: () => "other" }), "pg")
      assert.isTrue(Statement.isFragment(sql`SELECT 1`))
    }))
})
