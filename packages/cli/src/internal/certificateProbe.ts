/**
 * Reading the server certificate the way the pool sees it: one TCP connection, PostgreSQL's
 * SSLRequest, a TLS handshake with the pool's own TLS options (secure context, server name, identity check,
 * ciphers, verification), then close — before any startup message, so no session is created
 * (the server may log "incomplete startup packet" for it). `SecureSqlClient` verifies the
 * certificate at startup but does not expose its dates; `doctor` reports them.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Net from "node:net"
import * as Tls from "node:tls"

/** @internal */
export interface PeerCertificate {
  readonly subject: string
  readonly issuer: string
  readonly validFrom: Date
  readonly validTo: Date
  /** RSA modulus size; absent for EC keys */
  readonly rsaBits: number | undefined
}

/** @internal */
export class CertificateProbeFailed extends Schema.TaggedError<CertificateProbeFailed>()("CertificateProbeFailed", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `Could not read the server certificate of ${this.host}:${this.port}: ${this.reason}`
  }
}

/** PostgreSQL's SSLRequest: length 8, code 80877103. */
const sslRequest = Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])

const formatName = (name: Tls.Certificate | undefined): string =>
  name === undefined ? "" : Object.entries(name).map(([key, value]) => `${key}=${String(value)}`).join(", ")

/** @internal */
export const probe = (options: {
  readonly host: string
  readonly port: number
  readonly tls: Tls.ConnectionOptions
  readonly timeout: Duration.Duration
}): Effect.Effect<PeerCertificate, CertificateProbeFailed> => {
  const { host, port } = options
  const fail = (reason: string) => new CertificateProbeFailed({ host, port, reason })
  return Effect.async<PeerCertificate, CertificateProbeFailed>((resume) => {
    let tlsSocket: Tls.TLSSocket | undefined
    let settled = false
    const socket = Net.connect({ host, port })
    const done = (outcome: Effect.Effect<PeerCertificate, CertificateProbeFailed>) => {
      if (settled) return
      settled = true
      tlsSocket?.destroy()
      socket.destroy()
      resume(outcome)
    }
    socket.once("error", (error) => done(Effect.fail(fail(error.message))))
    socket.once("close", () => done(Effect.fail(fail("the server closed the connection during the TLS handshake"))))
    socket.once("connect", () => socket.write(sslRequest))
    socket.once("data", (answer) => {
      if (answer[0] !== 0x53) return done(Effect.fail(fail("the server does not accept TLS (answered the SSLRequest with no)")))
      // The pool's own TLS options: its secure context (CA, CRL, minimum version, ciphers; the
      // client certificate too, presented only if the server asks, and the probe never logs in)
      // and its identity check, so the probe trusts exactly what the pool trusts.
      tlsSocket = Tls.connect({ ...options.tls, socket, host })
      tlsSocket.once("error", (error) => done(Effect.fail(fail(error.message))))
      tlsSocket.once("secureConnect", () => {
        const cert = tlsSocket?.getPeerCertificate()
        if (cert === undefined || Object.keys(cert).length === 0) {
          return done(Effect.fail(fail("the server sent no certificate")))
        }
        done(Effect.succeed({
          subject: formatName(cert.subject),
          issuer: formatName(cert.issuer),
          validFrom: new Date(cert.valid_from),
          validTo: new Date(cert.valid_to),
          rsaBits: cert.modulus === undefined ? undefined : cert.bits
        }))
      })
    })
    return Effect.sync(() => {
      tlsSocket?.destroy()
      socket.destroy()
    })
  }).pipe(
    Effect.timeoutFail({
      duration: options.timeout,
      onTimeout: () => fail(`no answer within ${Duration.toMillis(options.timeout)} ms`)
    })
  )
}
