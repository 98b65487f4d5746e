/**
 * The server certificate's posture, checked on every new connection inside the TLS handshake
 * (Node's `checkServerIdentity` hook: after the chain is verified, before pg sends a byte of the
 * startup message or the password; no round trip), plus a daily re-check of its expiry for
 * processes that stay up for months on long-lived connections.
 *
 * - Host identity as browsers check it: the name must be in the subjectAltName. Node falls back
 *   to the subject CN for a certificate without any SAN; that is refused in production and warned
 *   about elsewhere. DNS-SAN and IP-SAN matching stay Node's own.
 * - Self-signed certificates and RSA keys under 2048 bits: refused in production (`InsecureServer`),
 *   warned about once per pool elsewhere.
 * - A certificate within `alerts.certificateExpiry` of its end raises `CertificateExpiringSoon`,
 *   at most once a day per certificate.
 *
 * Protocol and cipher need no per-connection check: the secure context offers nothing below
 * `DB_SSL_MIN_VERSION` (TLS 1.2 in production) and only the strong cipher set.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { DbSettings } from "@takumi/config"
import { type PostureFinding, postureFix } from "../DbError.js"
import { CertificateExpiringSoon } from "../SecurityAlerts.js"
import { Monitor } from "./monitor.js"

/** What the posture rules look at in a server certificate. */
export interface CertificateSummary {
  readonly subject: string
  readonly fingerprint: string
  readonly hasSubjectAltName: boolean
  readonly selfSigned: boolean
  /** RSA key size; none for EC keys (whose `bits` are a curve size) */
  readonly rsaBits: Option.Option<number>
  readonly validTo: Option.Option<Date>
}

const formatName = (name: Tls.Certificate | undefined): string =>
  name === undefined ? "" : Object.entries(name).map(([k, v]) => `${k}=${String(v)}`).join(", ")

/** @internal */
export const summarize = (cert: Tls.PeerCertificate | Tls.DetailedPeerCertificate): CertificateSummary => {
  const validTo = new Date(cert.valid_to)
  const issuer = "issuerCertificate" in cert ? cert.issuerCertificate : undefined
  return {
    subject: formatName(cert.subject),
    fingerprint: cert.fingerprint256,
    hasSubjectAltName: cert.subjectaltname !== undefined && cert.subjectaltname !== "",
    // issued by itself: same name as issuer and subject, and (when the chain is known) the issuer
    // is the very same certificate
    selfSigned: formatName(cert.issuer) === formatName(cert.subject) &&
      (issuer === undefined || issuer.fingerprint256 === cert.fingerprint256),
    rsaBits: cert.modulus !== undefined && cert.bits !== undefined ? Option.some(cert.bits) : Option.none(),
    validTo: Number.isNaN(validTo.getTime()) ? Option.none() : Option.some(validTo)
  }
}

/** The certificate rules of the posture, in a stable order. @internal */
export const findings = (cert: CertificateSummary): Array<PostureFinding> => {
  const out: Array<PostureFinding> = []
  if (cert.selfSigned) {
    out.push({ rule: "SelfSignedCertificate", detail: `the server certificate (${cert.subject}) is self-signed` })
  }
  if (Option.isSome(cert.rsaBits) && cert.rsaBits.value < 2048) {
    out.push({ rule: "WeakRsaKey", detail: `the server certificate has a ${cert.rsaBits.value}-bit RSA key` })
  }
  return out
}

/**
 * What `checkServerIdentity` hands back to refuse a certificate on posture grounds; the
 * connection error classification turns it into `InsecureServer`.
 *
 * @internal
 */
export class CertificatePostureRefused extends Error {
  readonly code = "ERR_TAKUMI_CERTIFICATE_POSTURE"
  constructor(readonly findings: ReadonlyArray<PostureFinding>) {
    super(findings.map((f) => f.detail).join("; "))
  }
}

/** Production refuses what elsewhere only warns, as for the rest of the server's posture. */
const refuses = (settings: DbSettings): boolean => settings.environment === "production"

const noSubjectAltName = (hostname: string): Error =>
  Object.assign(
    new Error(
      "it has no subjectAltName, and a name only in the subject CN is not accepted: reissue it with " +
        `subjectAltName ${Net.isIP(hostname) === 0 ? "DNS" : "IP"}:${hostname}`
    ),
    { code: "ERR_TLS_CERT_ALTNAME_INVALID" }
  )

const day = Duration.days(1)

/** The per-connection check of one pool, and the daily expiry re-check for its scope. */
export interface CertificatePosture {
  readonly checkServerIdentity: (hostname: string, cert: Tls.PeerCertificate) => Error | undefined
}

/**
 * Builds the check for the pool of `host` (`port` for the alerts), and forks the daily expiry
 * re-check into the scope. Warnings are logged once per pool and rule, not once per connection.
 */
export const make = (
  settings: DbSettings,
  server: { readonly host: string; readonly port: number }
): Effect.Effect<CertificatePosture, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const monitor = yield* Effect.serviceOption(Monitor)
    const annotations = { host: server.host, port: server.port }
    const warned = new Set<string>()
    const warnOnce = (key: string, message: string, rule: string) => {
      if (warned.has(key)) return
      warned.add(key)
      runFork(Effect.logWarning(message).pipe(Effect.annotateLogs({ ...annotations, rule })))
    }
    let latest: Option.Option<CertificateSummary> = Option.none()
    const alertedAt = new Map<string, number>()

    const checkExpiry = (cert: CertificateSummary) =>
      Effect.gen(function*() {
        if (Option.isNone(cert.validTo)) return
        const now = yield* Clock.currentTimeMillis
        const left = cert.validTo.value.getTime() - now
        const last = alertedAt.get(cert.fingerprint)
        if (left >= Duration.toMillis(settings.alerts.certificateExpiry)) return
        if (last !== undefined && now - last < Duration.toMillis(day)) return
        alertedAt.set(cert.fingerprint, now)
        const alert = new CertificateExpiringSoon({
          ...annotations,
          subject: cert.subject,
          validTo: cert.validTo.value.toISOString(),
          daysLeft: Math.floor(left / 86_400_000)
        })
        yield* Option.match(monitor, {
          onSome: (m) => m.certificateExpiring(alert),
          onNone: () =>
            Effect.logWarning(alert.message).pipe(
              Effect.annotateLogs({ ...annotations, alert: "CertificateExpiring", validTo: alert.validTo })
            )
        })
      })

    yield* Effect.suspend(() => Option.match(latest, { onNone: () => Effect.void, onSome: checkExpiry })).pipe(
      Effect.schedule(Schedule.spaced(day)),
      Effect.forkScoped
    )

    const checkServerIdentity = (hostname: string, peer: Tls.PeerCertificate): Error | undefined => {
      const cert = summarize(peer)
      if (!cert.hasSubjectAltName) {
        if (refuses(settings)) return noSubjectAltName(hostname)
        warnOnce(
          "cn-only",
          `The certificate of ${hostname} has no subjectAltName: it was accepted on its subject CN, which ` +
            `${settings.environment} allows and production refuses. Reissue it with subjectAltName DNS:/IP:${hostname}.`,
          "SubjectAltNameMissing"
        )
      }
      const identity = Tls.checkServerIdentity(hostname, peer)
      if (identity !== undefined) return identity
      const found = findings(cert)
      if (found.length > 0 && refuses(settings)) return new CertificatePostureRefused(found)
      for (const f of found) {
        warnOnce(f.rule, `Insecure PostgreSQL setup (refused in production): ${f.detail} — fix: ${postureFix[f.rule]}`, f.rule)
      }
      latest = Option.some(cert)
      runFork(checkExpiry(cert))
      return undefined
    }
    return { checkServerIdentity }
  })
