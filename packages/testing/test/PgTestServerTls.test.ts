import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Tls from "node:tls"
import * as Pg from "pg"
import { PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"

// One server for the whole matrix: every TLS setting and pg_hba.conf reloads live, so each case
// is a reload (~50 ms) rather than a new server (~1 s).

interface Fixture {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  readonly appCert: TestPki.CertificateFiles
}
class TlsFixture extends Context.Tag("test/PgTestServerTls/Fixture")<TlsFixture, Fixture>() {}

const FixtureLive = Layer.scoped(
  TlsFixture,
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({ roles: [{ name: "app", password: "app-password" }] })
    const appCert = yield* pki.client("app")
    return { pki, server, appCert }
  })
)

/** Everything back to "TLS on, the good certificate, SCRAM over hostssl". */
const baseline = (fixture: Fixture): Partial<PgTestServer.ServerSettings> => ({
  ssl: true,
  certificate: fixture.pki.server,
  ca: fixture.pki.ca.certPem,
  hba: undefined,
  minTlsVersion: undefined,
  maxTlsVersion: undefined,
  ciphers: undefined
})

type Outcome =
  | { readonly _tag: "Connected"; readonly user: string; readonly ssl: boolean; readonly version: string | null; readonly peerBits: number | undefined }
  | { readonly _tag: "Failed"; readonly code: string | undefined; readonly message: string }

const connect = (
  server: PgTestServer.PgTestServer,
  options: { readonly ssl: Pg.ClientConfig["ssl"]; readonly user?: string; readonly host?: string }
): Effect.Effect<Outcome> =>
  Effect.promise(async () => {
    let peerBits: number | undefined
    const ssl = typeof options.ssl === "object"
      ? {
        ...options.ssl,
        // Called after chain verification succeeded: records the certificate the server sent.
        checkServerIdentity: (host: string, cert: Tls.PeerCertificate) => {
          peerBits = cert.bits
          return (options.ssl && typeof options.ssl === "object" && options.ssl.checkServerIdentity
            ? options.ssl.checkServerIdentity(host, cert)
            : Tls.checkServerIdentity(host, cert))
        }
      }
      : options.ssl
    const client = new Pg.Client({
      host: options.host ?? server.host,
      port: server.port,
      user: options.user ?? "app",
      password: "app-password",
      database: "postgres",
      ssl,
      connectionTimeoutMillis: 10_000
    })
    client.on("error", () => undefined)
    try {
      await client.connect()
      const result = await client.query<{ user: string; ssl: boolean; version: string | null }>(
        "select current_user as user, ssl, version from pg_stat_ssl where pid = pg_backend_pid()"
      )
      const row = result.rows[0]
      return row === undefined
        ? { _tag: "Failed", code: undefined, message: "no pg_stat_ssl row" }
        : { _tag: "Connected", user: row.user, ssl: row.ssl, version: row.version, peerBits }
    } catch (error) {
      const code = error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined
      return { _tag: "Failed", code, message: error instanceof Error ? error.message : String(error) }
    } finally {
      await client.end().catch(() => undefined)
    }
  })

const verifying = (fixture: Fixture, extra: Tls.ConnectionOptions = {}): Pg.ClientConfig["ssl"] => ({
  ca: fixture.pki.ca.certPem,
  rejectUnauthorized: true,
  minVersion: "TLSv1.2",
  ...extra
})

const expectFailure = (outcome: Outcome): { readonly code: string | undefined; readonly message: string } => {
  expect(outcome._tag).toBe("Failed")
  return outcome._tag === "Failed" ? outcome : { code: "(connected)", message: "(connected)" }
}

layer(FixtureLive, { timeout: 60_000 })("PgTestServer TLS configurations", (it) => {
  it.effect("serves the good certificate to a verifying client over TLS 1.2+ (by IP and by name)", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload(baseline(fixture))
      for (const host of ["127.0.0.1", "localhost"]) {
        const outcome = yield* connect(fixture.server, { host, ssl: verifying(fixture) })
        expect(outcome).toMatchObject({ _tag: "Connected", user: "app", ssl: true, peerBits: 2048 })
        if (outcome._tag === "Connected") expect(["TLSv1.2", "TLSv1.3"]).toContain(outcome.version)
      }
    }))

  it.effect("copies the certificate into the data folder with the key owned by the server user, mode 0600", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload(baseline(fixture))
      const key = Fs.statSync(Path.join(fixture.server.dataDir, "server.key"))
      expect(key.mode & 0o777).toBe(0o600)
      expect(key.uid).toBe(Fs.statSync(fixture.server.dataDir).uid)
      expect(Fs.readFileSync(Path.join(fixture.server.dataDir, "server.crt"), "utf8")).toBe(fixture.pki.server.certPem)
      expect(Fs.readFileSync(Path.join(fixture.server.dataDir, "ca.crt"), "utf8")).toBe(fixture.pki.ca.certPem)
    }))

  it.effect("fails an expired server certificate with CERT_HAS_EXPIRED", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.expired })
      expect(expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) })).code).toBe("CERT_HAS_EXPIRED")
    }))

  it.effect("fails a not-yet-valid server certificate with CERT_NOT_YET_VALID", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.notYetValid })
      expect(expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) })).code).toBe("CERT_NOT_YET_VALID")
    }))

  it.effect("fails a certificate for another host with ERR_TLS_CERT_ALTNAME_INVALID", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.wrongHost })
      for (const host of ["127.0.0.1", "localhost"]) {
        expect(expectFailure(yield* connect(fixture.server, { host, ssl: verifying(fixture) })).code).toBe(
          "ERR_TLS_CERT_ALTNAME_INVALID"
        )
      }
    }))

  it.effect("fails a certificate from an unknown CA with UNABLE_TO_VERIFY_LEAF_SIGNATURE", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.unknownCa })
      expect(expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) })).code).toBe(
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
      )
    }))

  it.effect("loads concatenated PEM chains: the good chain verifies, an unknown root in the chain fails with SELF_SIGNED_CERT_IN_CHAIN", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      const chain = (leaf: TestPki.CertificateFiles, root: TestPki.CertificateFiles) => ({
        ...leaf,
        certPem: leaf.certPem + root.certPem
      })
      yield* fixture.server.reload({ ...baseline(fixture), certificate: chain(fixture.pki.server, fixture.pki.ca) })
      expect(yield* connect(fixture.server, { ssl: verifying(fixture) })).toMatchObject({ _tag: "Connected", ssl: true })
      yield* fixture.server.reload({
        ...baseline(fixture),
        certificate: chain(fixture.pki.unknownCa, fixture.pki.unknownCaRoot)
      })
      expect(expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) })).code).toBe(
        "SELF_SIGNED_CERT_IN_CHAIN"
      )
    }))

  it.effect("fails a self-signed leaf with DEPTH_ZERO_SELF_SIGNED_CERT", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.selfSigned })
      expect(expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) })).code).toBe(
        "DEPTH_ZERO_SELF_SIGNED_CERT"
      )
    }))

  it.effect("serves the rsa1024 and expiringSoon certificates, which verify (their flaws are for the client to judge)", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.rsa1024 })
      // security level 0: an OpenSSL at level 2 (Node 24) would refuse the 1024-bit key itself
      expect(yield* connect(fixture.server, { ssl: verifying(fixture, { ciphers: "DEFAULT:@SECLEVEL=0" }) })).toMatchObject({
        _tag: "Connected",
        peerBits: 1024
      })
      yield* fixture.server.reload({ ...baseline(fixture), certificate: fixture.pki.expiringSoon })
      expect(yield* connect(fixture.server, { ssl: verifying(fixture) })).toMatchObject({
        _tag: "Connected",
        peerBits: 2048
      })
    }))

  it.effect("tells a TLS client of a server with ssl off that it does not support SSL (no code)", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({ ...baseline(fixture), ssl: false })
      const failure = expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) }))
      expect(failure.code).toBeUndefined()
      expect(failure.message).toBe("The server does not support SSL connections")
      expect(yield* connect(fixture.server, { ssl: false })).toMatchObject({ _tag: "Connected", ssl: false })
    }))

  it.effect("rejects a plaintext client on a hostnossl reject line with 28000", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({
        ...baseline(fixture),
        hba: [{ type: "hostnossl", method: "reject" }, { type: "hostssl", method: "scram-sha-256" }]
      })
      const failure = expectFailure(yield* connect(fixture.server, { ssl: false }))
      expect(failure.code).toBe("28000")
      expect(failure.message).toContain("no encryption")
      expect(yield* connect(fixture.server, { ssl: verifying(fixture) })).toMatchObject({ _tag: "Connected" })
    }))

  it.effect("requires a client certificate under cert clientcert=verify-full (28000 without one)", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({
        ...baseline(fixture),
        hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
      })
      const failure = expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) }))
      expect(failure.code).toBe("28000")
      expect(failure.message).toContain("connection requires a valid client certificate")
    }))

  it.effect("lets the role in with its own client certificate under mutual TLS", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({
        ...baseline(fixture),
        hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }]
      })
      const ssl = verifying(fixture, { cert: fixture.appCert.certPem, key: fixture.appCert.keyPem })
      expect(yield* connect(fixture.server, { ssl })).toMatchObject({ _tag: "Connected", user: "app", ssl: true })
      yield* fixture.server.createRole({ name: "other", password: "app-password" })
      const wrongUser = expectFailure(yield* connect(fixture.server, { ssl, user: "other" }))
      expect(wrongUser.code).toBe("28000")
      expect(wrongUser.message).toContain("certificate authentication failed")
    }))

  it.effect("refuses a TLS 1.2+ client on a TLS 1.1-only server with EPROTO, yet serves a TLS 1.1 client", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload({
        ...baseline(fixture),
        minTlsVersion: "TLSv1",
        maxTlsVersion: "TLSv1.1",
        ciphers: "DEFAULT:@SECLEVEL=0"
      })
      const failure = expectFailure(yield* connect(fixture.server, { ssl: verifying(fixture) }))
      expect(failure.code).toBe("EPROTO")
      expect(failure.message).toContain("protocol version")
      const legacy = verifying(fixture, { minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT:@SECLEVEL=0" })
      expect(yield* connect(fixture.server, { ssl: legacy })).toMatchObject({ _tag: "Connected", version: "TLSv1.1" })
    }))

  it.effect("fails a reload whose key does not match the certificate and keeps serving the previous one", () =>
    Effect.gen(function*() {
      const fixture = yield* TlsFixture
      yield* fixture.server.reload(baseline(fixture))
      const mismatched = { ...fixture.pki.server, keyPem: fixture.pki.expired.keyPem }
      const error = yield* Effect.flip(fixture.server.reload({ certificate: mismatched }))
      expect(error._tag).toBe("PgTestServerError")
      expect(error.message).toContain("SSL configuration was not reloaded")
      expect(yield* connect(fixture.server, { ssl: verifying(fixture) })).toMatchObject({ _tag: "Connected", ssl: true })
      expect((yield* fixture.server.settings).certificate).toBe(fixture.pki.server)
    }))
})
