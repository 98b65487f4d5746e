import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Pg from "pg"
import { TestDatabase } from "../src/index.js"

describe("TestDatabase", () => {
  it.scoped("starts a TLS server with the given roles and a database owned by the first, reachable with the test CA", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.make({
        roles: [{ name: "app", password: "fixture-app-Pw-1" }, { name: "root_like", password: "fixture-su-Pw-2", superuser: true }],
        database: "appdb"
      })
      const roles = yield* server.query(
        "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles WHERE rolname IN ('app', 'root_like') ORDER BY rolname"
      )
      assert.deepStrictEqual(roles, [
        { rolname: "app", rolsuper: false, rolcanlogin: true },
        { rolname: "root_like", rolsuper: true, rolcanlogin: true }
      ])
      const client = new Pg.Client({
        host: server.host,
        port: server.port,
        user: "app",
        password: "fixture-app-Pw-1",
        database: "appdb",
        ssl: { ca: pki.ca.certPem, rejectUnauthorized: true }
      })
      const row = yield* Effect.acquireUseRelease(
        Effect.promise(() => client.connect()),
        () =>
          Effect.promise(() =>
            client.query<{ ssl: boolean; owner: string }>(
              `SELECT s.ssl, pg_get_userbyid(d.datdba) AS owner FROM pg_stat_ssl s, pg_database d
               WHERE s.pid = pg_backend_pid() AND d.datname = current_database()`
            )
          ),
        () => Effect.promise(() => client.end())
      )
      assert.deepStrictEqual(row.rows, [{ ssl: true, owner: "app" }])
    }))
})
