/**
 * pg parses the server's bytes inside the socket's `data` listener (pg-protocol's `parse`), and
 * the parser throws on what it does not know: an authentication request other than 0, 3, 5, 10,
 * 11 and 12 (AuthenticationGSS is 7, SSPI 9) or a malformed message. A throw in an event listener
 * is an uncaught exception, so any server the client reaches could end the process with one
 * packet. `guardParser` wraps the `data` listener pg attaches (in `Connection#attachListeners`,
 * for the plain socket or the TLS one) so that a throw ends only that connection: the stream is
 * destroyed and nothing more is parsed. `test/AuthPolicy.test.ts` ("a request pg cannot parse")
 * fails with an uncaught exception if pg renames the method or parses elsewhere.
 *
 * @internal
 */
import * as Predicate from "effect/Predicate"
import type * as Pg from "pg"

type Listener = (...args: Array<unknown>) => void

/** pg-protocol's message for an authentication request it does not know: `… message type 7`. */
const unknownAuthentication = /^Unknown authenticationOk message type (\d+)$/

/** The request code of pg-protocol's "unknown authentication request" throw, if that is what `thrown` is. */
export const unknownAuthenticationCode = (thrown: unknown): number | undefined => {
  const match = thrown instanceof Error ? unknownAuthentication.exec(thrown.message) : null
  return match?.[1] === undefined ? undefined : Number(match[1])
}

/** `stream` with its `data` listeners wrapped: the first throw goes to `onThrow`, later chunks are dropped. */
const guardedStream = (stream: object, onThrow: (thrown: unknown) => void): object => {
  let thrown = false
  const wrap = (listener: Listener): Listener => (...args) => {
    if (thrown) return
    try {
      listener(...args)
    } catch (error) {
      thrown = true
      onThrow(error)
    }
  }
  return new Proxy(stream, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== "function") return value
      if (property !== "on" && property !== "addListener") return value.bind(target)
      return (event: string | symbol, listener: Listener) => {
        Reflect.apply(value, target, [event, event === "data" ? wrap(listener) : listener])
        return receiver
      }
    }
  })
}

/**
 * Makes every stream `client.connection` parses from guarded; `onThrow` gets what the parser
 * threw, after which the connection reads nothing more (the caller destroys it and fails it).
 */
export const guardParser = (client: Pg.Client, onThrow: (thrown: unknown) => void): void => {
  const connection: unknown = client.connection
  if (!Predicate.isObject(connection)) return
  const attach: unknown = Reflect.get(connection, "attachListeners")
  if (typeof attach !== "function") return
  Reflect.set(connection, "attachListeners", (stream: object) => Reflect.apply(attach, connection, [guardedStream(stream, onThrow)]))
}
