/**
 * The relay behind `InterceptionProxy`: one client connection, its SSLRequest answered by the
 * proxy (TLS with the proxy's own certificate, or `N`), a TLS connection of the proxy's own to the
 * real server, and every frame in between parsed, recorded and passed on — or, for the server's
 * AuthenticationSASL, rewritten without SCRAM-SHA-256-PLUS when the proxy strips it.
 *
 * @internal
 */
import * as Net from "node:net"
import * as Tls from "node:tls"
import { cstring, Frames, int32, message, parseStartup, SSL_REQUEST } from "./hostilePg.js"

/** @internal */
export type ClientSide =
  | { readonly _tag: "Terminate"; readonly certificate: { readonly certPem: string; readonly keyPem: string } }
  | { readonly _tag: "RefuseTls" }

/** @internal */
export interface RelayOptions {
  readonly target: { readonly host: string; readonly port: number }
  /** the CA the real server's certificate is verified against on the proxy's own leg */
  readonly targetCa: string
  readonly clientSide: ClientSide
  readonly stripScramPlus: boolean
}

/** @internal */
export interface InterceptedConnection {
  /** 0-based, in the order connections were accepted */
  readonly connection: number
  /** whether the client's side ran TLS (with the proxy's certificate) */
  readonly clientTls: boolean
  /** the StartupMessage parameters, once the client sent one */
  readonly startup: Readonly<Record<string, string>> | undefined
  /** the SASL mechanisms the server offered, as it sent them (before any stripping) */
  readonly serverOffered: ReadonlyArray<string> | undefined
  /** the server sent AuthenticationOk on the proxy's connection: the proxy holds a logged-in session */
  readonly serverAuthenticated: boolean
  /** the server's ErrorResponse text on the proxy's connection (`C` code and `M` message), if it sent one */
  readonly serverError: string | undefined
}

/** @internal */
export interface InterceptedMessage {
  readonly connection: number
  /** the frontend message type byte as a character: `p` (password or SASL), `Q`, `X`, ... */
  readonly type: string
  /** `p` after a SASL request: the first is the SASLInitialResponse, later ones SASLResponse (client-final, with the proof) */
  readonly kind: "PasswordMessage" | "SASLInitialResponse" | "SASLResponse" | "Other"
  readonly body: Uint8Array
}

const AUTH_SASL = 10

/** `ErrorResponse` fields `C` and `M` as `code: message`. */
const errorText = (body: Buffer): string => {
  const fields = new Map<string, string>()
  for (const field of body.toString("utf8").split("\0")) {
    if (field.length > 1) fields.set(field[0] ?? "", field.slice(1))
  }
  return `${fields.get("C") ?? ""}: ${fields.get("M") ?? ""}`
}

/** The mechanisms of an AuthenticationSASL body (after the int32 code). */
const mechanismsOf = (body: Buffer): Array<string> => body.subarray(4).toString("utf8").split("\0").filter((m) => m !== "")

/** State shared by every connection of one proxy. @internal */
export class RelayState {
  readonly connections: Array<InterceptedConnection> = []
  readonly received: Array<InterceptedMessage> = []
  readonly sockets = new Set<Net.Socket>()
  private next = 0

  constructor(readonly options: RelayOptions) {}

  private track(socket: Net.Socket): void {
    this.sockets.add(socket)
    socket.once("close", () => this.sockets.delete(socket))
  }

  /** Serves one accepted client socket. */
  readonly serve = (raw: Net.Socket): void => {
    const id = this.next++
    const record: { -readonly [K in keyof InterceptedConnection]: InterceptedConnection[K] } = {
      connection: id,
      clientTls: false,
      startup: undefined,
      serverOffered: undefined,
      serverAuthenticated: false,
      serverError: undefined
    }
    this.connections.push(record)
    this.track(raw)
    let client: Net.Socket = raw
    let upstream: Tls.TLSSocket | undefined
    const pendingUp: Array<Buffer> = []
    const toUpstream = (frame: Buffer) => upstream === undefined ? pendingUp.push(frame) : upstream.write(frame)
    const closeBoth = () => {
      raw.destroy()
      client.destroy()
      upstream?.destroy()
    }
    raw.on("error", closeBoth)
    raw.once("close", closeBoth)

    let lastRequest = -1
    let saslStarted = false
    const fromClient = new Frames()
    let started = false
    const onClientData = (chunk: Buffer) => {
      fromClient.push(chunk)
      for (;;) {
        if (!started) {
          const body = fromClient.untyped()
          if (body === undefined) return
          if (body.length >= 4 && body.readInt32BE(0) === SSL_REQUEST) {
            this.answerSslRequest(raw, record, onClientData, (secure) => {
              client = secure
            })
            if (this.options.clientSide._tag === "Terminate") return
            continue
          }
          started = true
          record.startup = parseStartup(body.subarray(4))
          toUpstream(Buffer.concat([int32(body.length + 4), body]))
          continue
        }
        const frame = fromClient.typed()
        if (frame === undefined) return
        const kind: InterceptedMessage["kind"] = frame.type !== "p"
          ? "Other"
          : lastRequest !== AUTH_SASL
          ? "PasswordMessage"
          : saslStarted
          ? "SASLResponse"
          : "SASLInitialResponse"
        if (kind === "SASLInitialResponse") saslStarted = true
        this.received.push({ connection: id, type: frame.type, kind, body: new Uint8Array(frame.body) })
        toUpstream(message(frame.type, frame.body))
      }
    }
    raw.on("data", onClientData)

    const fromServer = new Frames()
    const onServerData = (chunk: Buffer) => {
      fromServer.push(chunk)
      for (let frame = fromServer.typed(); frame !== undefined; frame = fromServer.typed()) {
        client.write(this.passOn(record, frame, (code) => {
          lastRequest = code
        }))
      }
    }
    this.connectUpstream(closeBoth, (secure) => {
      upstream = secure
      secure.on("data", onServerData)
      for (const frame of pendingUp.splice(0)) secure.write(frame)
    })
  }

  /** Answers the client's SSLRequest: `S` and TLS with the proxy's certificate, or `N`. */
  private answerSslRequest(
    raw: Net.Socket,
    record: { clientTls: boolean },
    onData: (chunk: Buffer) => void,
    upgraded: (secure: Tls.TLSSocket) => void
  ): void {
    const side = this.options.clientSide
    if (side._tag === "RefuseTls") {
      raw.write("N")
      return
    }
    raw.write("S")
    raw.off("data", onData)
    const secure = new Tls.TLSSocket(raw, {
      isServer: true,
      secureContext: Tls.createSecureContext({ cert: side.certificate.certPem, key: side.certificate.keyPem })
    })
    // a client that refuses the proxy's certificate aborts the handshake: expected
    secure.on("error", () => raw.destroy())
    secure.on("data", onData)
    record.clientTls = true
    upgraded(secure)
  }

  /** The proxy's own connection to the real server: SSLRequest, `S`, TLS (the proxy verifies nothing). */
  private connectUpstream(fail: () => void, ready: (secure: Tls.TLSSocket) => void): void {
    const socket = Net.connect(this.options.target.port, this.options.target.host)
    this.track(socket)
    socket.on("error", fail)
    socket.once("close", fail)
    socket.once("connect", () => socket.write(Buffer.concat([int32(8), int32(SSL_REQUEST)])))
    socket.once("data", (answer: Buffer) => {
      if (answer.toString("ascii", 0, 1) !== "S") return fail()
      const secure = Tls.connect({ socket, ca: this.options.targetCa, servername: "localhost" })
      secure.on("error", fail)
      secure.once("secureConnect", () => ready(secure))
    })
  }

  /** Records what the server said and returns the bytes to pass on to the client. */
  private passOn(
    record: { serverOffered: ReadonlyArray<string> | undefined; serverAuthenticated: boolean; serverError: string | undefined },
    frame: { readonly type: string; readonly body: Buffer },
    requested: (code: number) => void
  ): Buffer {
    if (frame.type === "E") record.serverError = errorText(frame.body)
    if (frame.type !== "R" || frame.body.length < 4) return message(frame.type, frame.body)
    const code = frame.body.readInt32BE(0)
    if (code === 0) record.serverAuthenticated = true
    if (code === 3 || code === 5 || code === AUTH_SASL) requested(code)
    if (code !== AUTH_SASL) return message(frame.type, frame.body)
    const offered = mechanismsOf(frame.body)
    record.serverOffered = offered
    if (!this.options.stripScramPlus) return message(frame.type, frame.body)
    const kept = offered.filter((m) => m !== "SCRAM-SHA-256-PLUS")
    return message("R", Buffer.concat([int32(AUTH_SASL), ...kept.map(cstring), Buffer.from([0])]))
  }
}
