/**
 * `takumi-db audit-logging check|enable` through the command line against real PostgreSQL 15
 * servers with TLS, connecting through the whole secure stack as an application role. Each test
 * has its own server: `enable` changes the server's configuration for good.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { PgTestServer, TestPki, VaultDouble } from "@takumi/testing"
import { AuditLogging } from "../src/index.js"
import { errorTag, runCli } from "./fixtures.js"

const PASSWORD = "audit-Pa55word-0e6a12"
const ADMIN_PASSWORD = "audit-Adm1n-Pa55-93c0d7"
const VAULT_TOKEN = "hvs.audit-test-token-81ab"

class Pki extends Context.Tag("cli-test/AuditPki")<Pki, TestPki.TestPki>() {}

/** A fresh server with `app` (no rights) and `auditor` (granted exactly what `enable` needs). */
const makeServer = Effect.gen(function*() {
  const pki = yield* Pki
  const server = yield* PgTestServer.make({ certificate: pki.server, ca: pki.ca.certPem })
  yield* server.createRole({ name: "app", password: PASSWORD })
  yield* server.createRole({ name: "auditor", password: PASSWORD })
  for (const grant of AuditLogging.grantStatements("auditor")) yield* server.query(grant)
  return server
}).pipe(Effect.orDie)

const environment = (server: PgTestServer.PgTestServer, user: string) =>
  Effect.map(Pki, (pki) => ({
    NODE_ENV: "development",
    DB_HOST: server.host,
    DB_PORT: String(server.port),
    DB_NAME: "postgres",
    DB_USER: user,
    DB_SSL_CA: pki.ca.certPath,
    SECRETS_BACKEND: "env",
    DB_PASSWORD: PASSWORD
  }))

/**
 * Production: the password of `role` from its own path in a Vault KV v2 protocol double (a local
 * HTTPS server speaking Vault's wire format, not Vault), nothing secret in the environment.
 */
const production = (server: PgTestServer.PgTestServer, role: string, password: string) =>
  Effect.gen(function*() {
    const pki = yield* Pki
    const vault = yield* VaultDouble.make({ token: VAULT_TOKEN, tls: pki.server }).pipe(Effect.orDie)
    const path = `secret/takumi/production/${role}`
    yield* vault.put(path, { DB_PASSWORD: password })
    return {
      NODE_ENV: "production",
      DB_HOST: server.host,
      DB_PORT: String(server.port),
      DB_NAME: "postgres",
      DB_USER: role,
      DB_SSL_CA: pki.ca.certPath,
      SECRETS_BACKEND: "vault",
      VAULT_ADDR: vault.address,
      VAULT_TOKEN,
      VAULT_PATH: path,
      VAULT_CACERT: pki.ca.certPath
    }
  })

/**
 * `check` until it passes: `pg_reload_conf()` only signals the postmaster, and a session opened
 * a moment later may still start with the old settings.
 */
const checkUntilComplete = (variables: Record<string, string>) =>
  runCli(["audit-logging", "check"], variables).pipe(
    Effect.filterOrFail((run) => run.exitCode === 0, (run) => run),
    Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 40 }),
    Effect.merge
  )

/** Sets `log_statement` as the superuser and waits until new sessions see it. */
const setLogStatement = (server: PgTestServer.PgTestServer, value: string) =>
  Effect.gen(function*() {
    yield* server.query(`ALTER SYSTEM SET log_statement = '${value}'`)
    yield* server.query("SELECT pg_reload_conf()")
    yield* server.query("SELECT current_setting('log_statement') AS value").pipe(
      Effect.filterOrFail((rows) => rows[0]?.["value"] === value),
      Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 100 })
    )
  }).pipe(Effect.orDie)

layer(Layer.scoped(Pki, TestPki.make).pipe(Layer.orDie), { timeout: 60_000, excludeTestServices: true })(
  "AuditLogging",
  (it) => {
    it.scoped("check reports off/off/none on a fresh server; enable as a granted role; check then reports on/on/ddl", () =>
      Effect.gen(function*() {
        const server = yield* makeServer
        const before = yield* runCli(["audit-logging", "check"], yield* environment(server, "app"))
        assert.strictEqual(before.exitCode, 1)
        assert.deepStrictEqual(errorTag(before), Option.some("AuditLoggingIncomplete"))
        assert.include(before.stdout, "MISSING log_connections = off")
        assert.include(before.stdout, "MISSING log_disconnections = off")
        assert.include(before.stdout, "MISSING log_statement = none")

        const enabled = yield* runCli(["audit-logging", "enable"], yield* environment(server, "auditor"))
        assert.strictEqual(enabled.exitCode, 0, enabled.stderr)
        assert.include(enabled.stdout, "ALTER SYSTEM SET log_connections = 'on';")
        assert.include(enabled.stdout, "ALTER SYSTEM SET log_statement = 'ddl';")
        assert.include(enabled.stdout, "SELECT pg_reload_conf();")

        const after = yield* checkUntilComplete(yield* environment(server, "app"))
        assert.strictEqual(after.exitCode, 0)
        assert.include(after.stdout, "ok      log_connections = on")
        assert.include(after.stdout, "ok      log_disconnections = on")
        assert.include(after.stdout, "ok      log_statement = ddl")
      }))

    it.scoped("refuses enable for a role without the right with AuditLoggingNotPermitted naming the grants", () =>
      Effect.gen(function*() {
        const server = yield* makeServer
        const run = yield* runCli(["audit-logging", "enable"], yield* environment(server, "app"))
        assert.strictEqual(run.exitCode, 1)
        assert.deepStrictEqual(errorTag(run), Option.some("AuditLoggingNotPermitted"))
        expect(run.stderr).toMatch(/Role app may not change the audit settings/)
        assert.include(run.stderr, "permission denied to set parameter \"log_connections\"")
        assert.include(run.stderr, "GRANT ALTER SYSTEM ON PARAMETER log_connections, log_disconnections, log_statement TO \"app\";")
        // nothing was changed
        const rows = yield* server.query("SELECT current_setting('log_connections') AS value").pipe(Effect.orDie)
        assert.deepStrictEqual(rows, [{ value: "off" }])
      }))

    it.scoped("says which statements were written when only pg_reload_conf() is refused", () =>
      Effect.gen(function*() {
        const server = yield* makeServer
        yield* server.query("REVOKE EXECUTE ON FUNCTION pg_reload_conf() FROM auditor").pipe(Effect.orDie)
        const run = yield* runCli(["audit-logging", "enable"], yield* environment(server, "auditor"))
        assert.strictEqual(run.exitCode, 1)
        assert.deepStrictEqual(errorTag(run), Option.some("AuditLoggingNotPermitted"))
        assert.include(run.stderr, "`SELECT pg_reload_conf()` was refused (42501 permission denied for function pg_reload_conf)")
        assert.include(run.stderr, "`ALTER SYSTEM SET log_connections = 'on'`, ")
        assert.include(run.stderr, "take effect at the next configuration reload")
      }))

    it.scoped("in production refuses a superuser at the posture check, before any ALTER SYSTEM", () =>
      Effect.gen(function*() {
        const server = yield* makeServer
        yield* server.createRole({ name: "dba", password: ADMIN_PASSWORD, superuser: true }).pipe(Effect.orDie)
        const run = yield* runCli(["audit-logging", "enable"], yield* production(server, "dba", ADMIN_PASSWORD))
        assert.strictEqual(run.exitCode, 1)
        assert.deepStrictEqual(errorTag(run), Option.some("InsecureServer"))
        assert.include(run.stderr, "SuperuserRole")
        const rows = yield* server.query("SELECT current_setting('log_connections') AS value").pipe(Effect.orDie)
        assert.deepStrictEqual(rows, [{ value: "off" }])
      }))

    it.scoped("in production enables as a non-superuser role granted ALTER SYSTEM, with its password from Vault", () =>
      Effect.gen(function*() {
        const server = yield* makeServer
        const enabled = yield* runCli(["audit-logging", "enable"], yield* production(server, "auditor", PASSWORD))
        assert.strictEqual(enabled.exitCode, 0, enabled.stderr)
        assert.include(enabled.stdout, "SELECT pg_reload_conf();")
        assert.notInclude(enabled.stdout + enabled.stderr, PASSWORD)
        assert.notInclude(enabled.stdout + enabled.stderr, VAULT_TOKEN)
        const after = yield* checkUntilComplete(yield* production(server, "app", PASSWORD))
        assert.strictEqual(after.exitCode, 0, after.stdout + after.stderr)
      }))

    it.scoped("keeps a stricter log_statement and changes only what is missing", () =>
      Effect.gen(function*() {
        const server = yield* makeServer
        yield* setLogStatement(server, "all")
        const enabled = yield* runCli(["audit-logging", "enable"], yield* environment(server, "auditor"))
        assert.strictEqual(enabled.exitCode, 0, enabled.stderr)
        assert.notInclude(enabled.stdout, "SET log_statement")
        assert.include(enabled.stdout, "ALTER SYSTEM SET log_connections = 'on';")
        const after = yield* checkUntilComplete(yield* environment(server, "app"))
        assert.include(after.stdout, "ok      log_statement = all")
      }))
  }
)

describe("AuditLogging.grantStatements", () => {
  it.effect("quotes the role name as an identifier", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(AuditLogging.grantStatements("ops\"admin"), [
        "GRANT ALTER SYSTEM ON PARAMETER log_connections, log_disconnections, log_statement TO \"ops\"\"admin\";",
        "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO \"ops\"\"admin\";"
      ])
    }))
})
