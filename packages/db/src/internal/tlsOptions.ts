/**
 * The TLS options handed to `pg`, built from the settings only. This is the one place that reads
 * certificate files.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import type * as Tls from "node:tls"
import type { DbSettings, PemSource } from "@takumi/config"
import { TlsMaterialInvalid } from "../DbError.js"
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

const readPem = (variable: string, source: PemSource): Effect.Effect<string, TlsMaterialInvalid> => {
  if (source._tag === "Inline") return Effect.succeed(Redacted.value(source.pem))
  return Effect.tryPromise({
    try: () => Fs.readFile(source.path, "utf8"),
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
 * An encrypted key is decrypted once, here: `pg` passes `ssl.passphrase` on only as an
 * enumerable property (which `inspect(pool)` would print), while it hides `ssl.key` itself.
 * A wrong passphrase or a key that is not PEM fails now, naming the variable.
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

/**
 * Builds the `ssl` option for `pg` from the settings, or `false` when TLS is disabled. `false`
 * (never `undefined`) so that `PGSSLMODE` cannot switch TLS on or off behind our back.
 *
 * The private key is made non-enumerable so that neither `inspect(pool)` nor
 * `JSON.stringify(pool.options)` prints it.
 */
export const makeTlsOptions = (
  settings: DbSettings,
  host: string
): Effect.Effect<Tls.ConnectionOptions | false, TlsMaterialInvalid> =>
  Effect.gen(function*() {
    const tls = settings.tls
    if (!tls.enabled) return false
    const ca = yield* optionalPem("DB_SSL_CA", tls.ca)
    const cert = yield* optionalPem("DB_SSL_CERT", tls.cert)
    const key = yield* optionalPem("DB_SSL_KEY", tls.key)
    if (Option.isSome(cert) !== Option.isSome(key)) {
      return yield* new TlsMaterialInvalid({
        variable: Option.isSome(cert) ? "DB_SSL_KEY" : "DB_SSL_CERT",
        reason: "DB_SSL_CERT and DB_SSL_KEY must be set together for mutual TLS"
      })
    }
    const options: Tls.ConnectionOptions = {
      rejectUnauthorized: tls.rejectUnauthorized,
      minVersion: tls.minVersion,
      ciphers: cipherList,
      // SNI and certificate identity: the DNS name; never an IP address (RFC 6066 §3)
      ...(Net.isIP(host) === 0 ? { servername: host } : {}),
      ...(Option.isSome(ca) ? { ca: ca.value } : {}),
      ...(Option.isSome(cert) ? { cert: cert.value } : {})
    }
    if (Option.isSome(key)) {
      const usable = yield* usableKey(key.value, tls.keyPassphrase)
      // pg copies `key` explicitly (Object.assign skips non-enumerable properties); nothing else
      // of ours may be hidden this way, which is why an encrypted key is decrypted here.
      Object.defineProperty(options, "key", { value: usable, enumerable: false, writable: true, configurable: true })
    }
    return options
  })
