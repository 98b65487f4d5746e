/**
 * The fixture most integration tests start from: a fresh test PKI and a TLS PostgreSQL server
 * with the application roles (and database) a test needs, as one scoped value or one `Layer`.
 *
 * ```ts
 * layer(TestDatabase.layer({ roles: [{ name: "app", password: "..." }], database: "app" }))("Thing", (it) => {
 *   it.effect("connects", () => Effect.gen(function*() {
 *     const { pki, server } = yield* TestDatabase.TestDatabase
 *   }))
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as PgTestServer from "./PgTestServer.js"
import * as TestPki from "./TestPki.js"

/**
 * A role to create: `login` is always on; `superuser` defaults to false.
 *
 * @since 0.1.0
 * @category models
 */
export interface Role {
  readonly name: string
  readonly password: string | Redacted.Redacted<string>
  readonly superuser?: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly roles: ReadonlyArray<Role>
  /** a database owned by the first role */
  readonly database?: string
  /** server settings beyond the test PKI's server certificate and CA (the defaults of PgTestServer otherwise) */
  readonly server?: PgTestServer.ServerSettings
}

/**
 * The PKI and the server of one fixture.
 *
 * @since 0.1.0
 * @category tags
 */
export class TestDatabase extends Context.Tag("@takumi/testing/TestDatabase")<TestDatabase, {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
}>() {}

/**
 * A test PKI and a server presenting `pki.server` (and trusting `pki.ca` for client
 * certificates), with the roles and database created. Both are removed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<Context.Tag.Service<TestDatabase>, PgTestServer.PgTestServerError | TestPki.TestPkiError, Scope.Scope> =>
  Effect.gen(function*() {
    const pki = yield* TestPki.make
    const server = yield* PgTestServer.make({ certificate: pki.server, ca: pki.ca.certPem, ...options.server })
    for (const role of options.roles) yield* server.createRole({ ...role, login: true })
    const owner = options.roles[0]
    if (options.database !== undefined) yield* server.createDatabase(options.database, owner?.name)
    return { pki, server }
  })

/**
 * `make` as a layer for `@effect/vitest`'s `layer(...)`; a failure to start is a defect (the
 * test cannot run without its server).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<TestDatabase> =>
  Layer.scoped(TestDatabase, Effect.orDie(make(options)))
