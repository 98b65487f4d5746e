/**
 * The wire protocol behind `HostilePgServer`: just enough of PostgreSQL's v3 protocol to take a
 * client through SSLRequest, TLS and its StartupMessage to an authentication request, and to
 * record (never answer properly) whatever the client sends after it.
 *
 * @internal
 */
import * as Net from "node:net"
import * as Tls from "node:tls"

/** @internal */
export type AuthenticationRequest = "cleartext" | "md5" | "scram-sha-256" | "scram-sha-256-plus" | "gss" | "none"

/** @internal */
export type AfterResponse = "reject" | "accept"

/** @internal */
export interface ConnectionRecord {
  /** 0-based, in the order connections were accepted */
  readonly connection: number
  /** whether the client upgraded to TLS first */
  readonly tls: boolean
  /** the StartupMessage parameters (`user`, `database`, `application_name`, ...) */
  readonly startup: Readonly<Record<string, string>>
}

/** @internal */
export interface ReceivedMessage {
  /** the connection it came on */
  readonly connection: number
  /** the message type byte as a character: `p` (password or SASL), `Q`, `X`, ... */
  readonly type: string
  /**
   * `p` after a cleartext or MD5 request is a `PasswordMessage`; after a SASL request the first is
   * the `SASLInitialResponse`, later ones `SASLResponse`.
   */
  readonly kind: "PasswordMessage" | "SASLInitialResponse" | "SASLResponse" | "Query" | "Terminate" | "Other"
  /** the mechanism a SASLInitialResponse names, e.g. `SCRAM-SHA-256-PLUS` */
  readonly mechanism?: string
  /** the message body, after the type and length */
  readonly body: Uint8Array
}

/** @internal */
export interface PeerOptions {
  readonly request: AuthenticationRequest
  readonly certificate: { readonly certPem: string; readonly keyPem: string } | undefined
  readonly afterResponse: AfterResponse
}

/** @internal */
export const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const PROTOCOL_3 = 196608

export const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}

/** A typed backend message: type byte, length (itself included), body. */
/** @internal */
export const message = (type: string, body: Buffer): Buffer => Buffer.concat([Buffer.from(type, "ascii"), int32(body.length + 4), body])

export const cstring = (s: string): Buffer => Buffer.from(`${s}\0`, "utf8")

const authentication = (code: number, payload: Buffer = Buffer.alloc(0)): Buffer =>
  message("R", Buffer.concat([int32(code), payload]))

/** AuthenticationOk, BackendKeyData and ReadyForQuery (idle), in one write as a server sends them. */
const accepted = (): Buffer =>
  Buffer.concat([
    authentication(0),
    message("K", Buffer.concat([int32(4242), int32(0x5eed)])),
    message("Z", Buffer.from("I", "ascii"))
  ])

const passwordFailed = (user: string): Buffer =>
  message(
    "E",
    Buffer.concat([
      Buffer.from("S", "ascii"),
      cstring("FATAL"),
      Buffer.from("V", "ascii"),
      cstring("FATAL"),
      Buffer.from("C", "ascii"),
      cstring("28P01"),
      Buffer.from("M", "ascii"),
      cstring(`password authentication failed for user "${user}"`),
      Buffer.from([0])
    ])
  )

/** The request the peer sends after the StartupMessage. @internal */
export const requestMessage = (request: AuthenticationRequest): Buffer => {
  switch (request) {
    case "cleartext":
      return authentication(3)
    case "md5":
      return authentication(5, Buffer.from([0x8a, 0x1f, 0x42, 0x07]))
    case "scram-sha-256":
      return authentication(10, Buffer.concat([cstring("SCRAM-SHA-256"), Buffer.from([0])]))
    case "scram-sha-256-plus":
      // PostgreSQL lists -PLUS first when it offers it (over TLS)
      return authentication(10, Buffer.concat([cstring("SCRAM-SHA-256-PLUS"), cstring("SCRAM-SHA-256"), Buffer.from([0])]))
    case "gss":
      // AuthenticationGSS: pg's parser knows no code 7 and throws inside the socket's data handler
      return authentication(7)
    case "none":
      return accepted()
  }
}

/** Startup parameters: `key\0value\0 ... \0`. */
export const parseStartup = (body: Buffer): Record<string, string> => {
  const parts = body.toString("utf8").split("\0")
  const params: Record<string, string> = {}
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const key = parts[i]
    const value = parts[i + 1]
    if (key === undefined || key === "" || value === undefined) break
    params[key] = value
  }
  return params
}

/** Accumulates bytes and cuts them into length-prefixed frames. */
export class Frames {
  private buffer = Buffer.alloc(0)

  push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
  }

  /** An untyped startup-phase frame (`int32 length` first): its body after the length. */
  untyped(): Buffer | undefined {
    if (this.buffer.length < 4) return undefined
    const length = this.buffer.readInt32BE(0)
    if (this.buffer.length < length) return undefined
    const body = this.buffer.subarray(4, length)
    this.buffer = this.buffer.subarray(length)
    return body
  }

  /** A typed frame (`type`, `int32 length`). */
  typed(): { readonly type: string; readonly body: Buffer } | undefined {
    if (this.buffer.length < 5) return undefined
    const length = this.buffer.readInt32BE(1)
    if (this.buffer.length < 1 + length) return undefined
    const type = String.fromCharCode(this.buffer[0] ?? 0)
    const body = this.buffer.subarray(5, 1 + length)
    this.buffer = this.buffer.subarray(1 + length)
    return { type, body }
  }
}

/** State shared by every connection of one peer. @internal */
export class PeerState {
  readonly connections: Array<ConnectionRecord> = []
  readonly received: Array<ReceivedMessage> = []
  readonly sockets = new Set<Net.Socket>()
  private next = 0

  constructor(readonly options: PeerOptions) {}

  /** Serves one accepted socket. */
  readonly serve = (raw: Net.Socket): void => {
    const id = this.next++
    this.sockets.add(raw)
    // a client that gives up resets the socket: expected, never a crash
    raw.on("error", () => raw.destroy())
    raw.once("close", () => this.sockets.delete(raw))
    const frames = new Frames()
    let socket: Net.Socket = raw
    let tls = false
    let phase: "startup" | "authenticating" | "after" = "startup"
    let saslStarted = false
    let user = ""

    const record = (type: string, body: Buffer) => {
      const sasl = this.options.request === "scram-sha-256" || this.options.request === "scram-sha-256-plus"
      const kind: ReceivedMessage["kind"] = type === "p"
        ? sasl ? (saslStarted ? "SASLResponse" : "SASLInitialResponse") : "PasswordMessage"
        : type === "Q"
        ? "Query"
        : type === "X"
        ? "Terminate"
        : "Other"
      const mechanism = kind === "SASLInitialResponse" ? body.subarray(0, Math.max(0, body.indexOf(0))).toString("utf8") : undefined
      if (kind === "SASLInitialResponse") saslStarted = true
      this.received.push({
        connection: id,
        type,
        kind,
        ...(mechanism === undefined ? {} : { mechanism }),
        body: new Uint8Array(body)
      })
    }

    const onData = (chunk: Buffer) => {
      frames.push(chunk)
      for (;;) {
        if (phase === "startup") {
          const body = frames.untyped()
          if (body === undefined) return
          const code = body.length >= 4 ? body.readInt32BE(0) : -1
          if (code === SSL_REQUEST && !tls) {
            if (this.options.certificate === undefined) {
              socket.write("N")
              continue
            }
            socket.write("S")
            upgrade(this.options.certificate)
            return
          }
          if (code === GSSENC_REQUEST) {
            socket.write("N")
            continue
          }
          if (code !== PROTOCOL_3) {
            socket.destroy()
            return
          }
          const startup = parseStartup(body.subarray(4))
          user = startup["user"] ?? ""
          this.connections.push({ connection: id, tls, startup })
          phase = this.options.request === "none" ? "after" : "authenticating"
          socket.write(requestMessage(this.options.request))
          continue
        }
        const frame = frames.typed()
        if (frame === undefined) return
        record(frame.type, frame.body)
        if (frame.type === "X") {
          socket.end()
          return
        }
        if (phase === "authenticating") {
          phase = "after"
          if (this.options.afterResponse === "accept") {
            socket.write(accepted())
          } else {
            socket.end(passwordFailed(user))
            return
          }
        }
      }
    }

    const upgrade = (certificate: { readonly certPem: string; readonly keyPem: string }) => {
      raw.off("data", onData)
      const secure = new Tls.TLSSocket(raw, {
        isServer: true,
        secureContext: Tls.createSecureContext({ cert: certificate.certPem, key: certificate.keyPem })
      })
      secure.on("error", () => secure.destroy())
      secure.on("data", onData)
      socket = secure
      tls = true
    }

    raw.on("data", onData)
  }
}
