/**
 * The two clients `SqlBehaviour.test.ts` runs every case on, against the same TLS test server:
 * the reference (bare `@effect/sql-pg` over a plain `pg.Pool`) and the system under test
 * (`SecureSqlClient.layer`), plus a tracer that records the spans a statement makes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tracer from "effect/Tracer"
import * as Pg from "pg"
import { TestDatabase } from "@takumi/testing"
import { clientLayer, makeSettings, makeTestSecrets } from "./fixtures.js"

/** The role every client of the file logs in as (created by the file's `TestDatabase`). */
export const APP_PASSWORD = "app-Pa55word-sqlbehaviour-61c0e2"

/** `application_name` of both clients: the interruption case finds their sessions by it. */
export const APPLICATION_NAME = "takumi-db-test"

/** One client under test: how to build it with a pool of `max` connections over the fixture's server. */
export interface Implementation {
  readonly name: string
  /** the reference defines the expected behaviour; the other must match it */
  readonly reference: boolean
  readonly layer: (max: number) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, never, TestDatabase.TestDatabase>
}

/**
 * A plain `pg.Pool` as the @effect/sql-pg documentation builds one (verified TLS with the test CA),
 * handed to `PgClient.layerFromPool`. The pool's `error` listener only keeps an idle connection's
 * death from crashing the worker; the connect timeout makes a pool that never gets a connection
 * back fail the statement instead of hanging the test.
 */
const reference: Implementation = {
  name: "bare @effect/sql-pg",
  reference: true,
  layer: (max) =>
    Layer.unwrapEffect(Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const acquire = Effect.acquireRelease(
        Effect.sync(() => {
          const pool = new Pg.Pool({
            host: server.host,
            port: server.port,
            database: "app",
            user: "app",
            password: APP_PASSWORD,
            ssl: { ca: pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2" },
            max,
            connectionTimeoutMillis: 2000,
            application_name: APPLICATION_NAME
          })
          pool.on("error", () => undefined)
          return pool
        }),
        (pool) => Effect.promise(() => pool.end())
      )
      return Layer.orDie(PgClient.layerFromPool({ acquire, applicationName: APPLICATION_NAME }))
    }))
}

/** `SecureSqlClient.layer` with the test secrets (Vault double) holding the password, pool 0..max. */
const secure: Implementation = {
  name: "SecureSqlClient",
  reference: false,
  layer: (max) =>
    Layer.unwrapScoped(Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const settings = makeSettings(server, pki, { pool: { min: 0, max }, applicationName: APPLICATION_NAME })
      return Layer.orDie(clientLayer(settings, secrets))
    }))
}

/** Both clients, the reference first. */
export const implementations: ReadonlyArray<Implementation> = [reference, secure]

/** What the recording tracer kept of one span. */
export interface RecordedSpan {
  readonly name: string
  readonly attributes: ReadonlyMap<string, unknown>
  /** read when the case asks: a span still running says `Started` */
  readonly status: Tracer.SpanStatus
}

/**
 * A tracer that delegates to `base` (the runtime's own) and keeps every span it starts, so that a
 * case can read the name and attributes a statement put on its span after it ran.
 */
export const makeRecordingTracer = (base: Tracer.Tracer) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = base.span(name, parent, context, links, startTime, kind, options)
      spans.push(span)
      return span
    },
    context: (f, fiber) => base.context(f, fiber)
  })
  const recorded = (): ReadonlyArray<RecordedSpan> => spans.map(({ attributes, name, status }) => ({ name, attributes, status }))
  return { tracer, recorded }
}
