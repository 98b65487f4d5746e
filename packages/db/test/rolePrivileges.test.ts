/**
 * Least privilege at startup, against a real PostgreSQL harness server with one role per
 * privilege: production refuses BYPASSRLS and pg_execute_server_program and warns about every
 * other privilege an application rarely needs; development warns about the two refusals only.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import { TestDatabase } from "@takumi/testing"
import { clientLayer, makeTestSecrets, makeLogCapture, makeSettings, reloadFrom, tlsBaseline } from "./fixtures.js"

const PASSWORD = "least-Pr1vilege-Pw-4c2d9e"

const roles = ["owner_role", "owner_member", "plain", "rls", "shell", "wide"] as const

const database = TestDatabase.layer({
  roles: roles.map((name) => ({ name, password: PASSWORD })),
  database: "shop"
})

const configure = reloadFrom(tlsBaseline)

/** Grants each role its privilege, as the superuser (idempotent); `GRANT ... ON SCHEMA` runs inside `shop`. */
const grant = Effect.gen(function*() {
  const { server } = yield* configure()
  yield* server.query("ALTER ROLE rls BYPASSRLS")
  yield* server.query("GRANT pg_execute_server_program TO shell")
  yield* server.query("ALTER ROLE wide CREATEROLE CREATEDB REPLICATION")
  yield* server.query("GRANT pg_read_all_data, pg_write_all_data TO wide")
  yield* server.query("GRANT owner_role TO owner_member")
  yield* Effect.acquireUseRelease(
    Effect.promise(async () => {
      const client = new Pg.Client({ host: server.socketDir, port: server.port, user: "postgres", database: "shop" })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.query("GRANT CREATE ON SCHEMA public TO wide")),
    (client) => Effect.promise(() => client.end())
  )
}).pipe(Effect.orDie)

const settingsFor = (user: (typeof roles)[number], environment: DbSettings["environment"]) =>
  Effect.gen(function*() {
    yield* grant
    const { pki, server } = yield* TestDatabase.TestDatabase
    return makeSettings(server, pki, { environment, user, database: "shop" })
  })

/** Starts the client as `user`; the warnings logged and the startup error, if any. */
const start = (user: (typeof roles)[number], environment: DbSettings["environment"]) =>
  Effect.gen(function*() {
    const settings = yield* settingsFor(user, environment)
    const secrets = yield* makeTestSecrets({ DB_PASSWORD: PASSWORD })
    const logs = yield* makeLogCapture
    const exit = yield* Layer.build(clientLayer(settings, secrets)).pipe(
      Effect.scoped,
      Effect.provide(logs.layer),
      Effect.flip,
      Effect.option
    )
    const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
    return { error: exit, warnings }
  })

const ruleOf = (warning: string) => /rule='(\w+)'/.exec(warning)?.[1]

layer(database, { timeout: 120_000 })("least privilege at startup", (it) => {
  describe("production", () => {
    it.scoped("refuses a BYPASSRLS role with InsecureServer (BypassRlsRole)", () =>
      Effect.gen(function*() {
        const { error } = yield* start("rls", "production")
        assert.isTrue(error._tag === "Some" && error.value._tag === "InsecureServer")
        if (error._tag === "Some" && error.value._tag === "InsecureServer") {
          expect(error.value.findings.map((f) => f.rule)).toEqual(["BypassRlsRole"])
          expect(error.value.message).toContain("NOBYPASSRLS")
        }
      }))

    it.scoped("refuses a member of pg_execute_server_program with InsecureServer (ServerProgramExecution)", () =>
      Effect.gen(function*() {
        const { error } = yield* start("shell", "production")
        assert.isTrue(error._tag === "Some" && error.value._tag === "InsecureServer")
        if (error._tag === "Some" && error.value._tag === "InsecureServer") {
          expect(error.value.findings.map((f) => f.rule)).toEqual(["ServerProgramExecution"])
          expect(error.value.message).toContain("REVOKE pg_execute_server_program")
        }
      }))

    it.scoped("starts with one warning per privilege of a wide role: CREATEROLE, CREATEDB, REPLICATION, pg_read/write_all_data, CREATE on public", () =>
      Effect.gen(function*() {
        const { error, warnings } = yield* start("wide", "production")
        assert.strictEqual(error._tag, "None")
        expect(warnings.map(ruleOf).filter((rule) => rule !== undefined)).toEqual([
          "CreateRolePrivilege",
          "CreateDatabasePrivilege",
          "ReplicationPrivilege",
          "ReadAllDataRole",
          "WriteAllDataRole",
          "CreateOnPublicSchema"
        ])
        expect(warnings.every((w) => w.includes("Least privilege"))).toBe(true)
      }))

    it.scoped("warns that the database owner is the application role (DatabaseOwner)", () =>
      Effect.gen(function*() {
        const { error, warnings } = yield* start("owner_role", "production")
        assert.strictEqual(error._tag, "None")
        // the owner holds CREATE on public through pg_database_owner (PostgreSQL 15+)
        expect(warnings.map(ruleOf)).toContain("DatabaseOwner")
        expect(warnings.join("\n")).toContain("ALTER DATABASE <db> OWNER TO")
      }))

    it.scoped("warns about a member of the database owner's role as about the owner (DatabaseOwner)", () =>
      Effect.gen(function*() {
        const { error, warnings } = yield* start("owner_member", "production")
        assert.strictEqual(error._tag, "None")
        expect(warnings.map(ruleOf)).toContain("DatabaseOwner")
      }))

    it.scoped("starts a role with grants only without any warning", () =>
      Effect.gen(function*() {
        const { error, warnings } = yield* start("plain", "production")
        assert.strictEqual(error._tag, "None")
        assert.deepStrictEqual(warnings, [])
      }))
  })

  describe("development", () => {
    it.scoped("only warns about BYPASSRLS and pg_execute_server_program (refused in production)", () =>
      Effect.gen(function*() {
        const rls = yield* start("rls", "development")
        const shell = yield* start("shell", "development")
        assert.strictEqual(rls.error._tag, "None")
        assert.strictEqual(shell.error._tag, "None")
        expect(rls.warnings.map(ruleOf)).toContain("BypassRlsRole")
        expect(shell.warnings.map(ruleOf)).toContain("ServerProgramExecution")
        expect(rls.warnings.find((w) => ruleOf(w) === "BypassRlsRole")).toContain("refused in production")
      }))

    it.scoped("does not warn at startup about the advisory privileges (doctor lists them)", () =>
      Effect.gen(function*() {
        const { error, warnings } = yield* start("wide", "development")
        assert.strictEqual(error._tag, "None")
        expect(warnings.map(ruleOf).filter((rule) => rule !== undefined && rule !== "SelfSignedCertificate")).toEqual([])
      }))
  })
})
