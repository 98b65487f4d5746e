/**
 * A throwaway public-key infrastructure generated at test time: a trusted CA, a server
 * certificate for `localhost` / `127.0.0.1`, client certificates with CN = role, and the broken
 * certificates every TLS failure test needs. No private key is ever committed.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Certificates from "./internal/certificates.js"
import * as LeakGuard from "./LeakGuard.js"

/**
 * A certificate and its private key, both as PEM text and as files in the PKI's directory.
 *
 * @since 0.1.0
 * @category models
 */
export interface CertificateFiles {
  /** PEM, ends with a newline. */
  readonly certPem: string
  /** PKCS#8 PEM, unencrypted, ends with a newline. */
  readonly keyPem: string
  /** Path of `certPem` on disk (root-owned, 0644). */
  readonly certPath: string
  /** Path of `keyPem` on disk (owner-only, 0600). */
  readonly keyPath: string
}

/**
 * The generated PKI.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestPki {
  /** Temporary directory holding every file; removed when the scope closes. */
  readonly dir: string
  /** The trusted test CA. */
  readonly ca: CertificateFiles
  /** SAN DNS:localhost, IP:127.0.0.1; signed by `ca`; valid for a year. */
  readonly server: CertificateFiles
  /** Right SANs, signed by `ca`, notAfter in the past. */
  readonly expired: CertificateFiles
  /** Right SANs, signed by `ca`, notBefore in the future. */
  readonly notYetValid: CertificateFiles
  /** SAN only DNS:wrong.example.com; signed by `ca`. */
  readonly wrongHost: CertificateFiles
  /** Right SANs, signed by `unknownCaRoot` (a CA nobody trusts). */
  readonly unknownCa: CertificateFiles
  /** The untrusted CA behind `unknownCa`. */
  readonly unknownCaRoot: CertificateFiles
  /** Right SANs, signed by `ca`, with a 1024-bit RSA key. */
  readonly rsa1024: CertificateFiles
  /** Right SANs, self-signed end-entity certificate (not a CA). */
  readonly selfSigned: CertificateFiles
  /** Right SANs, signed by `ca`, expires 10 days from generation. */
  readonly expiringSoon: CertificateFiles
  /** CN=localhost and no subjectAltName at all, signed by `ca` (Node falls back to the CN for a DNS host). */
  readonly cnOnly: CertificateFiles
  /** Right SANs, signed by `ca`, but extendedKeyUsage clientAuth only (OpenSSL: INVALID_PURPOSE as a server). */
  readonly clientPurpose: CertificateFiles
  /** Right SANs, signed by `ca`, and listed in `crl`. */
  readonly revoked: CertificateFiles
  /**
   * Right SANs, signed by `ca`, valid, but not `server`'s certificate (another key): what an attacker
   * holding a mis-issued certificate presents. Only channel binding tells it from `server`.
   */
  readonly interceptor: CertificateFiles
  /** A CRL of `ca` (PEM, and its file) revoking `revoked` and nothing else. */
  readonly crl: { readonly pem: string; readonly path: string }
  /** A client certificate with CN = `role` and extendedKeyUsage clientAuth, signed by `ca`. */
  readonly client: (role: string) => Effect.Effect<CertificateFiles>
}

/**
 * The PKI could not be generated or written to disk.
 *
 * @since 0.1.0
 * @category errors
 */
export class TestPkiError extends Schema.TaggedError<TestPkiError>()("TestPkiError", {
  operation: Schema.String,
  message: Schema.String
}) {}

const DAY = 24 * 60 * 60 * 1000

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const attempt = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, TestPkiError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) =>
      new TestPkiError({ operation, message: `TestPki: ${operation} failed: ${describe(cause)}` })
  })

const writeFiles = (
  dir: string,
  name: string,
  certPem: string,
  keyPem: string
): Promise<CertificateFiles> => {
  const certPath = Path.join(dir, `${name}.crt`)
  const keyPath = Path.join(dir, `${name}.key`)
  return Promise.all([
    Fs.writeFile(certPath, certPem, { mode: 0o644 }),
    Fs.writeFile(keyPath, keyPem, { mode: 0o600 })
  ]).then(() => ({ certPem, keyPem, certPath, keyPath }))
}

const generate = async (dir: string, now: number): Promise<TestPki> => {
  // Key generation dominates the cost, so generate the pairs in parallel (libuv thread pool) and
  // share one pair across the broken leaves: their defect is the certificate, never the key.
  const [caKeys, otherCaKeys, serverKeys, brokenKeys, clientKeys, weakKeys] = await Promise.all([
    Certificates.generateKeyPair(2048),
    Certificates.generateKeyPair(2048),
    Certificates.generateKeyPair(2048),
    Certificates.generateKeyPair(2048),
    Certificates.generateKeyPair(2048),
    Certificates.generateKeyPair(1024)
  ])
  const notBefore = new Date(now - DAY)
  const notAfter = new Date(now + 365 * DAY)
  const ca: Certificates.Issuer = { name: "CN=Takumi Test CA,O=Takumi DB tests", keys: caKeys }
  const otherCa: Certificates.Issuer = { name: "CN=Unknown Test CA,O=Nobody trusts me", keys: otherCaKeys }
  const rightSans = { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] } as const
  const serverLeaf = (subject: string, keys: Certificates.KeyPair, issuer: Certificates.Issuer | "self") => ({
    subject,
    keys,
    issuer,
    notBefore,
    notAfter,
    ...rightSans,
    usage: "server" as const
  })
  const [brokenKeyPem, serverKeyPem, clientKeyPem, weakKeyPem, caKeyPem, otherCaKeyPem] = await Promise.all([
    Certificates.privateKeyPem(brokenKeys),
    Certificates.privateKeyPem(serverKeys),
    Certificates.privateKeyPem(clientKeys),
    Certificates.privateKeyPem(weakKeys),
    Certificates.privateKeyPem(caKeys),
    Certificates.privateKeyPem(otherCaKeys)
  ])
  for (const pem of [brokenKeyPem, serverKeyPem, clientKeyPem, weakKeyPem, caKeyPem, otherCaKeyPem]) {
    LeakGuard.registerPrivateKeyUnsafe(pem, "TestPki private key")
  }
  const [
    caPem,
    otherCaPem,
    serverPem,
    expiredPem,
    notYetValidPem,
    wrongHostPem,
    unknownCaPem,
    rsa1024Pem,
    selfSignedPem,
    expiringSoonPem,
    cnOnlyPem,
    clientPurposePem,
    revokedPem,
    interceptorPem
  ] = await Promise.all([
      Certificates.createCa({ name: ca.name, keys: caKeys, notBefore, notAfter: new Date(now + 3650 * DAY) }),
      Certificates.createCa({ name: otherCa.name, keys: otherCaKeys, notBefore, notAfter: new Date(now + 3650 * DAY) }),
      Certificates.createLeaf(serverLeaf("CN=localhost", serverKeys, ca)),
      Certificates.createLeaf({
        ...serverLeaf("CN=localhost (expired)", brokenKeys, ca),
        notBefore: new Date(now - 30 * DAY),
        notAfter: new Date(now - DAY)
      }),
      Certificates.createLeaf({
        ...serverLeaf("CN=localhost (not yet valid)", brokenKeys, ca),
        notBefore: new Date(now + 30 * DAY),
        notAfter: new Date(now + 60 * DAY)
      }),
      Certificates.createLeaf({
        ...serverLeaf("CN=wrong.example.com", brokenKeys, ca),
        dnsNames: ["wrong.example.com"],
        ipAddresses: []
      }),
      Certificates.createLeaf(serverLeaf("CN=localhost (unknown CA)", brokenKeys, otherCa)),
      Certificates.createLeaf(serverLeaf("CN=localhost (rsa1024)", weakKeys, ca)),
      Certificates.createLeaf(serverLeaf("CN=localhost", brokenKeys, "self")),
      Certificates.createLeaf({
        ...serverLeaf("CN=localhost (expiring soon)", brokenKeys, ca),
        notAfter: new Date(now + 10 * DAY)
      }),
      Certificates.createLeaf({ ...serverLeaf("CN=localhost", brokenKeys, ca), dnsNames: [], ipAddresses: [] }),
      Certificates.createLeaf({ ...serverLeaf("CN=localhost (client purpose)", brokenKeys, ca), usage: "client" }),
      Certificates.createLeaf(serverLeaf("CN=localhost (revoked)", brokenKeys, ca)),
      Certificates.createLeaf(serverLeaf("CN=localhost (interceptor)", brokenKeys, ca))
    ])
  const crlPem = await Certificates.createCrl({ issuer: ca, revoked: [revokedPem], thisUpdate: notBefore })
  const crlPath = Path.join(dir, "ca.crl")
  const [
    caFiles,
    server,
    expired,
    notYetValid,
    wrongHost,
    unknownCa,
    unknownCaRoot,
    rsa1024,
    selfSigned,
    expiringSoon,
    cnOnly,
    clientPurpose,
    revoked,
    interceptor
  ] = await Promise.all([
      writeFiles(dir, "ca", caPem, caKeyPem),
      writeFiles(dir, "server", serverPem, serverKeyPem),
      writeFiles(dir, "expired", expiredPem, brokenKeyPem),
      writeFiles(dir, "not-yet-valid", notYetValidPem, brokenKeyPem),
      writeFiles(dir, "wrong-host", wrongHostPem, brokenKeyPem),
      writeFiles(dir, "unknown-ca", unknownCaPem, brokenKeyPem),
      writeFiles(dir, "unknown-ca-root", otherCaPem, otherCaKeyPem),
      writeFiles(dir, "rsa1024", rsa1024Pem, weakKeyPem),
      writeFiles(dir, "self-signed", selfSignedPem, brokenKeyPem),
      writeFiles(dir, "expiring-soon", expiringSoonPem, brokenKeyPem),
      writeFiles(dir, "cn-only", cnOnlyPem, brokenKeyPem),
      writeFiles(dir, "client-purpose", clientPurposePem, brokenKeyPem),
      writeFiles(dir, "revoked", revokedPem, brokenKeyPem),
      writeFiles(dir, "interceptor", interceptorPem, brokenKeyPem),
      Fs.writeFile(crlPath, crlPem, { mode: 0o644 })
    ])
  const clients = new Map<string, Promise<CertificateFiles>>()
  const client = (role: string): Effect.Effect<CertificateFiles> =>
    Effect.promise(() => {
      const cached = clients.get(role)
      if (cached !== undefined) return cached
      const created = Certificates.createLeaf({
        subject: `CN=${role.replace(/([,+"\\<>;=])/g, "\\$1")}`,
        keys: clientKeys,
        issuer: ca,
        notBefore,
        notAfter,
        dnsNames: [],
        ipAddresses: [],
        usage: "client"
      }).then((pem) =>
        writeFiles(dir, `client-${Buffer.from(role).toString("hex")}`, pem, clientKeyPem)
      )
      clients.set(role, created)
      return created
    })
  return {
    dir,
    ca: caFiles,
    server,
    expired,
    notYetValid,
    wrongHost,
    unknownCa,
    unknownCaRoot,
    rsa1024,
    selfSigned,
    expiringSoon,
    cnOnly,
    clientPurpose,
    revoked,
    interceptor,
    crl: { pem: crlPem, path: crlPath },
    client
  }
}

/**
 * Generates a fresh PKI into a temporary directory that is removed when the scope closes.
 * Takes a few hundred milliseconds (six RSA key pairs generated in parallel).
 *
 * Validity windows are computed from the wall clock on purpose: OpenSSL checks them against real
 * time, so a `TestClock` in the calling test must not move them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<TestPki, TestPkiError, Scope.Scope> = Effect.gen(function*() {
  const now = yield* Clock.currentTimeMillis.pipe(Effect.withClock(Clock.make()))
  const dir = yield* Effect.acquireRelease(
    attempt("create temp dir", () => Fs.mkdtemp(Path.join(Os.tmpdir(), "takumi-pki-"))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )
  return yield* attempt("generate certificates", () => generate(dir, now))
})
