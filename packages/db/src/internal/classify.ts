/**
 * Maps what `pg` 8 and Node's `net`/`tls` report into the typed errors of `DbError`. The table
 * follows what `pg` 8.23 was observed to report on this stack (see FACTS.md): SQLSTATEs for
 * server-side refusals, Node codes for socket and certificate failures, and a few bare messages
 * (`pg` reports "The server does not support SSL connections" and its timeouts without a code).
 *
 * @internal
 */
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import {
  SecretAccessDenied,
  type SecretError,
  SecretMalformed,
  SecretNotFound,
  SecretsBackendUnavailable
} from "@takumi/secrets"
import {
  AuthenticationFailed,
  AuthenticationMethodRefused,
  CertificateExpired,
  CertificateHostMismatch,
  CertificateRevoked,
  CertificateUntrusted,
  ChannelBindingFailed,
  type ConnectError,
  ConnectionLost,
  ConnectionRefused,
  ConnectionRejected,
  ConnectTimeout,
  DatabaseNotFound,
  InsecureServer,
  NoSuitableHost,
  PoolExhausted,
  PostureFinding,
  SslNotSupportedByServer,
  TlsMaterialInvalid,
  TlsProtocolRejected,
  TooManyConnections
} from "../DbError.js"
import { NoSuitableHostCause } from "./hosts/session.js"

/** Where the failing connection was going; everything a typed error names. */
export interface ConnectTarget {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly database: string
  readonly connectTimeoutMillis: number
  readonly poolMax: number
}

/** What acquiring a pooled connection can fail with. */
export type AcquireError = ConnectError | PoolExhausted | SecretError

const untrustedCodes = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_REJECTED",
  // a certificate for another purpose (no serverAuth in its extendedKeyUsage): not a lost connection
  "INVALID_PURPOSE",
  "INVALID_CA"
])

const expiredCodes = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"])

/** TLS alerts the server sends when it does not accept our client certificate. */
const clientCertificateRejectedCodes = new Set([
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN"
])

const unreachableCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"])

/** Server shutdown (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now) and resets. */
const lostCodes = new Set(["57P01", "57P02", "57P03", "ECONNRESET", "EPIPE"])

/** True for the secrets errors the password callback rejects with. */
export const isSecretError = (u: unknown): u is SecretError =>
  u instanceof SecretNotFound || u instanceof SecretAccessDenied || u instanceof SecretsBackendUnavailable ||
  u instanceof SecretMalformed

const stringProperty = (u: unknown, key: string): string | undefined =>
  Predicate.hasProperty(u, key) && typeof u[key] === "string" ? u[key] : undefined

/** The `code` of an error or, failing that, of its `cause` (pg-pool wraps timeouts). */
export const errorCode = (u: unknown): string | undefined =>
  stringProperty(u, "code") ?? (Predicate.hasProperty(u, "cause") ? stringProperty(u.cause, "code") : undefined)

/** The human-readable message of an error, never anything else of it. */
export const errorMessage = (u: unknown): string => stringProperty(u, "message") ?? String(u)

const isTlsHandshakeFailure = (code: string, message: string): boolean =>
  code === "EPROTO" ||
  code === "ERR_SSL_NO_PROTOCOLS_AVAILABLE" ||
  code === "ERR_SSL_UNSUPPORTED_PROTOCOL" ||
  code === "ERR_SSL_NO_SHARED_CIPHER" ||
  code === "ERR_SSL_NO_CIPHERS_AVAILABLE" ||
  (code.startsWith("ERR_SSL_") && /PROTOCOL_VERSION|HANDSHAKE_FAILURE|WRONG_VERSION|INSUFFICIENT_SECURITY/.test(code)) ||
  /protocol version|handshake failure|no shared cipher|no protocols available|unsupported protocol/i.test(message)

/** True when `pg` reports that a new connection hit the connect timeout. */
export const isConnectTimeout = (u: unknown): boolean => {
  const message = errorMessage(u)
  return message === "timeout expired" ||
    message === "Connection terminated due to connection timeout" ||
    errorCode(u) === "ETIMEDOUT"
}

/** True when a connect failure is the server refusing the password (28P01). */
export const isAuthenticationFailure = (u: unknown): boolean => stringProperty(u, "code") === "28P01"

/**
 * Classifies a failure to open or acquire a connection. Anything not recognised becomes a
 * `ConnectionLost` carrying the original code and reason, so no failure is ever untyped.
 */
export const classifyConnectError = (cause: unknown, target: ConnectTarget): AcquireError => {
  if (isSecretError(cause)) return cause
  // already typed by the acquisition hook (internal/resilience/acquire.ts), which alone knows the waiting count
  if (cause instanceof PoolExhausted) return cause
  // refused by the authentication policy (internal/authPolicy.ts) before anything was sent: already typed
  if (cause instanceof AuthenticationMethodRefused) return cause
  if (cause instanceof NoSuitableHostCause) {
    return new NoSuitableHost({
      host: target.host,
      port: target.port,
      targetSessionAttrs: cause.attrs,
      seen: cause.seen
    })
  }
  const { host, port } = target
  const message = errorMessage(cause)
  const ownCode = stringProperty(cause, "code")
  const code = errorCode(cause) ?? ""

  // pg reports these without a code
  if (message === "The server does not support SSL connections") {
    return new SslNotSupportedByServer({ host, port })
  }
  if (message === "timeout exceeded when trying to connect") {
    // pg-pool: waited in the queue for a busy pool longer than connectionTimeoutMillis
    return new PoolExhausted({ host, port, max: target.poolMax, timeoutMillis: target.connectTimeoutMillis })
  }
  if (isConnectTimeout(cause)) {
    return new ConnectTimeout({ host, port, timeoutMillis: target.connectTimeoutMillis })
  }

  // the server refused this connection and said why (pg_hba.conf, PgBouncer, the client certificate): its text is the reason
  const rejected = (code: string) =>
    new ConnectionRejected({ host, port, user: target.user, database: target.database, code, reason: message })

  switch (ownCode) {
    case "28P01":
      return new AuthenticationFailed({ host, port, user: target.user, code: ownCode })
    case "28000":
      // PostgreSQL's own texts: "SCRAM channel binding check failed" / "SCRAM channel binding negotiation error"
      if (/channel binding/i.test(message)) {
        return new ChannelBindingFailed({ host, port, user: target.user, code: ownCode, reason: message })
      }
      return rejected(ownCode)
    case "08P01":
      // PgBouncer refusing a startup parameter it does not track (DB_POOLER unset, or PGOPTIONS)
      if (/unsupported startup parameter/i.test(message)) return rejected(ownCode)
      break
    case "3D000":
      return new DatabaseNotFound({ host, port, database: target.database, code: ownCode })
    case "53300":
      return new TooManyConnections({ host, port, code: ownCode, reason: message })
  }

  if (ownCode === "ERR_TAKUMI_CERTIFICATE_POSTURE" && Predicate.hasProperty(cause, "findings")) {
    // refused during the handshake by `certificatePosture` (production): self-signed, weak key
    const findings = Schema.decodeUnknownOption(Schema.NonEmptyArray(PostureFinding))(cause.findings)
    if (Option.isSome(findings)) return new InsecureServer({ host, port, findings: findings.value })
  }
  if (/certificate key too weak|key too small/i.test(message)) {
    // OpenSSL at security level 2 (Node 24's default) refuses an RSA key under 2048 bits during
    // verification, before our own posture check sees it: the same finding, refused everywhere
    return new InsecureServer({
      host,
      port,
      findings: [{ rule: "WeakRsaKey", detail: `the TLS stack refused the server certificate's key as too weak (${message})` }]
    })
  }
  if (untrustedCodes.has(code)) return new CertificateUntrusted({ host, port, code })
  if (expiredCodes.has(code)) return new CertificateExpired({ host, port, code })
  if (code === "CERT_REVOKED") return new CertificateRevoked({ host, port, code })
  if (code === "UNABLE_TO_GET_CRL") {
    return new TlsMaterialInvalid({
      variable: "DB_SSL_CRL",
      code,
      reason: "it holds no revocation list from the CA that issued the server certificate"
    })
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new CertificateHostMismatch({ host, port, code, reason: message })
  }
  if (clientCertificateRejectedCodes.has(code)) return rejected(code)
  if (isTlsHandshakeFailure(code, message)) {
    return new TlsProtocolRejected({ host, port, code: code === "" ? "EPROTO" : code, reason: message })
  }
  if (unreachableCodes.has(code)) return new ConnectionRefused({ host, port, code })
  if (code.startsWith("ERR_OSSL") || /bad decrypt|PEM|no start line|key values mismatch/i.test(message)) {
    // OpenSSL could not use the configured key or certificate (wrong passphrase, not PEM, ...)
    return new TlsMaterialInvalid({ variable: "DB_SSL_KEY", code, reason: message })
  }
  return classifyRuntimeError(cause, target)
}

/**
 * Classifies an error on an established connection (an idle client dying, a query cut off).
 */
export const classifyRuntimeError = (cause: unknown, target: ConnectTarget): ConnectionLost => {
  // already classified where the client reported it (see connectionLoss.ts)
  if (cause instanceof ConnectionLost) return cause
  const code = errorCode(cause)
  const message = errorMessage(cause)
  return new ConnectionLost({
    host: target.host,
    port: target.port,
    ...(code === undefined ? {} : { code }),
    reason: message
  })
}

/** True for errors that mean the connection itself is gone (as opposed to a failed statement). */
export const isConnectionLoss = (cause: unknown): boolean => {
  const code = errorCode(cause)
  // a loss typed where the client reported it (connectionLoss.ts): no code, or ECONNRESET / EPIPE
  if (cause instanceof ConnectionLost) return code === undefined || lostCodes.has(code)
  return (code !== undefined && lostCodes.has(code)) || /^Connection terminated/.test(errorMessage(cause))
}
