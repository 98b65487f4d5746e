/**
 * The TLS options handed to `pg`, built from the settings only. This is the one place that reads
 * certificate files.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { DbSettings, PemSource } from "@takumi/config"
import { TlsMaterialInvalid } from "../DbError.js"
import * as CertificatePosture from "./certificatePosture.js"
import { errorCode, errorMessage } from "./classify.js"

/**
 * TLS 1.3 suites: all three are AEAD (AES-GCM, ChaCha20-Poly1305). Listed explicitly because
 * Node's `ciphers` option replaces the TLS 1.3 suites as well: a list without them would
 * silently switch TLS 1.3 off.
 */
export const tls13Suites: ReadonlyArray<string> = [
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "TLS_AES_128_GCM_SHA256"
]

/**
 * TLS 1.2 ciphers: forward secrecy (ECDHE) with an AEAD (AES-GCM, ChaCha20-Poly1305) only —
 * the requirements' "strong ciphers" (no CBC, no static RSA key exchange, no SHA-1 MACs).
 */
export const tls12Ciphers: ReadonlyArray<string> = [
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256"
]

/** The cipher string the client offers: nothing outside the strong set is ever negotiated. */
export const cipherList: string = [...tls13Suites, ...tls12Ciphers].join(":")

const strongNames = new Set([...tls13Suites, ...tls12Ciphers])

/** True when an OpenSSL (or IANA, for TLS 1.3) cipher name is in the strong set. */
export const isStrongCipher = (name: string): boolean => strongNames.has(name)

/** The protocol versions in order, for "below TLS 1.2" comparisons. */
const protocolRank: Record<string, number> = {
  SSLv3: 0,
  TLSv1: 1,
  "TLSv1.1": 2,
  "TLSv1.2": 3,
  "TLSv1.3": 4
}

/** True when a negotiated protocol (`TLSSocket.getProtocol()`, `pg_stat_ssl.version`) is at least TLS 1.2. */
export const isModernProtocol = (protocol: string): boolean => (protocolRank[protocol] ?? 0) >= 3

/**
 * Read synchronously, on purpose: the files are a few kilobytes on a local mount (a Kubernetes
 * secret volume, a config folder), and `fs.promises.readFile` is four thread-pool round trips
 * (open, stat, read, close) that sit on startup's critical path before the first connection can
 * start — 1–3 ms measured on a 2-core VM, against tens of microseconds blocking the loop.
 */
const readPem = (variable: string, source: PemSource): Effect.Effect<string, TlsMaterialInvalid> => {
  if (source._tag === "Inline") return Effect.succeed(Redacted.value(source.pem))
  return Effect.try({
    try: () => Fs.readFileSync(source.path, "utf8"),
    catch: (cause) => {
      const code = errorCode(cause)
      return new TlsMaterialInvalid({
        variable,
        path: source.path,
        ...(code === undefined ? {} : { code }),
        reason: errorMessage(cause)
      })
    }
  }).pipe(
    Effect.filterOrFail(
      (pem) => pem.includes("-----BEGIN "),
      () => new TlsMaterialInvalid({ variable, path: source.path, reason: "the file holds no PEM block" })
    )
  )
}

/**
 * An encrypted key is decrypted once, here, so that the secure context below needs no
 * passphrase. A wrong passphrase or a key that is not PEM fails now, naming the variable.
 */
const usableKey = (
  pem: string,
  passphrase: Option.Option<Redacted.Redacted<string>>
): Effect.Effect<string, TlsMaterialInvalid> =>
  Option.match(passphrase, {
    onNone: () => Effect.succeed(pem),
    onSome: (secret) =>
      Effect.try({
        try: () =>
          Crypto.createPrivateKey({ key: pem, format: "pem", passphrase: Redacted.value(secret) })
            .export({ type: "pkcs8", format: "pem" })
            .toString(),
        catch: (cause) => {
          const code = errorCode(cause)
          return new TlsMaterialInvalid({
            variable: "DB_SSL_KEY_PASSPHRASE",
            ...(code === undefined ? {} : { code }),
            reason: "the key cannot be decrypted with this passphrase"
          })
        }
      })
  })

const optionalPem = (variable: string, source: Option.Option<PemSource>) =>
  Option.match(source, {
    onNone: () => Effect.succeed(Option.none<string>()),
    onSome: (s) => Effect.map(readPem(variable, s), Option.some)
  })

/** Runs one OpenSSL parse, blaming `variable` when it throws. */
const parsedBy = <A>(variable: string, reason: string, parse: () => A): Effect.Effect<A, TlsMaterialInvalid> =>
  Effect.try({
    try: parse,
    catch: (cause) => {
      const code = errorCode(cause)
      return new TlsMaterialInvalid({ variable, ...(code === undefined ? {} : { code }), reason })
    }
  })

const ifSome = <A>(value: Option.Option<A>, f: (a: A) => Effect.Effect<unknown, TlsMaterialInvalid>) =>
  Option.match(value, { onNone: () => Effect.void, onSome: f })

/** The material `makeTlsOptions` read. */
interface TlsMaterial {
  readonly settings: DbSettings
  readonly ca: Option.Option<string>
  readonly cert: Option.Option<string>
  readonly key: Option.Option<string>
  readonly crl: Option.Option<string>
}

/** The one `SecureContext` of a pool, from all of the material together. */
const combinedContext = (material: TlsMaterial): Tls.SecureContext =>
  Tls.createSecureContext({
    minVersion: material.settings.tls.minVersion,
    ciphers: cipherList,
    ...Option.match(material.ca, { onNone: () => ({}), onSome: (ca) => ({ ca }) }),
    ...Option.match(material.cert, { onNone: () => ({}), onSome: (cert) => ({ cert }) }),
    ...Option.match(material.key, { onNone: () => ({}), onSome: (key) => ({ key }) }),
    ...Option.match(material.crl, { onNone: () => ({}), onSome: (crl) => ({ crl }) })
  })

/**
 * Why the combined context could not be made: each piece is parsed on its own, so that a broken
 * one is blamed on its own variable (OpenSSL's combined error would not say which); what is left
 * when each parses is a key that does not belong to the certificate.
 */
const blame = (material: TlsMaterial): Effect.Effect<Tls.SecureContext, TlsMaterialInvalid> =>
  Effect.gen(function*() {
    yield* ifSome(material.ca, (ca) =>
      parsedBy("DB_SSL_CA", "the CA bundle holds no certificate OpenSSL can read", () => Tls.createSecureContext({ ca })))
    yield* ifSome(material.cert, (cert) =>
      parsedBy("DB_SSL_CERT", "not a PEM certificate OpenSSL can read", () => new Crypto.X509Certificate(cert)))
    yield* ifSome(material.key, (key) =>
      parsedBy("DB_SSL_KEY", "not a PEM private key OpenSSL can read", () => Crypto.createPrivateKey(key)))
    yield* ifSome(material.crl, (crl) =>
      parsedBy("DB_SSL_CRL", "not a PEM certificate revocation list (-----BEGIN X509 CRL-----)", () =>
        Tls.createSecureContext({ crl })))
    return yield* parsedBy("DB_SSL_KEY", "the private key does not belong to the certificate in DB_SSL_CERT", () =>
      combinedContext(material))
  })

/**
 * One `SecureContext` from the material: made at once (one OpenSSL parse of each piece, on the
 * startup path), and only when that fails each piece is parsed again on its own to say which.
 */
const secureContext = (material: TlsMaterial): Effect.Effect<Tls.SecureContext, TlsMaterialInvalid> =>
  Effect.try(() => combinedContext(material)).pipe(Effect.catchAll(() => blame(material)))

/**
 * Builds the `ssl` option for `pg` from the settings, or `false` when TLS is disabled. `false`
 * (never `undefined`) so that `PGSSLMODE` cannot switch TLS on or off behind our back.
 *
 * The certificates, the client key, the CRL, the minimum version and the ciphers all go into one
 * `SecureContext` built here: pg copies `ssl.key` into the options of every socket it opens,
 * where `inspect(pool, { depth: 6 })` would print it; a `SecureContext` holds the key in
 * OpenSSL's memory, where no inspect, JSON or log line reaches it.
 */
export const makeTlsOptions = (
  settings: DbSettings,
  server: { readonly host: string; readonly port: number }
): Effect.Effect<Tls.ConnectionOptions | false, TlsMaterialInvalid, Scope.Scope> =>
  Effect.gen(function*() {
    const tls = settings.tls
    if (!tls.enabled) return false
    const ca = yield* optionalPem("DB_SSL_CA", tls.ca)
    const cert = yield* optionalPem("DB_SSL_CERT", tls.cert)
    const key = yield* optionalPem("DB_SSL_KEY", tls.key)
    const crl = yield* optionalPem("DB_SSL_CRL", tls.crl)
    if (Option.isSome(cert) !== Option.isSome(key)) {
      return yield* new TlsMaterialInvalid({
        variable: Option.isSome(cert) ? "DB_SSL_KEY" : "DB_SSL_CERT",
        reason: "DB_SSL_CERT and DB_SSL_KEY must be set together for mutual TLS"
      })
    }
    const usable = Option.isSome(key) ? Option.some(yield* usableKey(key.value, tls.keyPassphrase)) : Option.none()
    const context = yield* secureContext({ settings, ca, cert, key: usable, crl })
    const posture = yield* CertificatePosture.make(settings, server)
    return {
      rejectUnauthorized: tls.rejectUnauthorized,
      secureContext: context,
      checkServerIdentity: posture.checkServerIdentity,
      // SNI and certificate identity: the DNS name; never an IP address (RFC 6066 §3)
      ...(Net.isIP(server.host) === 0 ? { servername: server.host } : {})
    }
  })
