/**
 * An integration test of a service's own, on a real PostgreSQL with TLS from `@takumi/testing`,
 * as the README's "Test servers, certificates and doubles" section shows it (type-checked here).
 */
import { assert, it } from "@effect/vitest"
import { PgTestServer, TestPki } from "@takumi/testing"
import * as Effect from "effect/Effect"

it.scoped("connects over verified TLS with a client certificate", () =>
  Effect.gen(function*() {
    const pki = yield* TestPki.make // CA, server, client and broken certificates, made now
    const server = yield* PgTestServer.make({ certificate: pki.server, ca: pki.ca.certPem })
    yield* server.createRole({ name: "app", password: "test-only", login: true })
    // live: TLS, certificates, pg_hba, TLS versions, ciphers
    yield* server.reload({ hba: [{ type: "hostssl", method: "cert", clientCert: "verify-full" }] })
    const client = yield* pki.client("app")
    // connect to server.host:server.port with DB_SSL_CA=pki.ca.certPath,
    // DB_SSL_CERT=client.certPath and DB_SSL_KEY=client.keyPath; the scope removes both
    assert.isAbove(server.port, 0)
    assert.include(client.certPem, "BEGIN CERTIFICATE")
  }))
