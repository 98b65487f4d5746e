import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as Tls from "node:tls"
import * as Pg from "pg"
import { InterceptionProxy, TestDatabase } from "@takumi/testing"

const PASSWORD = "intercepted-Pa55word-8e3f"

/** A plain `pg` client through `proxy`, trusting the test CA: the server certificate it saw (SHA-256) and how it ended. */
const connect = (proxy: InterceptionProxy.InterceptionProxy, ca: string, enableChannelBinding: boolean) =>
  Effect.promise(async () => {
    const client = new Pg.Client({
      host: proxy.host,
      port: proxy.port,
      user: "app",
      database: "app",
      password: PASSWORD,
      ssl: { ca, rejectUnauthorized: true },
      enableChannelBinding
    })
    client.on("error", () => undefined)
    let seen: string | undefined
    const outcome = await client.connect().then(
      async () => {
        const socket = client.connection.stream
        seen = socket instanceof Tls.TLSSocket ? socket.getPeerX509Certificate()?.fingerprint256 : undefined
        const { rows } = await client.query<{ usr: string }>("SELECT current_user AS usr")
        await client.end()
        return `connected as ${rows[0]?.usr}`
      },
      (error: Error) => error.message
    )
    return { outcome, seen }
  })

const database = TestDatabase.layer({ roles: [{ name: "app", password: PASSWORD }], database: "app" })

layer(database, { timeout: 60_000, excludeTestServices: true })("InterceptionProxy", (it) => {
  it.scoped("terminates the client's TLS with its own certificate, relays to the real server and records the session it got", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const proxy = yield* InterceptionProxy.make({ target: server, targetCa: pki.ca.certPem, clientSide: { _tag: "Terminate", certificate: pki.interceptor } })
      const { outcome, seen } = yield* connect(proxy, pki.ca.certPem, false)
      expect(outcome).toBe("connected as app")
      // the client saw the proxy's certificate, not the server's
      expect(seen).toBe(new Crypto.X509Certificate(pki.interceptor.certPem).fingerprint256)
      const [connection] = yield* proxy.connections
      expect(connection?.clientTls).toBe(true)
      expect(connection?.startup?.["user"]).toBe("app")
      expect(connection?.serverOffered).toEqual(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
      expect(connection?.serverAuthenticated).toBe(true)
      expect((yield* proxy.received).map((m) => m.kind).slice(0, 2)).toEqual(["SASLInitialResponse", "SASLResponse"])
    }))

  it.scoped("strips SCRAM-SHA-256-PLUS from the offer the client sees", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const proxy = yield* InterceptionProxy.make({
        target: server,
        targetCa: pki.ca.certPem,
        clientSide: { _tag: "Terminate", certificate: pki.server },
        stripScramPlus: true
      })
      const { outcome } = yield* connect(proxy, pki.ca.certPem, true)
      // pg answers plain SCRAM with "y" (it could bind, the server did not offer it): PostgreSQL sees the downgrade
      expect(outcome).toContain("channel binding negotiation error")
      const [connection] = yield* proxy.connections
      expect(connection?.serverOffered).toContain("SCRAM-SHA-256-PLUS")
      const [initial] = yield* proxy.received
      expect(Buffer.from(initial?.body ?? []).toString("utf8")).toMatch(/^SCRAM-SHA-256\0/)
    }))

  it.scoped("answers the SSLRequest with N when told to refuse TLS", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* TestDatabase.TestDatabase
      const proxy = yield* InterceptionProxy.make({ target: server, targetCa: pki.ca.certPem, clientSide: { _tag: "RefuseTls" } })
      const { outcome } = yield* connect(proxy, pki.ca.certPem, true)
      expect(outcome).toBe("The server does not support SSL connections")
      expect((yield* proxy.connections).map((c) => [c.clientTls, c.startup])).toEqual([[false, undefined]])
    }))
})
