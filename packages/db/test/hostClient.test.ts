/**
 * The client class of a pool over several hosts (internal/hosts/client.ts) on a stand-in for pg's
 * own connect and query, with pg's real `Connection` object: the events a server would send are
 * emitted on it. What PostgreSQL 15 cannot show: a server that reports neither `in_hot_standby`
 * nor `default_transaction_read_only` (before 14), whose 25006 answer must discard the connection.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Pg from "pg"
import { type HostRoute, makeChooser } from "../src/internal/hosts/chooser.js"
import { withHostChoice } from "../src/internal/hosts/client.js"
import type { SessionState } from "../src/internal/hosts/session.js"

const route: HostRoute = { host: "127.0.0.1", port: 5999, ssl: false }
const writable: SessionState = { hotStandby: false, readOnly: false }

/** pg's Client with connect and query stood in for: no socket is opened. */
class StandIn extends Pg.Client {
  override connect(): Promise<Pg.Client>
  override connect(callback: (err: Error) => void): void
  override connect(): Promise<Pg.Client> | void {
    return Promise.resolve(this)
  }
  override query(): never {
    return Promise.resolve({ rows: [{ hot_standby: false, read_only: "off" }] }) as never
  }
}

interface Events {
  emit: (event: string, msg?: unknown) => boolean
  readonly stream: { readonly destroyed: boolean }
}

const setup = async (parameters: ReadonlyArray<readonly [string, string]>) => {
  let probes = 0
  const chooser = makeChooser({
    attrs: "read-write",
    loadBalance: "disable",
    routes: [route],
    probe: () => {
      probes++
      return Promise.resolve(writable)
    },
    random: () => 0,
    onPrimaryChanged: () => {}
  })
  const Client = withHostChoice(StandIn, chooser)
  const client = new Client({ host: "first.example", port: 1 })
  const connection = Reflect.get(client, "connection") as Events
  for (const [parameterName, parameterValue] of parameters) connection.emit("parameterStatus", { parameterName, parameterValue })
  await client.connect()
  return { client, connection, chooser, probes: () => probes }
}

const settled = () => new Promise((resolve) => setImmediate(resolve))

const reported = [["in_hot_standby", "off"], ["default_transaction_read_only", "off"]] as const

describe("host-choosing client", () => {
  it("connects to the chosen host", async () => {
    const { client } = await setup(reported)
    expect([client.host, client.port]).toEqual([route.host, route.port])
  })

  it("a server that reports neither parameter: a 25006 answer discards the connection after the answer in flight", async () => {
    const { chooser, connection, probes } = await setup([])
    connection.emit("errorMessage", { code: "25006" })
    await settled()
    expect(connection.stream.destroyed).toBe(false)
    connection.emit("readyForQuery")
    await settled()
    expect(connection.stream.destroyed).toBe(true)
    // forgotten: the next connection scans again
    await chooser.choose()
    expect(probes()).toBe(2)
  })

  it("a server that reports its state: a 25006 is the caller's READ ONLY transaction and changes nothing", async () => {
    const { connection } = await setup(reported)
    connection.emit("errorMessage", { code: "25006" })
    connection.emit("readyForQuery")
    await settled()
    expect(connection.stream.destroyed).toBe(false)
  })

  it("a reported change to read-only discards the connection", async () => {
    const { connection } = await setup(reported)
    connection.emit("parameterStatus", { parameterName: "default_transaction_read_only", parameterValue: "on" })
    connection.emit("readyForQuery")
    await settled()
    expect(connection.stream.destroyed).toBe(true)
  })
})
