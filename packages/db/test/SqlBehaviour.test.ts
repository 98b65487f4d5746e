/**
 * SecureSqlClient behaves as @effect/sql / @effect/sql-pg do where users can tell (issue #13).
 *
 * Every case runs twice against one real TLS PostgreSQL 15 (started by @takumi/testing on
 * loopback): on a bare `@effect/sql-pg` client over a plain `pg.Pool` — the reference, whose
 * outcome the case asserts — and on `SecureSqlClient.layer`, which must give the same outcome.
 * The cases are ported from upstream's own tests (`packages/sql-pg/test/Client.test.ts`) and from
 * what `@effect/sql`'s `Statement` and `@effect/sql-pg`'s `PgClient` sources promise (rows, values,
 * raw results, streams through a cursor, transactions with savepoints, cancellation on interrupt,
 * the `sql.execute` span). Only the public API is used, so the file holds before and after
 * SecureSqlClient gets its own `Statement` execution.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as SqlResolver from "@effect/sql/SqlResolver"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Statement from "@effect/sql/Statement"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Pg from "pg"
import { TestDatabase } from "@takumi/testing"
import { ConnectionLost, PoolExhausted, StatementTimeout } from "../src/index.js"
import { APP_PASSWORD, APPLICATION_NAME, type Implementation, implementations, makeRecordingTracer } from "./sqlBehaviour.js"

const database = TestDatabase.layer({ roles: [{ name: "app", password: APP_PASSWORD }], database: "app" })

type Services = PgClient.PgClient | SqlClient.SqlClient | TestDatabase.TestDatabase | Scope.Scope

/** One behaviour: a sentence and the effect that checks it on the client in context. */
interface Case {
  readonly name: string
  readonly run: (impl: Implementation) => Effect.Effect<void, unknown, Services>
}

/** A table of its own for a case (dropped first: both clients run the case in turn). */
const freshTable = (name: string, columns: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP TABLE IF EXISTS ${sql(name)}`
    yield* sql`CREATE TABLE ${sql(name)} (${sql.literal(columns)})`
  })

/** The error a statement fails with. */
const failure = <A, R>(effect: Effect.Effect<A, SqlError, R>) => Effect.flip(effect)

/** The SQLSTATE of a `SqlError` whose cause is pg's `DatabaseError` (undefined otherwise). */
const sqlState = (error: SqlError): string | undefined =>
  error.cause instanceof Pg.DatabaseError ? error.cause.code : undefined

const statements: ReadonlyArray<Case> = [
  {
    name: "binds parameters of the common types and returns rows as objects",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const when = new Date("2026-12-02T10:20:30.456Z")
        const rows = yield* sql<Record<string, unknown>>`SELECT
          ${42}::int AS i, ${"héllo"}::text AS t, ${null}::text AS n, ${true}::bool AS b,
          ${when}::timestamptz AS d, ${9007199254740993n}::int8 AS big, ${[1, 2, 3]}::int[] AS arr,
          ${sql.json({ a: [1, "x"], nested: { b: null } })}::jsonb AS j, ${{ testValue: 123 }}::jsonb AS o`
        assert.deepStrictEqual(rows, [{
          i: 42,
          t: "héllo",
          n: null,
          b: true,
          d: when,
          // int8 comes back as text: pg does not turn it into a number that could lose digits
          big: "9007199254740993",
          arr: [1, 2, 3],
          j: { a: [1, "x"], nested: { b: null } },
          o: { testValue: 123 }
        }])
      })
  },
  {
    name: "binds a Buffer as bytea, undefined as NULL, nested and Date arrays",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const when = new Date("2026-12-02T00:00:00.000Z")
        const rows = yield* sql<Record<string, unknown>>`SELECT ${Buffer.from([0, 1, 254])}::bytea AS bin,
          ${undefined}::int AS u, ${[[1, 2], [3, 4]]}::int[][] AS grid, ${[when]}::timestamptz[] AS whens, ${["a,b", "c\"d"]}::text[] AS texts`
        assert.deepStrictEqual(rows, [{
          bin: Buffer.from([0, 1, 254]),
          u: null,
          grid: [[1, 2], [3, 4]],
          whens: [when],
          texts: ["a,b", "c\"d"]
        }])
      })
  },
  {
    name: "runs many statements at once on a small pool, each with its own result",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ids = Array.from({ length: 40 }, (_, i) => i)
        const results = yield* Effect.forEach(ids, (i) => sql<{ n: number }>`SELECT ${i}::int AS n, pg_sleep(0.001)`, { concurrency: "unbounded" })
        assert.deepStrictEqual(results.map((rows) => rows[0]?.n), ids)
      })
  },
  {
    name: "parses result columns with pg's default type parsers",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<Record<string, unknown>>`SELECT
          '2026-12-02'::date AS day, '2026-12-02 10:20:30'::timestamp AS local, '1.50'::numeric AS num,
          '\\x0102ff'::bytea AS bin, '00000000-0000-0000-0000-00000000002a'::uuid AS id, '1 day 02:00'::interval AS span,
          '{"k":[1]}'::json AS doc, 2.5::float8 AS f, 'ab'::char(3) AS padded, ARRAY['a', NULL]::text[] AS texts`
        assert.deepStrictEqual({ ...row, span: JSON.stringify(row?.["span"]) }, {
          // date and timestamp without time zone: local midnight / local time of the Node process
          day: new Date(2026, 11, 2),
          local: new Date(2026, 11, 2, 10, 20, 30),
          // numeric as text: no float rounding
          num: "1.50",
          bin: Buffer.from([1, 2, 255]),
          id: "00000000-0000-0000-0000-00000000002a",
          span: JSON.stringify({ days: 1, hours: 2 }),
          doc: { k: [1] },
          f: 2.5,
          padded: "ab ",
          texts: ["a", null]
        })
      })
  },
  {
    name: "runs sql.unsafe with its own parameters",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(yield* sql.unsafe("SELECT $1::int + $2::int AS n", [2, 3]), [{ n: 5 }])
        assert.deepStrictEqual(sql.unsafe("SELECT $1::int AS n", [7]).compile(), ["SELECT $1::int AS n", [7]])
      })
  },
  {
    name: "escapes identifiers given as sql(\"name\")",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(sql`SELECT ${sql("weird \"col\"")} FROM ${sql("s.t")}`.compile(), [
          `SELECT "weird ""col""" FROM "s"."t"`,
          []
        ])
        assert.deepStrictEqual(yield* sql`SELECT 1 AS ${sql("Mixed Case")}`, [{ "Mixed Case": 1 }])
      })
  },
  {
    name: "returns one array of rows per statement of a multi-statement text",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(yield* sql.unsafe("SELECT 1 AS a; SELECT 2 AS b"), [[{ a: 1 }], [{ b: 2 }]])
        yield* sql`DROP TABLE IF EXISTS behaviour_multi`
        const result: unknown = yield* sql`
          CREATE TABLE behaviour_multi (id TEXT PRIMARY KEY, name TEXT);
          INSERT INTO behaviour_multi (id, name) VALUES ('id1', 'test1') RETURNING *;
          INSERT INTO behaviour_multi (id, name) VALUES ('id2', 'test2') RETURNING *;`
        assert.deepStrictEqual(result, [[], [{ id: "id1", name: "test1" }], [{ id: "id2", name: "test2" }]])
      })
  },
  {
    name: ".values returns rows as arrays in column order",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(yield* sql`SELECT ${1}::int AS a, 'x' AS b UNION ALL SELECT 2, 'y'`.values, [[1, "x"], [2, "y"]])
      })
  },
  {
    name: ".raw returns pg's Result (command, rowCount, fields, rows)",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const raw = yield* sql`SELECT n FROM generate_series(1, ${3}::int) n`.raw
        assert.instanceOf(raw, Pg.Result)
        const result = raw as Pg.QueryResult<{ n: number }>
        assert.strictEqual(result.command, "SELECT")
        assert.strictEqual(result.rowCount, 3)
        assert.deepStrictEqual(result.fields.map((f) => f.name), ["n"])
        assert.deepStrictEqual(result.rows, [{ n: 1 }, { n: 2 }, { n: 3 }])
        const many = yield* sql.unsafe("SELECT 1 AS a; SELECT 2 AS b").raw
        assert.isTrue(Array.isArray(many))
        assert.deepStrictEqual((many as Array<Pg.QueryResult>).map((r) => [r.command, r.rows]), [["SELECT", [{ a: 1 }]], ["SELECT", [{ b: 2 }]]])
      })
  },
  {
    name: ".withoutTransform, .unprepared and withoutTransforms() return the same rows",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const statement = sql`SELECT ${5}::int AS some_value`
        assert.deepStrictEqual(yield* statement.withoutTransform, [{ some_value: 5 }])
        assert.deepStrictEqual(yield* statement.unprepared, [{ some_value: 5 }])
        const plain = sql.withoutTransforms()
        assert.deepStrictEqual(yield* plain`SELECT ${6}::int AS some_value`, [{ some_value: 6 }])
      })
  },
  {
    name: ".compile() and toJSON() give the text with $n placeholders and the parameters",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const statement = sql`SELECT * FROM people WHERE id = ${1} AND name = ${"Tim"}`
        const expected = ["SELECT * FROM people WHERE id = $1 AND name = $2", [1, "Tim"]] as const
        assert.deepStrictEqual(statement.compile(), expected)
        assert.deepStrictEqual(statement.compile(true), expected)
        const json = JSON.parse(JSON.stringify(statement)) as Record<string, unknown>
        assert.strictEqual(json["_id"], "@effect/sql/Statement")
        assert.strictEqual(json["sql"], expected[0])
        assert.deepStrictEqual(json["params"], expected[1])
        assert.isTrue(Array.isArray(json["segments"]))
      })
  }
]

const fragments: ReadonlyArray<Case> = [
  {
    name: "sql.in expands a list (and an empty one to 1=0)",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(sql`SELECT * FROM ${sql("people")} WHERE id IN ${sql.in([1, 2, "string"])}`.compile(), [
          `SELECT * FROM "people" WHERE id IN ($1,$2,$3)`,
          [1, 2, "string"]
        ])
        assert.deepStrictEqual(sql`SELECT * FROM ${sql("people")} WHERE ${sql.in("id", [])}`.compile(), [
          `SELECT * FROM "people" WHERE 1=0`,
          []
        ])
        const rows = yield* sql`SELECT n FROM generate_series(1, 5) n WHERE ${sql.in("n", [2, 4])} ORDER BY n`
        assert.deepStrictEqual(rows, [{ n: 2 }, { n: 4 }])
      })
  },
  {
    name: "sql.insert inserts one record or many, with .returning",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        yield* freshTable("behaviour_people", "id serial PRIMARY KEY, name text NOT NULL, age int, json jsonb")
        assert.deepStrictEqual(sql`INSERT INTO people ${sql.insert({ name: "Tim", age: 10 })}`.compile(), [
          `INSERT INTO people ("name","age") VALUES ($1,$2)`,
          ["Tim", 10]
        ])
        const one = yield* sql`INSERT INTO behaviour_people ${sql.insert({ name: "Tim", age: 10, json: sql.json({ a: 1 }) }).returning("*")}`
        assert.deepStrictEqual(one, [{ id: 1, name: "Tim", age: 10, json: { a: 1 } }])
        const many = yield* sql`INSERT INTO behaviour_people ${
          sql.insert([{ name: "Ann", age: 20 }, { name: "Bob", age: 30 }]).returning(sql`id, name`)
        }`
        assert.deepStrictEqual(many, [{ id: 2, name: "Ann" }, { id: 3, name: "Bob" }])
        assert.deepStrictEqual(yield* sql`SELECT count(*)::int AS c FROM behaviour_people`, [{ c: 3 }])
      })
  },
  {
    name: "sql.update sets the record's columns (minus the omitted ones), with .returning",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(sql`UPDATE people SET ${sql.update({ name: "Tim", age: 10 }, ["age"])}`.compile(), [
          `UPDATE people SET "name" = $1`,
          ["Tim"]
        ])
        yield* freshTable("behaviour_update", "id int PRIMARY KEY, name text, age int")
        yield* sql`INSERT INTO behaviour_update ${sql.insert([{ id: 1, name: "a", age: 1 }, { id: 2, name: "b", age: 2 }])}`
        assert.deepStrictEqual(sql`UPDATE people SET ${sql.update({ name: "Tim" }).returning("*")}`.compile(), [
          `UPDATE people SET "name" = $1 RETURNING *`,
          ["Tim"]
        ])
        yield* sql`UPDATE behaviour_update SET ${sql.update({ id: 1, name: "A", age: 11 }, ["id"])} WHERE id = ${1}`
        // RETURNING comes right after the SET list: the statement can have no WHERE after it
        const returned = yield* sql<{ id: number }>`UPDATE behaviour_update SET ${sql.update({ age: 0 }).returning("id")}`
        assert.deepStrictEqual(returned.map((r) => r.id).sort(), [1, 2])
        assert.deepStrictEqual(yield* sql`SELECT id, name, age FROM behaviour_update ORDER BY id`, [
          { id: 1, name: "A", age: 0 },
          { id: 2, name: "b", age: 0 }
        ])
      })
  },
  {
    name: "sql.updateValues updates many rows from a VALUES list, with .returning",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(
          sql`UPDATE people SET name = data.name FROM ${sql.updateValues([{ name: "Tim" }, { name: "John" }], "data").returning("*")}`.compile(),
          [`UPDATE people SET name = data.name FROM (values ($1),($2)) AS data("name") RETURNING *`, ["Tim", "John"]]
        )
        yield* freshTable("behaviour_values", "id int PRIMARY KEY, name text")
        yield* sql`INSERT INTO behaviour_values ${sql.insert([{ id: 1, name: "a" }, { id: 2, name: "b" }, { id: 3, name: "c" }])}`
        yield* sql`UPDATE behaviour_values SET name = data.name FROM ${
          sql.updateValues([{ id: 1, name: "x" }, { id: 3, name: "z" }], "data")
        } WHERE behaviour_values.id = data.id::int`
        assert.deepStrictEqual(yield* sql`SELECT id, name FROM behaviour_values ORDER BY id`, [
          { id: 1, name: "x" },
          { id: 2, name: "b" },
          { id: 3, name: "z" }
        ])
      })
  },
  {
    name: "sql.and, sql.or, sql.csv and sql.join combine clauses",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const now = new Date("2026-01-01T00:00:00Z")
        assert.deepStrictEqual(
          sql`SELECT * FROM ${sql("people")} WHERE ${sql.and([sql.in("name", ["Tim", "John"]), sql`created_at < ${now}`])}`.compile(),
          [`SELECT * FROM "people" WHERE ("name" IN ($1,$2) AND created_at < $3)`, ["Tim", "John", now]]
        )
        assert.deepStrictEqual(sql`WHERE ${sql.or(["a = 1", sql`b = ${2}`])}`.compile(), [`WHERE (a = 1 OR b = $1)`, [2]])
        assert.deepStrictEqual(sql`SELECT 1 ${sql.csv("ORDER BY", ["a", sql`b`])}`.compile(), [`SELECT 1 ORDER BY a, b`, []])
        assert.deepStrictEqual(sql`SELECT ${sql.csv([sql`${1}::int`, "2"])}`.compile(), [`SELECT $1::int, 2`, [1]])
        assert.deepStrictEqual(sql`WHERE ${sql.join(" AND ", true, "1=1")([])}`.compile(), [`WHERE 1=1`, []])
        const rows = yield* sql`SELECT n FROM generate_series(1, 6) n WHERE ${
          sql.or([sql.and([sql`n > ${1}`, sql`n < ${3}`]), sql`n = ${5}`])
        } ORDER BY n`
        assert.deepStrictEqual(rows, [{ n: 2 }, { n: 5 }])
      })
  },
  {
    name: "sql.literal, nested fragments and a statement used as a fragment compose into one statement",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const lower = sql`n > ${2}`
        const inner = sql`SELECT n FROM generate_series(1, ${6}::int) n WHERE ${lower}`
        const outer = sql`SELECT ${sql.literal("count(*)::int")} AS c, ${sql.literal("max(n)")} AS m FROM (${inner}) s WHERE n < ${5}`
        assert.deepStrictEqual(outer.compile(), [
          "SELECT count(*)::int AS c, max(n) AS m FROM (SELECT n FROM generate_series(1, $1::int) n WHERE n > $2) s WHERE n < $3",
          [6, 2, 5]
        ])
        assert.deepStrictEqual(yield* outer, [{ c: 2, m: 4 }])
      })
  },
  {
    name: "onDialect and onDialectOrElse pick pg",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.strictEqual(
          sql.onDialect({ sqlite: () => "A", pg: () => "B", mysql: () => "C", mssql: () => "D", clickhouse: () => "E" }),
          "B"
        )
        assert.strictEqual(sql.onDialectOrElse({ orElse: () => "A", pg: () => "B" }), "B")
        assert.strictEqual(sql.onDialectOrElse({ orElse: () => "A", mysql: () => "C" }), "A")
      })
  }
]

/** A transformer that runs `SELECT 2 AS n` instead of whatever it is given. */
const rewriteToTwo: Statement.Statement.Transformer = (_self, sql) => Effect.succeed(sql`SELECT ${2}::int AS n`)

const transformers: ReadonlyArray<Case> = [
  {
    name: "Statement.withTransformer rewrites the statement that runs",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const statement = sql`SELECT ${1}::int AS n`
        assert.deepStrictEqual(yield* Statement.withTransformer(statement, rewriteToTwo), [{ n: 2 }])
        assert.deepStrictEqual(yield* statement.values.pipe(Statement.withTransformer(rewriteToTwo)), [[2]])
        assert.deepStrictEqual(yield* statement, [{ n: 1 }])
      })
  },
  {
    name: "Statement.setTransformer as a layer rewrites the statements of what it is provided to",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT ${1}::int AS n`.pipe(Effect.provide(Statement.setTransformer(rewriteToTwo)))
        assert.deepStrictEqual(rows, [{ n: 2 }])
      })
  },
  {
    name: "Statement.withTransformerDisabled runs the statement as written",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* Statement.withTransformerDisabled(sql`SELECT ${1}::int AS n`).pipe(Statement.withTransformer(rewriteToTwo))
        assert.deepStrictEqual(rows, [{ n: 1 }])
      })
  },
  {
    name: "a transformer sees the statement and the fiber's context",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const seen: Array<string> = []
        const spy: Statement.Statement.Transformer = (self, _sql, _refs, span) =>
          Effect.sync(() => {
            seen.push(self.compile()[0], span.name)
            return self
          })
        assert.deepStrictEqual(yield* Statement.withTransformer(sql`SELECT ${1}::int AS n`, spy), [{ n: 1 }])
        assert.deepStrictEqual(seen, ["SELECT $1::int AS n", "sql.execute"])
      })
  }
]

/** The names in `behaviour_tx`, in order. */
const txNames = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ name: string }>`SELECT name FROM behaviour_tx ORDER BY id`.pipe(Effect.map((rows) => rows.map((r) => r.name))))

const txInsert = (name: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO behaviour_tx ${sql.insert({ name })}`)

const txTable = freshTable("behaviour_tx", "id serial PRIMARY KEY, name text NOT NULL")

const transactions: ReadonlyArray<Case> = [
  {
    name: "withTransaction commits what it wrote",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const result = yield* sql.withTransaction(Effect.as(Effect.zipRight(txInsert("a"), txInsert("b")), "done"))
        assert.strictEqual(result, "done")
        assert.deepStrictEqual(yield* txNames, ["a", "b"])
      })
  },
  {
    name: "a failure rolls the transaction back and is returned as it was",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const error = yield* Effect.flip(sql.withTransaction(Effect.zipRight(txInsert("a"), Effect.fail("boom" as const))))
        assert.strictEqual(error, "boom")
        assert.deepStrictEqual(yield* txNames, [])
      })
  },
  {
    name: "a defect rolls the transaction back",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const exit = yield* Effect.exit(sql.withTransaction(Effect.zipRight(txInsert("a"), Effect.die("defect"))))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        assert.deepStrictEqual(yield* txNames, [])
      })
  },
  {
    name: "a nested transaction is a savepoint: its failure is rolled back, the outer one commits",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* txInsert("outer")
          const inner = yield* Effect.flip(sql.withTransaction(Effect.zipRight(txInsert("inner"), Effect.fail("inner failed" as const))))
          assert.strictEqual(inner, "inner failed")
          yield* sql.withTransaction(txInsert("inner ok"))
          yield* txInsert("outer again")
        }))
        assert.deepStrictEqual(yield* txNames, ["outer", "inner ok", "outer again"])
      })
  },
  {
    name: "statements inside see the transaction's writes, statements outside do not",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const inside = yield* Deferred.make<void>()
        // forked before the transaction: its statements run on their own connection
        const outside = yield* Deferred.await(inside).pipe(Effect.zipRight(txNames), Effect.fork)
        const [seenInside, seenOutside] = yield* sql.withTransaction(Effect.gen(function*() {
          yield* txInsert("a")
          const seen = yield* txNames
          yield* Deferred.succeed(inside, undefined)
          return [seen, yield* Fiber.join(outside)] as const
        }))
        assert.deepStrictEqual(seenInside, ["a"])
        assert.deepStrictEqual(seenOutside, [])
        assert.deepStrictEqual(yield* txNames, ["a"])
      })
  },
  {
    name: "a stream inside a transaction runs on the transaction's connection and sees its writes",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const streamed = yield* sql.withTransaction(Effect.zipRight(
          Effect.zipRight(txInsert("a"), txInsert("b")),
          Stream.runCollect(sql<{ name: string }>`SELECT name FROM behaviour_tx ORDER BY id`.stream)
        ))
        assert.deepStrictEqual(Chunk.toReadonlyArray(streamed).map((r) => r.name), ["a", "b"])
      })
  },
  {
    name: "statements run concurrently inside a transaction share its connection, and all commit",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const pids = yield* sql.withTransaction(Effect.forEach(["a", "b", "c", "d"], (name) =>
          Effect.zipRight(txInsert(name), sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`), { concurrency: "unbounded" }))
        assert.strictEqual(new Set(pids.map((rows) => rows[0]?.pid)).size, 1)
        assert.deepStrictEqual([...(yield* txNames)].sort(), ["a", "b", "c", "d"])
      })
  },
  {
    name: "sql.reserve holds one connection for the scope",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [first, second] = yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* sql.reserve
          yield* connection.execute("SELECT set_config('behaviour.mark', 'reserved', false)", [], undefined)
          const first = yield* connection.execute("SELECT pg_backend_pid() AS pid, current_setting('behaviour.mark') AS mark", [], undefined)
          const second = yield* connection.execute("SELECT pg_backend_pid() AS pid, current_setting('behaviour.mark') AS mark", [], undefined)
          return [first, second] as const
        }))
        assert.deepStrictEqual(first, second)
        assert.strictEqual((first[0] as { mark: string } | undefined)?.mark, "reserved")
      })
  }
]

const streams: ReadonlyArray<Case> = [
  {
    name: ".stream delivers every row of a result larger than one cursor batch, in order",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* Stream.runCollect(sql<{ n: number }>`SELECT n FROM generate_series(1, ${1000}::int) n`.stream)
        assert.strictEqual(Chunk.size(rows), 1000)
        assert.deepStrictEqual(Chunk.toReadonlyArray(rows).map((r) => r.n), Array.from({ length: 1000 }, (_, i) => i + 1))
      })
  },
  {
    name: "an early end of a stream (Stream.take) gives the connection back: a pool of one serves the next statement",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const first = yield* Stream.runCollect(Stream.take(sql<{ n: number }>`SELECT n FROM generate_series(1, 100000) n`.stream, 3))
        assert.deepStrictEqual(Chunk.toReadonlyArray(first), [{ n: 1 }, { n: 2 }, { n: 3 }])
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
        const again = yield* Stream.runCollect(Stream.take(sql<{ n: number }>`SELECT n FROM generate_series(1, 100000) n`.stream, 1))
        assert.deepStrictEqual(Chunk.toReadonlyArray(again), [{ n: 1 }])
      }).pipe(Effect.provide(impl.layer(1)))
  },
  {
    name: "an error mid-stream ends the stream with the SqlError after the rows before it, and the connection serves the next statement",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const items = yield* Stream.runCollect(Stream.either(sql<{ q: number }>`SELECT 1 / (n - 300) AS q FROM generate_series(1, 400) n`.stream))
        const all = Chunk.toReadonlyArray(items)
        const last = all[all.length - 1]
        const before = all.slice(0, -1)
        assert.isTrue(before.length > 0 && before.length < 299 && before.every(Either.isRight))
        assert.isTrue(last !== undefined && Either.isLeft(last))
        if (last !== undefined && Either.isLeft(last)) {
          assert.instanceOf(last.left, SqlError)
          assert.strictEqual(sqlState(last.left), "22012")
        }
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      }).pipe(Effect.provide(impl.layer(1)))
  }
]

const errors: ReadonlyArray<Case> = [
  {
    name: "a failing statement is a SqlError \"Failed to execute statement\" with pg's error (SQLSTATE) as cause",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* failure(sql`SELECT 1 / ${0}::int`)
        assert.instanceOf(error, SqlError)
        assert.strictEqual(error._tag, "SqlError")
        assert.strictEqual(error.message, "Failed to execute statement")
        assert.instanceOf(error.cause, Pg.DatabaseError)
        assert.strictEqual(sqlState(error), "22012")
        const syntax = yield* failure(sql.unsafe("SELEC 1"))
        assert.strictEqual(syntax.message, "Failed to execute statement")
        assert.strictEqual(sqlState(syntax), "42601")
      })
  },
  {
    name: "a unique violation is 23505 with the constraint named, and the next statement runs",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* freshTable("behaviour_unique", "id int PRIMARY KEY")
        yield* sql`INSERT INTO behaviour_unique ${sql.insert({ id: 1 })}`
        const error = yield* failure(sql`INSERT INTO behaviour_unique ${sql.insert({ id: 1 })}`)
        assert.strictEqual(sqlState(error), "23505")
        assert.strictEqual(error.cause instanceof Pg.DatabaseError ? error.cause.constraint : undefined, "behaviour_unique_pkey")
        assert.deepStrictEqual(yield* sql`SELECT count(*)::int AS c FROM behaviour_unique`, [{ c: 1 }])
      })
  },
  {
    name: "every way to run a statement fails with the same SqlError",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const statement = sql`SELECT 1 / ${0}::int AS q`
        const failures = yield* Effect.all([
          failure(statement.values),
          failure(statement.raw),
          failure(statement.withoutTransform),
          failure(statement.unprepared),
          failure(Stream.runCollect(statement.stream))
        ])
        assert.deepStrictEqual(failures.map((e) => [e.message, sqlState(e)]), Array(5).fill(["Failed to execute statement", "22012"]))
      })
  },
  {
    name: "a failed statement inside a transaction fails the transaction, which rolls back",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const error = yield* failure(sql.withTransaction(Effect.zipRight(txInsert("a"), sql`SELECT 1 / ${0}::int`)))
        assert.strictEqual(sqlState(error), "22012")
        assert.deepStrictEqual(yield* txNames, [])
      })
  }
]

/** Our sessions still running `pg_sleep`, seen from the superuser's own connection. */
const sleepers = Effect.flatMap(TestDatabase.TestDatabase, ({ server }) =>
  server.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
    [APPLICATION_NAME]
  )).pipe(Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)), Effect.orDie)

/**
 * `sleepers` until none is left, bounded (50 × 20 ms): the cancel request is asynchronous on the
 * server. Returns the last count (without a schedule `repeat` returns the last value).
 */
const untilNoSleepers = sleepers.pipe(
  Effect.tap((n) => n === 0 ? Effect.void : Effect.sleep("20 millis")),
  Effect.repeat({ until: (n) => n === 0, times: 50 })
)

const interruption: ReadonlyArray<Case> = [
  {
    name: "an interrupted statement (Effect.timeout) is cancelled on the server too, and the pool keeps serving",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const result = yield* Effect.either(Effect.timeout(sql`SELECT pg_sleep(30)`, "200 millis"))
        assert.isTrue(Either.isLeft(result) && Cause.isTimeoutException(result.left))
        assert.strictEqual(yield* untilNoSleepers, 0)
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      })
  },
  {
    name: "a statement interrupted while it waits for a connection gives that connection back unused when it comes",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const waited = yield* Effect.scoped(Effect.gen(function*() {
          // the pool's one connection is taken: the statement below waits in the pool's queue
          yield* sql.reserve
          return yield* Effect.either(Effect.timeout(sql`SELECT 'never sent' AS text`, "100 millis"))
        }))
        assert.isTrue(Either.isLeft(waited) && Cause.isTimeoutException(waited.left))
        // the reserved connection went to the interrupted statement's checkout and straight back:
        // a pool of one serves the next statements
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
        assert.deepStrictEqual(yield* sql`SELECT 2 AS two`, [{ two: 2 }])
      }).pipe(Effect.provide(impl.layer(1)))
  }
]

/** The cause's `_tag` or constructor name, and its message: how a caller tells failures apart. */
const causeOf = (error: SqlError) => ({
  kind: typeof error.cause === "object" && error.cause !== null && "_tag" in error.cause ? error.cause._tag : error.cause?.constructor.name,
  causeMessage: error.cause instanceof Error ? error.cause.message : undefined
})

const failureModes: ReadonlyArray<Case> = [
  {
    name: "an interrupted transaction is rolled back and its statement cancelled on the server",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* txTable
        const result = yield* Effect.either(Effect.timeout(sql.withTransaction(Effect.zipRight(txInsert("a"), sql`SELECT pg_sleep(30)`)), "200 millis"))
        assert.isTrue(Either.isLeft(result) && Cause.isTimeoutException(result.left))
        assert.strictEqual(yield* untilNoSleepers, 0)
        assert.deepStrictEqual(yield* txNames, [])
      })
  },
  {
    name: "a statement whose session the server terminates fails (57P01 or \"Connection error\"), and the pool recovers",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* failure(sql`SELECT pg_terminate_backend(pg_backend_pid())`)
        // a race inside pg, on both clients: the FATAL 57P01 reaches the statement's callback, or the
        // socket's close reaches the client's `error` event first (bare @effect/sql-pg: "Connection error")
        const outcome = { message: error.message, code: sqlState(error), ...causeOf(error) }
        const announced = {
          message: "Failed to execute statement",
          code: "57P01",
          kind: "DatabaseError",
          causeMessage: "terminating connection due to administrator command"
        }
        const closed = impl.reference
          ? { message: "Connection error", code: undefined, kind: "Error", causeMessage: "Connection terminated unexpectedly" }
          // intended (internal/connectionLoss.ts): a loss without a SQLSTATE is typed ConnectionLost,
          // pg's message kept as its reason (a loss the server announced keeps its pg error)
          : {
            message: "Connection error",
            code: undefined,
            kind: "ConnectionLost",
            causeMessage: error.cause instanceof ConnectionLost ? error.cause.message : "not a ConnectionLost"
          }
        if (!impl.reference && error.cause instanceof ConnectionLost) assert.strictEqual(error.cause.reason, "Connection terminated unexpectedly")
        expect([announced, closed]).toContainEqual(outcome)
        // upstream: after the 57P01 path the statement's callback released the client as healthy, so
        // the next statement may take the dying connection and fail with "Connection error" once
        // (both clients); the one after gets a fresh connection
        assert.deepStrictEqual(yield* Effect.retry(sql`SELECT 1 AS one`, { times: 1 }), [{ one: 1 }])
      }).pipe(Effect.provide(impl.layer(1)))
  },
  {
    name: "a statement cancelled by statement_timeout fails with 57014, and the connection serves the next one",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* failure(sql.withTransaction(Effect.zipRight(sql`SET LOCAL statement_timeout = 50`, sql`SELECT pg_sleep(5)`)))
        assert.strictEqual(error.message, "Failed to execute statement")
        if (impl.reference) {
          assert.strictEqual(sqlState(error), "57014")
          assert.deepStrictEqual(causeOf(error), { kind: "DatabaseError", causeMessage: "canceling statement due to statement timeout" })
        } else {
          // intended (internal/statementTimeout.ts): the server's statement_timeout is typed as
          // StatementTimeout (side "server", SQLSTATE kept in `code`) instead of pg's DatabaseError
          assert.strictEqual(causeOf(error).kind, "StatementTimeout")
          assert.isTrue(error.cause instanceof StatementTimeout && error.cause.side === "server" && error.cause.code === "57014")
          // the SET LOCAL's 50 ms cancelled it, not DB_STATEMENT_TIMEOUT: the message says either may have
          expect(error.cause instanceof StatementTimeout ? error.cause.message : "").toContain("unless a SET [LOCAL] statement_timeout gave the session or transaction another")
        }
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      }).pipe(Effect.provide(impl.layer(1)))
  },
  {
    name: "a statement that gets no connection from a full pool fails with \"Failed to acquire connection\"",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.scoped(Effect.zipRight(sql.reserve, failure(sql`SELECT 1`)))
        assert.strictEqual(error.message, "Failed to acquire connection")
        if (impl.reference) {
          // pg-pool's queue timeout (connectionTimeoutMillis, 2000 ms here as DB_CONNECTION_TIMEOUT's default)
          assert.deepStrictEqual(causeOf(error), { kind: "Error", causeMessage: "timeout exceeded when trying to connect" })
        } else {
          // intended (internal/resilience/acquire.ts, DESIGN "Pool exhaustion"): typed PoolExhausted with the pool size
          assert.strictEqual(causeOf(error).kind, "PoolExhausted")
          assert.isTrue(error.cause instanceof PoolExhausted && error.cause.max === 1)
        }
        assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      }).pipe(Effect.provide(impl.layer(1)))
  }
]

/** The attributes @effect/sql-pg puts on a statement's span (the reference's keys, checked there exactly). */
const referenceSpanKeys = ["db.namespace", "db.operation.name", "db.query.text", "db.system.name", "server.address", "server.port"]

const spans: ReadonlyArray<Case> = [
  {
    name: "a statement makes a sql.execute span with the query text (placeholders only) and the db attributes",
    run: (impl) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { recorded, tracer } = makeRecordingTracer(yield* Effect.tracer)
        const secretish = "parameter-value-never-in-a-span-7d2c"
        yield* Effect.withTracer(sql`SELECT ${secretish}::text AS v`, tracer)
        yield* Effect.withTracer(Stream.runDrain(sql`SELECT ${secretish}::text AS v`.stream), tracer)
        const executes = recorded().filter((s) => s.name === "sql.execute")
        assert.strictEqual(executes.length, 2)
        for (const [span, operation] of [[executes[0], "execute"], [executes[1], "executeStream"]] as const) {
          const keys = [...(span?.attributes.keys() ?? [])].sort()
          if (impl.reference) assert.deepStrictEqual(keys, referenceSpanKeys)
          else expect(keys).toEqual(expect.arrayContaining(referenceSpanKeys))
          assert.strictEqual(span?.attributes.get("db.query.text"), "SELECT $1::text AS v")
          assert.strictEqual(span?.attributes.get("db.operation.name"), operation)
          assert.strictEqual(span?.attributes.get("db.system.name"), "postgresql")
          assert.strictEqual(span?.attributes.get("db.namespace"), "app")
          for (const value of span?.attributes.values() ?? []) expect(String(value)).not.toContain(secretish)
        }
      })
  },
  {
    name: "a statement's span names the server and ends with the statement's failure",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { server } = yield* TestDatabase.TestDatabase
        const { recorded, tracer } = makeRecordingTracer(yield* Effect.tracer)
        yield* Effect.withTracer(Effect.flip(sql`SELECT 1 / ${0}::int`), tracer)
        const span = recorded().find((s) => s.name === "sql.execute")
        assert.strictEqual(span?.attributes.get("server.address"), server.host)
        assert.strictEqual(span?.attributes.get("server.port"), server.port)
        assert.isTrue(span !== undefined && span.status._tag === "Ended" && Exit.isFailure(span.status.exit))
      })
  },
  {
    name: "a transaction makes a sql.transaction span, parent of its statements' spans",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { recorded, tracer } = makeRecordingTracer(yield* Effect.tracer)
        yield* Effect.withTracer(sql.withTransaction(sql`SELECT 1 AS one`), tracer)
        const names = recorded().map((s) => s.name)
        expect(names).toContain("sql.transaction")
        expect(names.filter((n) => n === "sql.execute").length).toBeGreaterThanOrEqual(1)
      })
  },
  {
    name: "a rewriting transformer's statement is the one the span names",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { recorded, tracer } = makeRecordingTracer(yield* Effect.tracer)
        yield* sql`SELECT ${1}::int AS n`.pipe(Statement.withTransformer(rewriteToTwo), Effect.withTracer(tracer))
        const execute = recorded().find((s) => s.name === "sql.execute")
        assert.strictEqual(execute?.attributes.get("db.query.text"), "SELECT $1::int AS n")
      })
  }
]

const services: ReadonlyArray<Case> = [
  {
    name: "SqlClient and PgClient are the same client, and sql.safe is the client itself",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pg = yield* PgClient.PgClient
        assert.strictEqual(sql, pg)
        assert.strictEqual(sql.safe, sql)
        assert.strictEqual(pg.json({ a: 1 }).segments.length, 1)
      })
  }
]

const notifications: ReadonlyArray<Case> = [
  {
    name: "PgClient.listen delivers what pg_notify sends on its channel",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const received = yield* Effect.fork(Stream.runHead(sql.listen("behaviour_channel")))
        // LISTEN runs once the stream starts: notify until the listener has heard one (bounded, 100 × 20 ms)
        const heard = yield* sql`SELECT pg_notify(${"behaviour_channel"}, ${"hello"})`.pipe(
          Effect.zipRight(Fiber.poll(received)),
          Effect.tap((done) => Option.isSome(done) ? Effect.void : Effect.sleep("20 millis")),
          // without a schedule `repeat` returns the last value (with one it would return the schedule's output)
          Effect.repeat({ until: Option.isSome, times: 100 })
        )
        assert.isTrue(Option.isSome(heard))
        assert.deepStrictEqual(yield* Fiber.join(received), Option.some("hello"))
      })
  },
  {
    name: "PgClient.notify fails as a SqlError \"Failed to notify\" (it sends NOTIFY chan, $1, which PostgreSQL rejects)",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const error = yield* failure(sql.notify("behaviour_channel", "hello"))
        assert.strictEqual(error.message, "Failed to notify")
        assert.strictEqual(sqlState(error), "42601")
      })
  }
]

const Person = Schema.Struct({ id: Schema.Number, name: Schema.String })

const helpers: ReadonlyArray<Case> = [
  {
    name: "SqlResolver.findById batches requests into one statement",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* freshTable("behaviour_resolver", "id int PRIMARY KEY, name text NOT NULL")
        yield* sql`INSERT INTO behaviour_resolver ${sql.insert([{ id: 1, name: "a" }, { id: 2, name: "b" }, { id: 3, name: "c" }])}`
        const { recorded, tracer } = makeRecordingTracer(yield* Effect.tracer)
        const found = yield* Effect.gen(function*() {
          const byId = yield* SqlResolver.findById("PersonById", {
            Id: Schema.Number,
            Result: Person,
            ResultId: (person) => person.id,
            execute: (ids) => sql`SELECT id, name FROM behaviour_resolver WHERE ${sql.in("id", ids)}`
          })
          return yield* Effect.forEach([3, 1, 9], (id) => byId.execute(id), { batching: true })
        }).pipe(Effect.withTracer(tracer))
        // results in the order of the requests, whatever order the rows came back in
        assert.deepStrictEqual(found, [Option.some({ id: 3, name: "c" }), Option.some({ id: 1, name: "a" }), Option.none()])
        const statementsRun = recorded().filter((span) => span.name === "sql.execute")
        assert.deepStrictEqual(statementsRun.map((span) => span.attributes.get("db.query.text")), [
          `SELECT id, name FROM behaviour_resolver WHERE "id" IN ($1,$2,$3)`
        ])
      })
  },
  {
    name: "SqlSchema.findAll and findOne decode rows with a Schema",
    run: () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const all = SqlSchema.findAll({
          Request: Schema.Number,
          Result: Person,
          execute: (n) => sql`SELECT n AS id, 'p' || n AS name FROM generate_series(1, ${n}::int) n`
        })
        const one = SqlSchema.findOne({ Request: Schema.Number, Result: Person, execute: (id) => sql`SELECT ${id}::int AS id, 'x' AS name WHERE ${id}::int > 0` })
        assert.deepStrictEqual(yield* all(2), [{ id: 1, name: "p1" }, { id: 2, name: "p2" }])
        assert.deepStrictEqual(yield* one(5), Option.some({ id: 5, name: "x" }))
        assert.deepStrictEqual(yield* one(0), Option.none())
      })
  }
]

const suites: ReadonlyArray<readonly [string, ReadonlyArray<Case>]> = [
  ["statements", statements],
  ["fragments and helpers", fragments],
  ["transformers", transformers],
  ["transactions", transactions],
  ["streams", streams],
  ["errors", errors],
  ["interruption", interruption],
  ["failure modes", failureModes],
  ["spans", spans],
  ["notifications", notifications],
  ["SqlResolver and SqlSchema", helpers],
  ["services", services]
]

layer(database, { timeout: 120_000, excludeTestServices: true })("SqlBehaviour", (it) => {
  for (const impl of implementations) {
    it.layer(impl.layer(4), { timeout: 60_000 })(impl.name, (it) => {
      for (const [section, cases] of suites) {
        describe(section, () => {
          for (const c of cases) it.scoped(c.name, () => c.run(impl))
        })
      }
    })
  }
})
