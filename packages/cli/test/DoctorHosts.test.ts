/**
 * `takumi-db doctor` with several hosts in DB_HOST, against real servers: a primary and its
 * streaming hot standby (`PgTestServer.makeStandby`), a server whose certificate names another
 * host, and a port nobody listens on. Each host is checked on its own and reported, with the host
 * DB_TARGET_SESSION_ATTRS would use.
 */
import { assert, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Net from "node:net"
import { PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import type { DoctorJson } from "../src/Doctor.js"
import { runCli } from "./fixtures.js"

const PASSWORD = "doctor-hosts-Pa55word-91ab"

class Env extends Context.Tag("cli-test/DoctorHostsEnv")<Env, {
  readonly pki: TestPki.TestPki
  readonly primary: PgTestServer.PgTestServer
  readonly standby: PgTestServer.PgTestServer
  /** a primary of its own whose certificate names only wrong.example.com */
  readonly misnamed: PgTestServer.PgTestServer
  /** a local port with nothing listening */
  readonly closedPort: number
}>() {}

/** A port that was free a moment ago: bound, then released. */
const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server: primary } = yield* TestDatabase.make({ roles: [{ name: "app", password: PASSWORD }], database: "app" })
    const standby = yield* PgTestServer.makeStandby(primary)
    const misnamed = yield* PgTestServer.make({ certificate: pki.wrongHost, ca: pki.ca.certPem })
    yield* misnamed.createRole({ name: "app", password: PASSWORD })
    yield* misnamed.createDatabase("app", "app")
    return { pki, primary, standby, misnamed, closedPort: yield* freePort }
  }).pipe(Effect.orDie)
)

const at = (server: { readonly host: string; readonly port: number }) => `${server.host}:${server.port}`

const development = (env: Context.Tag.Service<Env>, hosts: ReadonlyArray<string>, attrs: string) => ({
  NODE_ENV: "development",
  DB_HOST: hosts.join(","),
  DB_TARGET_SESSION_ATTRS: attrs,
  DB_NAME: "app",
  DB_USER: "app",
  DB_SSL_CA: env.pki.ca.certPath,
  SECRETS_BACKEND: "env",
  DB_PASSWORD: PASSWORD
})

/** The lines of the report's Hosts section. */
const hostsSection = (stdout: string): Array<string> => {
  const lines = stdout.split("\n")
  const start = lines.findIndex((line) => line.startsWith("Hosts ("))
  const end = lines.findIndex((line, i) => i > start && line === "")
  return start < 0 ? [] : lines.slice(start, end)
}

layer(EnvLive, { timeout: 120_000, excludeTestServices: true })("Doctor with several hosts", (it) => {
  it.effect("reports the standby listed first and the primary, each verified, and uses the primary for read-write", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], development(env, [at(env.standby), at(env.primary)], "read-write"))
      assert.strictEqual(run.exitCode, 0, run.stdout)
      const section = hostsSection(run.stdout)
      assert.strictEqual(section[0], "Hosts (DB_TARGET_SESSION_ATTRS=read-write, DB_LOAD_BALANCE_HOSTS=disable)")
      const standbyAt = section.indexOf(`  ${at(env.standby)}  hot standby (read-only)`)
      const primaryAt = section.indexOf(`  ${at(env.primary)}  primary (accepts writes)`)
      assert.isTrue(standbyAt > 0 && primaryAt > standbyAt, run.stdout)
      // each host has its own verified session over TLS, with its certificate
      expect(section[standbyAt + 1]).toMatch(new RegExp(`^    verified     ${at(env.standby)}, database app as app`))
      expect(section[primaryAt + 1]).toMatch(new RegExp(`^    verified     ${at(env.primary)}, database app as app`))
      expect(section.filter((line) => /^ {4}tls {10}TLSv1\.3/.test(line))).toHaveLength(2)
      assert.strictEqual(section.at(-1), `  would use    ${at(env.primary)}`)
      // the program's own connection went to the primary, listed second
      assert.include(run.stdout, `Connection\n  verified     ${at(env.primary)}, database app as app`)
      assert.include(run.stdout, "  certificate  not inspected: several hosts: each one's certificate is under Hosts")
    }))

  it.effect("names the standby for DB_TARGET_SESSION_ATTRS=standby, in --json too", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor", "--json"], development(env, [at(env.primary), at(env.standby)], "standby"))
      assert.strictEqual(run.exitCode, 0, run.stdout)
      const json: DoctorJson = JSON.parse(run.stdout)
      assert.deepStrictEqual(json.hosts?.hosts.map((h) => [h.port, h.kind, h.connection.status]), [
        [env.primary.port, "primary", "verified"],
        [env.standby.port, "standby", "verified"]
      ])
      assert.deepStrictEqual(json.hosts?.wouldUse, [{ host: env.standby.host, port: env.standby.port }])
      assert.strictEqual(json.hosts?.targetSessionAttrs, "standby")
    }))

  it.effect("with random load balancing lists every fitting host as a candidate", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], {
        ...development(env, [at(env.primary), at(env.standby)], "any"),
        DB_LOAD_BALANCE_HOSTS: "random"
      })
      assert.strictEqual(run.exitCode, 0, run.stdout)
      assert.include(run.stdout, `  would use    one of ${at(env.primary)}, ${at(env.standby)}, at random for each connection`)
    }))

  it.effect("reports an unreachable host and a certificate for another name per host, and still uses the primary", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const closed = `127.0.0.1:${env.closedPort}`
      const run = yield* runCli(["doctor", "--json"], development(env, [closed, at(env.misnamed), at(env.primary)], "read-write"))
      assert.strictEqual(run.exitCode, 0, run.stdout)
      const json: DoctorJson = JSON.parse(run.stdout)
      const hosts = json.hosts?.hosts ?? []
      assert.deepStrictEqual(hosts.map((h) => [h.port, h.kind]), [
        [env.closedPort, null],
        [env.misnamed.port, null],
        [env.primary.port, "primary"]
      ])
      const [down, misnamed] = hosts
      assert.strictEqual(down?.connection.status, "failed")
      // the misnamed server's certificate is checked against the name it was reached at
      assert.deepStrictEqual(
        misnamed?.connection.status === "failed" ? misnamed.connection.error.tag : misnamed?.connection.status,
        "CertificateHostMismatch"
      )
      assert.deepStrictEqual(json.hosts?.wouldUse, [{ host: env.primary.host, port: env.primary.port }])
    }))

  it.effect("says that no host fits when only a standby answers for read-write, and exits 1", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const run = yield* runCli(["doctor"], development(env, [at(env.standby), `127.0.0.1:${env.closedPort}`], "read-write"))
      assert.strictEqual(run.exitCode, 1, run.stdout)
      assert.include(run.stdout, "  FAILED NoSuitableHost")
      const section = hostsSection(run.stdout)
      assert.include(section, `  ${at(env.standby)}  hot standby (read-only)`)
      assert.include(section, `  127.0.0.1:${env.closedPort}  FAILED`)
      expect(section.at(-1)).toMatch(/^ {2}would use {4}none: no listed host is a server that accepts writes/)
    }))
})
