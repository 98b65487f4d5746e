/**
 * SecureSqlClient against real PostgreSQL 15 servers started by @takumi/testing on loopback,
 * with a test PKI generated per run. One server serves every configuration in turn (`reload`
 * between cases), so the file stays fast.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Crypto from "node:crypto"
import * as Tls from "node:tls"
import { inspect } from "node:util"
import * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import { BlackholeServer, PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import { makeTlsOptions } from "../src/internal/tlsOptions.js"
import { clientLayer, type TestSecrets, file, makeTestSecrets, makeLogCapture, makeSettings, reloadFrom } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-7f3c91d2"
const SUPER_PASSWORD = "super-Pa55word-0b8e44aa"
const ROTATED_PASSWORD = "rotated-Pa55word-5d1e6b03"

const database = TestDatabase.layer({
  roles: [
    { name: "app", password: APP_PASSWORD },
    { name: "boss", password: SUPER_PASSWORD, superuser: true },
    { name: "lazy", password: "postgres" }
  ],
  database: "app"
})

/** The baseline server configuration every case starts from. */
const baseline = (env: Context.Tag.Service<TestDatabase.TestDatabase>): Partial<PgTestServer.ServerSettings> => ({
  ssl: true,
  certificate: env.pki.server,
  ca: env.pki.ca.certPem,
  hba: PgTestServer.defaultHba(true),
  minTlsVersion: "TLSv1.2",
  maxTlsVersion: "TLSv1.3",
  ciphers: "HIGH:MEDIUM:+3DES:!aNULL"
})

const configure = reloadFrom(baseline)

const secretsWith = (password: string) => makeTestSecrets({ DB_PASSWORD: password })


/** Builds the layer and fails with its startup error, if any. */
const startup = (settings: DbSettings, secrets: TestSecrets) =>
  Layer.build(clientLayer(settings, secrets)).pipe(Effect.scoped)

const startupError = (settings: DbSettings, password = APP_PASSWORD) =>
  secretsWith(password).pipe(Effect.flatMap((secrets) => Effect.flip(startup(settings, secrets))))

/**
 * Whether this Node's OpenSSL refuses RSA keys under 2048 bits by itself (security level 2: Node
 * 24's bundled OpenSSL 3.5; Debian's Node 20 and Node 22 run at level 1): then a 1024-bit server
 * certificate fails the handshake everywhere, as `InsecureServer` (WeakRsaKey), instead of warning.
 */
const opensslRefusesWeakKeys = (pki: TestPki.TestPki): boolean => {
  try {
    Tls.createSecureContext({ cert: pki.rsa1024.certPem, key: pki.rsa1024.keyPem })
    return false
  } catch {
    return true
  }
}

/** Server-side connections this file's pools hold right now. */
const ourBackends = (server: PgTestServer.PgTestServer, applicationName = "takumi-db-test") =>
  server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [applicationName]).pipe(
    Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)),
    Effect.orDie
  )

/** Polls `effect` every 10 ms (for at most 3 s) until `predicate` holds; returns the last value. */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, predicate: (a: A) => boolean) =>
  effect.pipe(
    Effect.flatMap((a) => predicate(a) ? Effect.succeed(a) : Effect.fail(Option.some(a))),
    Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 300 }),
    Effect.catchAll((last) => Option.isOption(last) && Option.isSome(last) ? Effect.succeed(last.value) : Effect.fail(last))
  )

layer(database, { timeout: 120_000, excludeTestServices: true })("SecureSqlClient", (it) => {
  describe("TLS", () => {
    it.scoped("connects over TLS 1.2+ with a strong cipher, and pg_stat_ssl confirms it", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const secrets = yield* secretsWith(APP_PASSWORD)
        const row = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ ssl: boolean; version: string; cipher: string }>`
            SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
          return rows[0]
        }).pipe(Effect.provide(clientLayer(makeSettings(server, pki), secrets)))
        assert.strictEqual(row?.ssl, true)
        expect(["TLSv1.2", "TLSv1.3"]).toContain(row?.version)
        expect(row?.cipher).toMatch(/GCM|CHACHA20/)
      }))

    it.scoped("authenticates with a client certificate on a mutual-TLS server (cert clientcert=verify-full)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
        })
        const client = yield* pki.client("app")
        // certificate authentication never asks for a password: the backend has none to give
        const secrets = yield* makeTestSecrets({})
        const settings = makeSettings(server, pki, { tls: { cert: file(client.certPath), key: file(client.keyPath) } })
        const [dn, config] = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ client_dn: string | null }>`
            SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
          return [rows[0]?.client_dn, (yield* PgClient.PgClient).config] as const
        }).pipe(Effect.provide(clientLayer(settings, secrets)))
        expect(dn).toContain("CN=app")
        assert.strictEqual(yield* secrets.gets, 0)
        // the client key is in the pool's ssl options, hidden from inspect and JSON
        expect(inspect(config, { depth: 5 })).not.toContain("PRIVATE KEY")
        expect(JSON.stringify(config)).not.toContain("PRIVATE KEY")
      }))

    it.effect("no depth of inspect on a connected mutual-TLS client shows the private key (it lives in the secure context)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
        })
        const client = yield* pki.client("app")
        const settings = makeSettings(server, pki, { tls: { cert: file(client.certPath), key: file(client.keyPath) } })
        const ssl = yield* makeTlsOptions(settings, server)
        const pg = new Pg.Client({ host: server.host, port: server.port, user: "app", database: "app", ssl })
        pg.on("error", () => undefined)
        yield* Effect.acquireRelease(Effect.promise(() => pg.connect()), () => Effect.promise(() => pg.end()))
        const rows = yield* Effect.promise(() => pg.query<{ dn: string }>("SELECT client_dn AS dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        expect(rows.rows[0]?.dn).toContain("CN=app")
        const keyLine = client.keyPem.split("\n")[1] ?? "unreachable"
        for (const depth of [6, 12]) {
          const text = inspect(pg, { depth, showHidden: true })
          expect(text).not.toContain("PRIVATE KEY")
          expect(text).not.toContain(keyLine)
        }
      }).pipe(Effect.scoped))

    it.scoped("authenticates with an encrypted client key unlocked by DB_SSL_KEY_PASSPHRASE", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
        })
        const client = yield* pki.client("app")
        const passphrase = "client-key-Pa55phrase-3e9a"
        const encrypted = Crypto.createPrivateKey(client.keyPem)
          .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase })
          .toString()
        const settings = makeSettings(server, pki, {
          tls: {
            cert: file(client.certPath),
            key: Option.some({ _tag: "Inline", pem: Redacted.make(encrypted) }),
            keyPassphrase: Option.some(Redacted.make(passphrase))
          }
        })
        const secrets = yield* makeTestSecrets({})
        const user = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ usr: string }>`SELECT current_user AS usr`
          return rows[0]?.usr
        }).pipe(Effect.provide(clientLayer(settings, secrets)))
        assert.strictEqual(user, "app")
      }))

    it.scoped("refuses a mutual-TLS server without a client certificate: ConnectionRejected (28000)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
        })
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "ConnectionRejected")
        if (error._tag === "ConnectionRejected") {
          assert.strictEqual(error.code, "28000")
          expect(error.message).toContain("DB_SSL_CERT")
        }
      }))

    it.scoped("a client certificate whose CN is another user fails with ConnectionRejected (28000)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
        })
        const other = yield* pki.client("someone-else")
        const error = yield* startupError(
          makeSettings(server, pki, { tls: { cert: file(other.certPath), key: file(other.keyPath) } })
        )
        assert.deepStrictEqual([error._tag, "code" in error ? error.code : undefined], ["ConnectionRejected", "28000"])
        expect(error.message).toContain("CN is the user name")
      }))

    it.scoped("a client certificate from a CA the server does not trust fails with ConnectionRejected", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
        })
        const foreign = pki.unknownCa
        const error = yield* startupError(
          makeSettings(server, pki, { tls: { cert: file(foreign.certPath), key: file(foreign.keyPath) } })
        )
        assert.strictEqual(error._tag, "ConnectionRejected")
      }))

    it.scoped("a certificate from an unknown CA fails with CertificateUntrusted naming DB_SSL_CA", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.unknownCa })
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "CertificateUntrusted")
        expect(error.message).toMatch(/set DB_SSL_CA to the CA that signed the server certificate/i)
      }))

    it.scoped("an expired certificate fails with CertificateExpired (CERT_HAS_EXPIRED)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.expired })
        const error = yield* startupError(makeSettings(server, pki))
        assert.deepStrictEqual([error._tag, "code" in error ? error.code : undefined], [
          "CertificateExpired",
          "CERT_HAS_EXPIRED"
        ])
      }))

    it.scoped("a certificate that is not valid yet fails with CertificateExpired (CERT_NOT_YET_VALID)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.notYetValid })
        const error = yield* startupError(makeSettings(server, pki))
        assert.deepStrictEqual([error._tag, "code" in error ? error.code : undefined], [
          "CertificateExpired",
          "CERT_NOT_YET_VALID"
        ])
      }))

    it.scoped("a certificate for another host fails with CertificateHostMismatch", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.wrongHost })
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "CertificateHostMismatch")
      }))

    it.scoped("a certificate with its host only in the CN (no subjectAltName) is refused in production, warned about once in development", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.cnOnly })
        // Node's CN fallback applies to DNS names only: connect by name
        const byName = { host: "localhost", port: server.port }
        const error = yield* startupError(makeSettings(byName, pki, { environment: "production" }))
        assert.strictEqual(error._tag, "CertificateHostMismatch")
        expect(error.message).toContain("no subjectAltName")
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(APP_PASSWORD)
        yield* startup(makeSettings(byName, pki), secrets).pipe(Effect.provide(logs.layer))
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN" && l.text.includes("no subjectAltName"))
        assert.strictEqual(warnings.length, 1)
      }))

    it.scoped("a server certificate made for clients (INVALID_PURPOSE) is a certificate error naming extendedKeyUsage, in production and development", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.clientPurpose })
        for (const environment of ["production", "development"] as const) {
          const error = yield* startupError(makeSettings(server, pki, { environment }))
          assert.deepStrictEqual([error._tag, "code" in error ? error.code : undefined], ["CertificateUntrusted", "INVALID_PURPOSE"])
          expect(error.message).toContain("extendedKeyUsage=serverAuth")
        }
      }))

    it.scoped("a revoked server certificate is refused with CertificateRevoked when DB_SSL_CRL lists it; a valid one still connects", () =>
      Effect.gen(function*() {
        const env = yield* TestDatabase.TestDatabase
        const crl = { crl: file(env.pki.crl.path) }
        yield* configure({ certificate: env.pki.revoked })
        for (const environment of ["production", "development"] as const) {
          const error = yield* startupError(makeSettings(env.server, env.pki, { environment, tls: crl }))
          assert.deepStrictEqual([error._tag, "code" in error ? error.code : undefined], ["CertificateRevoked", "CERT_REVOKED"])
          expect(error.message).toContain("revoked")
        }
        const { pki, server } = yield* configure()
        yield* startup(makeSettings(server, pki, { tls: crl }), yield* secretsWith(APP_PASSWORD))
      }))

    it.scoped("checks the certificate of every new connection: a live switch to a 1024-bit key is refused in production, warned about in development", () =>
      Effect.gen(function*() {
        const env = yield* TestDatabase.TestDatabase
        const query = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ one: number }>`SELECT 1 AS one`)
        const dropOurConnections = env.server.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'takumi-db-test'"
        ).pipe(Effect.orDie)
        for (const environment of ["production", "development"] as const) {
          const { pki, server } = yield* configure()
          const logs = yield* makeLogCapture
          const secrets = yield* secretsWith(APP_PASSWORD)
          const outcome = yield* Effect.gen(function*() {
            yield* query
            yield* server.reload({ ...baseline(env), certificate: pki.rsa1024 }).pipe(Effect.orDie)
            yield* dropOurConnections
            // the pool may hand out its terminated idle connection once before pg reports it dead:
            // that loss is retried (a new connection follows); a weak-key refusal is not
            const weakKey = (e: unknown) => /WeakRsaKey|certificate key too weak/.test(inspect(e, { depth: 8 }))
            return yield* Effect.either(query.pipe(Effect.retry({ while: (e) => !weakKey(e), times: 2 })))
          }).pipe(
            Effect.provide(clientLayer(makeSettings(server, pki, { environment }), secrets)),
            Effect.provide(logs.layer)
          )
          const weakKeyWarnings = (yield* logs.lines).filter((l) => l.level === "WARN" && l.text.includes("WeakRsaKey"))
          if (environment === "production" || opensslRefusesWeakKeys(pki)) {
            assert.isTrue(outcome._tag === "Left", "a new connection to the 1024-bit certificate must be refused")
            // our own finding, or (OpenSSL at security level 2) the TLS stack's refusal of the key
            expect(inspect(outcome, { depth: 8 })).toMatch(/WeakRsaKey|certificate key too weak/)
          } else {
            assert.strictEqual(outcome._tag, "Right")
            assert.strictEqual(weakKeyWarnings.length, 1)
          }
        }
        yield* configure()
      }))

    it.effect("a server with ssl off fails with SslNotSupportedByServer (no plaintext fallback)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ ssl: false, hba: PgTestServer.defaultHba(false) })
        // back to TLS in two steps: PostgreSQL checks hostssl lines against the ssl in force
        yield* Effect.addFinalizer(() =>
          server.reload({ ssl: true, hba: PgTestServer.defaultHba(false) }).pipe(Effect.orDie)
        )
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "SslNotSupportedByServer")
      }).pipe(Effect.scoped))

    it.scoped("a TLS 1.1-only server fails with TlsProtocolRejected", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({
          minTlsVersion: "TLSv1",
          maxTlsVersion: "TLSv1.1",
          ciphers: "DEFAULT:@SECLEVEL=0"
        })
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "TlsProtocolRejected")
      }))

    it.scoped("a server offering only weak TLS 1.2 ciphers fails the handshake with TlsProtocolRejected", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ maxTlsVersion: "TLSv1.2", ciphers: "AES256-SHA" })
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "TlsProtocolRejected")
        expect(error.message).toContain("AES-GCM or ChaCha20-Poly1305")
      }))
  })

  describe("server refusals", () => {
    it.scoped("a wrong password fails with AuthenticationFailed after one re-read of the secret", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const secrets = yield* secretsWith("not-the-password")
        const error = yield* Effect.flip(startup(makeSettings(server, pki), secrets))
        assert.strictEqual(error._tag, "AuthenticationFailed")
        assert.strictEqual(yield* secrets.invalidations, 1)
        assert.strictEqual(yield* secrets.gets, 2)
      }))

    it.scoped("a password secret that cannot be read fails with the secrets backend's own typed error", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const secrets = yield* makeTestSecrets({})
        const error = yield* Effect.flip(startup(makeSettings(server, pki), secrets))
        assert.strictEqual(error._tag, "SecretNotFound")
      }))

    it.scoped("a client without TLS against a hostssl-only server fails with ConnectionRejected asking for DB_SSL=true", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const error = yield* startupError(makeSettings(server, pki, { tls: { enabled: false } }))
        assert.strictEqual(error._tag, "ConnectionRejected")
        expect(error.message).toContain("DB_SSL=true")
      }))

    it.scoped("an unknown database fails with DatabaseNotFound (3D000)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const error = yield* startupError(makeSettings(server, pki, { database: "nope" }))
        assert.strictEqual(error._tag, "DatabaseNotFound")
        if (error._tag === "DatabaseNotFound") assert.strictEqual(error.code, "3D000")
      }))

    it.effect("a role out of connection slots fails with TooManyConnections (53300)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        yield* Effect.acquireRelease(
          server.query("ALTER ROLE app CONNECTION LIMIT 0"),
          () => server.query("ALTER ROLE app CONNECTION LIMIT -1").pipe(Effect.orDie)
        ).pipe(Effect.orDie)
        const error = yield* startupError(makeSettings(server, pki))
        assert.strictEqual(error._tag, "TooManyConnections")
      }).pipe(Effect.scoped))

    it.scoped("nothing listening fails with ConnectionRefused", () =>
      Effect.gen(function*() {
        const { pki } = yield* TestDatabase.TestDatabase
        // a port that was just free: bind, read, close
        const port = yield* BlackholeServer.make.pipe(Effect.map((b) => b.port), Effect.scoped)
        const error = yield* startupError(makeSettings({ host: "127.0.0.1", port }, pki))
        assert.strictEqual(error._tag, "ConnectionRefused")
      }))

    it.effect("a server that accepts TCP and never answers fails with ConnectTimeout within the bound", () =>
      Effect.gen(function*() {
        const { pki } = yield* TestDatabase.TestDatabase
        const blackhole = yield* BlackholeServer.make
        const settings = makeSettings(blackhole, pki, { connectTimeout: Duration.millis(300) })
        const [elapsed, error] = yield* Effect.timed(startupError(settings))
        assert.strictEqual(error._tag, "ConnectTimeout")
        // bounded: pg's own connect timeout (300 ms) ends it, the startup deadline (2 × 300 + 500 ms)
        // at the latest; the rest is room for a loaded 2-core machine. Unbounded, a server that
        // never answers would hold startup until the test's own timeout.
        expect(Duration.toMillis(elapsed)).toBeGreaterThanOrEqual(280)
        expect(Duration.toMillis(elapsed)).toBeLessThanOrEqual(2 * 300 + 500 + 3000)
        expect(yield* blackhole.accepted).toBeGreaterThan(0)
      }).pipe(Effect.scoped))
  })

  describe("startup posture", () => {
    it.scoped("refuses a superuser role in production with InsecureServer and leaves no connection behind", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const settings = makeSettings(server, pki, { environment: "production", user: "boss", database: "postgres" })
        const error = yield* startupError(settings, SUPER_PASSWORD)
        assert.strictEqual(error._tag, "InsecureServer")
        if (error._tag === "InsecureServer") {
          expect(error.findings.map((f) => f.rule)).toEqual(["SuperuserRole"])
        }
        assert.strictEqual(yield* eventually(ourBackends(server), (n) => n === 0), 0)
      }))

    it.scoped("only warns about a superuser role in development", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(SUPER_PASSWORD)
        const settings = makeSettings(server, pki, { user: "boss", database: "postgres" })
        yield* startup(settings, secrets).pipe(Effect.provide(logs.layer))
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
        expect(warnings.some((w) => w.includes("superuser") && w.includes("SuperuserRole"))).toBe(true)
      }))

    it.scoped("refuses a well-known default password in production", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const settings = makeSettings(server, pki, { environment: "production", user: "lazy", database: "postgres" })
        const error = yield* startupError(settings, "postgres")
        assert.strictEqual(error._tag, "InsecureServer")
        if (error._tag === "InsecureServer") expect(error.findings.map((f) => f.rule)).toEqual(["DefaultPassword"])
      }))

    it.scoped("warns about a plaintext connection in development and refuses it in production (TlsNotNegotiated)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ hba: [{ type: "host", method: "scram-sha-256" }] })
        const plaintext = { tls: { enabled: false } }
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(APP_PASSWORD)
        yield* startup(makeSettings(server, pki, plaintext), secrets).pipe(Effect.provide(logs.layer))
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
        expect(warnings.some((w) => w.includes("TlsNotNegotiated"))).toBe(true)
        const error = yield* startupError(makeSettings(server, pki, { ...plaintext, environment: "production" }))
        assert.strictEqual(error._tag, "InsecureServer")
        if (error._tag === "InsecureServer") expect(error.findings.map((f) => f.rule)).toEqual(["TlsNotNegotiated"])
      }))

    it.scoped("warns about a self-signed server certificate in development and refuses it in production", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.selfSigned })
        const tls = { ca: file(pki.selfSigned.certPath) }
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(APP_PASSWORD)
        yield* startup(makeSettings(server, pki, { tls }), secrets).pipe(Effect.provide(logs.layer))
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
        expect(warnings.some((w) => w.includes("SelfSignedCertificate"))).toBe(true)
        const error = yield* startupError(makeSettings(server, pki, { tls, environment: "production" }))
        assert.strictEqual(error._tag, "InsecureServer")
      }))

    it.scoped("warns about a server certificate with a 1024-bit RSA key (refused as WeakRsaKey where OpenSSL itself refuses it)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.rsa1024 })
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(APP_PASSWORD)
        if (opensslRefusesWeakKeys(pki)) {
          const error = yield* Effect.flip(startup(makeSettings(server, pki), secrets))
          assert.strictEqual(error._tag, "InsecureServer")
          expect(error.message).toContain("WeakRsaKey")
          return
        }
        yield* startup(makeSettings(server, pki), secrets).pipe(Effect.provide(logs.layer))
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
        expect(warnings.some((w) => w.includes("WeakRsaKey") && w.includes("1024-bit"))).toBe(true)
      }))

    it.scoped("refuses at startup, in production, a server certificate with a 1024-bit RSA key (InsecureServer, WeakRsaKey)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.rsa1024 })
        const error = yield* startupError(makeSettings(server, pki, { environment: "production" }))
        if (error._tag !== "InsecureServer") return assert.fail(`expected InsecureServer: ${error.message}`)
        expect(error.findings.map((f) => f.rule)).toContain("WeakRsaKey")
        expect(error.message).not.toContain(APP_PASSWORD)
      }))

    it.scoped("raises a warning when the server certificate expires within the alert window", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.expiringSoon })
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(APP_PASSWORD)
        yield* startup(makeSettings(server, pki), secrets).pipe(Effect.provide(logs.layer))
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
        expect(warnings.some((w) => w.includes("CertificateExpiring"))).toBe(true)
      }))

    it.effect("ignores PGSSLMODE, PGHOST, PGPORT, PGUSER, PGPASSWORD and friends", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const hostile: Record<string, string> = {
          PGSSLMODE: "disable",
          PGHOST: "192.0.2.1",
          PGPORT: "1",
          PGUSER: "boss",
          PGPASSWORD: "wrong",
          PGDATABASE: "postgres",
          PGAPPNAME: "hijacked",
          PGOPTIONS: "-c search_path=hijacked",
          PGSSLNEGOTIATION: "direct",
          PGREPLICATION: "database",
          PGCLIENT_ENCODING: "LATIN1",
          PGCONNECT_TIMEOUT: "1"
        }
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const saved = Object.fromEntries(Object.keys(hostile).map((k) => [k, process.env[k]]))
            Object.assign(process.env, hostile)
            return saved
          }),
          (saved) =>
            Effect.sync(() => {
              for (const [k, v] of Object.entries(saved)) {
                if (v === undefined) delete process.env[k]
                else process.env[k] = v
              }
            })
        )
        const secrets = yield* secretsWith(APP_PASSWORD)
        const row = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<
            { ssl: boolean; usr: string; db: string; app: string; path: string; encoding: string; kind: string }
          >`
            SELECT s.ssl, current_user AS usr, current_database() AS db,
                   current_setting('application_name') AS app, current_setting('search_path') AS path,
                   current_setting('client_encoding') AS encoding, a.backend_type AS kind
            FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid WHERE s.pid = pg_backend_pid()`
          return rows[0]
        }).pipe(Effect.provide(clientLayer(makeSettings(server, pki), secrets)))
        assert.deepStrictEqual(row, {
          ssl: true,
          usr: "app",
          db: "app",
          app: "takumi-db-test",
          path: "\"$user\", public",
          encoding: "UTF8",
          kind: "client backend"
        })
      }).pipe(Effect.scoped))
  })

  describe("running", () => {
    it.effect("rotates the password under a steady stream of queries with zero failed queries", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        yield* Effect.addFinalizer(() => server.query(`ALTER ROLE app PASSWORD '${APP_PASSWORD}'`).pipe(Effect.orDie))
        const secrets = yield* secretsWith(APP_PASSWORD)
        const logs = yield* makeLogCapture
        const settings = makeSettings(server, pki, { pool: { min: 0, max: 8 } })
        const context = yield* Layer.build(clientLayer(settings, secrets)).pipe(Effect.provide(logs.layer))
        const sql = Context.get(context, SqlClient.SqlClient)
        const ok = yield* Ref.make(0)
        const failed = yield* Ref.make(0)
        const one = sql`SELECT 1 AS one`.pipe(
          Effect.matchEffect({
            onFailure: () => Ref.update(failed, (n) => n + 1),
            onSuccess: () => Ref.update(ok, (n) => n + 1)
          })
        )
        // two workers keep two connections busy the whole time
        const stream = yield* Effect.fork(Effect.forever(one).pipe(Effect.zip(Effect.forever(one), { concurrent: true })))
        yield* eventually(Ref.get(ok), (n) => n >= 50)
        const before = yield* ourBackends(server)

        // the rotation: the role's password changes, then the secret store; the backend's cache still holds the old one
        yield* server.query(`ALTER ROLE app PASSWORD '${ROTATED_PASSWORD}'`).pipe(Effect.orDie)
        yield* secrets.rotate("DB_PASSWORD", ROTATED_PASSWORD)
        // a burst that needs new connections
        yield* Effect.all(Array.from({ length: 6 }, () => sql`SELECT pg_sleep(0.2)`), { concurrency: "unbounded" })
        const during = yield* Ref.get(ok)
        yield* eventually(Ref.get(ok), (n) => n >= during + 50)
        yield* Fiber.interrupt(stream)

        assert.strictEqual(yield* Ref.get(failed), 0)
        expect(yield* ourBackends(server)).toBeGreaterThan(before)
        expect(yield* secrets.invalidations).toBeGreaterThanOrEqual(1)
        const lines = yield* logs.lines
        expect(lines.some((l) => l.text.includes("refused the cached password (28P01)"))).toBe(true)
        for (const line of lines) {
          expect(line.text).not.toContain(APP_PASSWORD)
          expect(line.text).not.toContain(ROTATED_PASSWORD)
        }
      }).pipe(Effect.scoped))

    it.effect("survives a server restart while the pool is idle: no crash, the next query succeeds", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const logs = yield* makeLogCapture
        const secrets = yield* secretsWith(APP_PASSWORD)
        const settings = makeSettings(server, pki, { pool: { min: 0, max: 4 } })
        const context = yield* Layer.build(clientLayer(settings, secrets)).pipe(Effect.provide(logs.layer))
        const sql = Context.get(context, SqlClient.SqlClient)
        // three idle connections in the pool
        yield* Effect.all(Array.from({ length: 3 }, () => sql`SELECT pg_sleep(0.05)`), { concurrency: "unbounded" })
        const uncaught = yield* Deferred.make<unknown>()
        const onUncaught = (error: unknown) => Effect.runSync(Deferred.succeed(uncaught, error))
        yield* Effect.acquireRelease(
          Effect.sync(() => process.on("uncaughtException", onUncaught)),
          () => Effect.sync(() => process.off("uncaughtException", onUncaught))
        )

        yield* server.restart().pipe(Effect.orDie)
        const lost = yield* eventually(
          logs.lines.pipe(Effect.map((lines) => lines.filter((l) => l.text.includes("Idle PostgreSQL connection lost")))),
          (l) => l.length >= 3
        )
        const rows = yield* sql<{ one: number }>`SELECT 1 AS one`.pipe(
          Effect.retry({ times: 3, schedule: Schedule.spaced("50 millis") })
        )
        assert.deepStrictEqual(rows, [{ one: 1 }])
        expect(lost.length).toBeGreaterThanOrEqual(3)
        expect(lost[0]?.text).toContain("ConnectionLost")
        assert.isTrue(Option.isNone(yield* Deferred.poll(uncaught)))
      }).pipe(Effect.scoped))

    it.scoped("closing the layer ends the pool: no server-side connection of ours remains", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const secrets = yield* secretsWith(APP_PASSWORD)
        const settings = makeSettings(server, pki, { applicationName: "takumi-db-close" })
        yield* Effect.gen(function*() {
          const context = yield* Layer.build(clientLayer(settings, secrets))
          const sql = Context.get(context, SqlClient.SqlClient)
          yield* Effect.all(Array.from({ length: 3 }, () => sql`SELECT pg_sleep(0.05)`), { concurrency: "unbounded" })
          expect(yield* ourBackends(server, "takumi-db-close")).toBeGreaterThanOrEqual(3)
        }).pipe(Effect.scoped)
        assert.strictEqual(yield* eventually(ourBackends(server, "takumi-db-close"), (n) => n === 0), 0)
      }))

    it.scoped("never puts the password into errors or logs (JSON, inspect, Cause.pretty)", () =>
      Effect.gen(function*() {
        const { pki, server } = yield* configure()
        const logs = yield* makeLogCapture
        const wrong = "wrong-Pa55word-a8c2f1"
        const secrets = yield* secretsWith(wrong)
        const exit = yield* Effect.exit(startup(makeSettings(server, pki), secrets)).pipe(Effect.provide(logs.layer))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const rendered = [
            Cause.pretty(exit.cause),
            JSON.stringify(exit.cause),
            inspect(exit.cause, { depth: 10 }),
            inspect(Cause.squash(exit.cause), { depth: 10, showHidden: true }),
            ...(yield* logs.lines).map((l) => l.text)
          ]
          for (const text of rendered) {
            expect(text).not.toContain(wrong)
            expect(text).not.toContain(APP_PASSWORD)
          }
        }
      }))
  })
})
