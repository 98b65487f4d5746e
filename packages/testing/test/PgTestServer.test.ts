import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Pg from "pg"
import { PgTestServer, TestPki } from "@takumi/testing"

class Fixture extends Context.Tag("test/PgTestServer/Fixture")<Fixture, {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
}>() {}

const FixtureLive = Layer.scoped(
  Fixture,
  Effect.gen(function*() {
    const pki = yield* TestPki.make
    const server = yield* PgTestServer.make({ certificate: pki.server })
    yield* server.createRole({ name: "app", password: "app-password" })
    return { pki, server }
  })
)

const withClient = <A>(config: Pg.ClientConfig, use: (client: Pg.Client) => Promise<A>) =>
  Effect.promise(async () => {
    const client = new Pg.Client(config)
    client.on("error", () => undefined)
    try {
      await client.connect()
      return await use(client)
    } finally {
      await client.end().catch(() => undefined)
    }
  })

layer(FixtureLive, { timeout: 60_000 })("PgTestServer", (it) => {
  it.effect("accepts a pg client that verifies the CA with TLS 1.2 or newer, as pg_stat_ssl confirms", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* Fixture
      const row = yield* withClient(
        {
          host: server.host,
          port: server.port,
          user: "app",
          password: "app-password",
          database: "postgres",
          ssl: { ca: pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2", servername: "localhost" }
        },
        async (client) =>
          (await client.query("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")).rows[0]
      )
      expect(row.ssl).toBe(true)
      expect(["TLSv1.2", "TLSv1.3"]).toContain(row.version)
    }))

  it.effect("runs superuser queries over the unix socket with parameters", () =>
    Effect.gen(function*() {
      const { server } = yield* Fixture
      const rows = yield* server.query("select current_user as who, $1::int + 1 as n", [41])
      expect(rows).toEqual([{ who: "postgres", n: 42 }])
    }))

  it.effect("starts from the run's initdb template and runs as the postgres user", () =>
    Effect.gen(function*() {
      const { server } = yield* Fixture
      expect(process.env[PgTestServer.TEMPLATE_ENV]).toBeDefined()
      const pid = Option.getOrThrow(yield* server.pid)
      const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
      const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1]
      expect(uid).toBe(String(Fs.statSync(server.dataDir).uid))
      if (process.getuid?.() === 0) expect(uid).not.toBe("0")
      expect(Fs.readFileSync(server.logFile, "utf8")).toContain("database system is ready")
    }))
})
