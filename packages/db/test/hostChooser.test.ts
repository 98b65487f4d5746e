/**
 * The host chooser's rules (internal/hosts/): libpq's target_session_attrs and load_balance_hosts
 * over probe results, one scan shared by concurrent connections, a rescan after a host is
 * forgotten, PrimaryChanged only on a move; and the session state read from ParameterStatus or,
 * when the server reports neither parameter, from one query.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as Pg from "pg"
import { type HostRoute, makeChooser } from "../src/internal/hosts/chooser.js"
import { NoSuitableHostCause, sessionState, type SessionState, stateFromParameters, stateQuery } from "../src/internal/hosts/session.js"

const route = (port: number): HostRoute => ({ host: "127.0.0.1", port, ssl: false })
const a = route(5001)
const b = route(5002)
const c = route(5003)
const primary: SessionState = { hotStandby: false, readOnly: false }
const standby: SessionState = { hotStandby: true, readOnly: true }
const readOnly: SessionState = { hotStandby: false, readOnly: true }

const authFailure = Object.assign(new Error("password authentication failed for user \"app\""), { code: "28P01" })
const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })

const hostMap = (entries: ReadonlyArray<readonly [HostRoute, SessionState | Error]>) =>
  new Map<HostRoute, SessionState | Error>(entries)

/** A chooser over `states` (an Error: the probe of that host fails); counts probes and moves. */
const chooserOver = (
  states: ReadonlyMap<HostRoute, SessionState | Error>,
  options: Partial<Parameters<typeof makeChooser>[0]> = {}
) => {
  const probes: Array<number> = []
  const moves: Array<[number, number]> = []
  const chooser = makeChooser({
    attrs: "read-write",
    loadBalance: "disable",
    routes: [...states.keys()],
    probe: (r) => {
      probes.push(r.port)
      const state = states.get(r)
      return state instanceof Error || state === undefined ? Promise.reject(state) : Promise.resolve(state)
    },
    random: () => 0,
    onPrimaryChanged: (from, to) => moves.push([from.port, to.port]),
    ...options
  })
  return { chooser, probes, moves }
}

describe("host chooser", () => {
  it("read-write: the first writable host in the listed order; standbys and read-only servers are passed over", async () => {
    const { chooser } = chooserOver(hostMap([[a, standby], [b, readOnly], [c, primary]]))
    expect(await chooser.choose()).toBe(c)
  })

  it("primary accepts a read-only primary; standby takes only a hot standby", async () => {
    const states = new Map<HostRoute, SessionState>([[a, standby], [b, readOnly], [c, primary]])
    expect(await chooserOver(states, { attrs: "primary" }).chooser.choose()).toBe(b)
    expect(await chooserOver(states, { attrs: "standby" }).chooser.choose()).toBe(a)
  })

  it("prefer-standby: a standby when one answers, else the first that answers", async () => {
    expect(await chooserOver(hostMap([[a, primary], [b, standby]]), { attrs: "prefer-standby" }).chooser.choose()).toBe(b)
    const noStandby = new Map<HostRoute, SessionState | Error>([[a, refused], [b, primary], [c, primary]])
    expect(await chooserOver(noStandby, { attrs: "prefer-standby" }).chooser.choose()).toBe(b)
  })

  it("disable: takes the first fitting host without waiting for a host listed after it that never answers", async () => {
    const { chooser } = chooserOver(hostMap([[a, standby], [b, primary], [c, primary]]), {
      probe: (r) => r === c ? new Promise<SessionState>(() => {}) : Promise.resolve(r === a ? standby : primary)
    })
    expect(await chooser.choose()).toBe(b)
  })

  it("concurrent connections share one scan; later ones go to the remembered host without probing", async () => {
    const { chooser, probes } = chooserOver(hostMap([[a, standby], [b, primary]]))
    const chosen = await Promise.all([chooser.choose(), chooser.choose(), chooser.choose()])
    expect(chosen).toEqual([b, b, b])
    expect(await chooser.choose()).toBe(b)
    expect(probes.sort()).toEqual([a.port, b.port])
  })

  it("a forgotten host is looked for again: the next connection scans", async () => {
    const states = new Map<HostRoute, SessionState | Error>([[a, primary], [b, standby]])
    const { chooser, probes } = chooserOver(states)
    expect(await chooser.choose()).toBe(a)
    states.set(a, refused)
    states.set(b, primary)
    chooser.forget(a)
    expect(await chooser.choose()).toBe(b)
    expect(probes).toHaveLength(4)
  })

  it("random: the order of a scan and the pick among the fitting hosts follow the random source", async () => {
    const draws = [0.99, 0.99, 0.0, 0.7]
    const { chooser } = chooserOver(hostMap([[a, primary], [b, primary], [c, standby]]), {
      loadBalance: "random",
      random: () => draws.shift() ?? 0
    })
    // shuffle (i=2: 0.99 -> 2, i=1: 0.99 -> 1) keeps a, b, c; the pick 0.0 -> a; the next 0.7 -> b
    expect(await chooser.choose()).toBe(a)
    expect(await chooser.choose()).toBe(b)
  })

  it("no host answers: the error of the first host, or an authentication failure when one host gave it", async () => {
    await expect(chooserOver(hostMap([[a, refused], [b, new Error("timeout expired")]])).chooser.choose()).rejects.toBe(refused)
    await expect(chooserOver(hostMap([[a, refused], [b, authFailure]])).chooser.choose()).rejects.toBe(authFailure)
  })

  it("hosts answer and none fits: NoSuitableHostCause says what each one was", async () => {
    const failure = await chooserOver(hostMap([[a, refused], [b, standby]])).chooser.choose().catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(NoSuitableHostCause)
    expect(failure instanceof NoSuitableHostCause ? failure.seen : []).toEqual([
      "127.0.0.1:5001 failed (connect ECONNREFUSED)",
      "127.0.0.1:5002 is a hot standby"
    ])
  })

  it("PrimaryChanged: not for the first writable host, once per move, never for a standby", () => {
    const { chooser, moves } = chooserOver(hostMap([[a, primary], [b, standby]]))
    chooser.confirmed(a, primary)
    chooser.confirmed(a, primary)
    chooser.confirmed(b, standby)
    expect(moves).toEqual([])
    chooser.confirmed(b, primary)
    chooser.confirmed(b, primary)
    expect(moves).toEqual([[a.port, b.port]])
    expect(chooser.currentWritable()).toBe(b)
  })
})

describe("session state", () => {
  it("from ParameterStatus when both parameters were reported (PostgreSQL 14+)", () => {
    expect(stateFromParameters(new Map([["in_hot_standby", "on"], ["default_transaction_read_only", "on"]]))).toEqual(standby)
    expect(stateFromParameters(new Map([["in_hot_standby", "off"], ["default_transaction_read_only", "off"]]))).toEqual(primary)
    expect(stateFromParameters(new Map([["default_transaction_read_only", "off"]]))).toBeUndefined()
  })

  it("from one query when the server reported neither", async () => {
    const asked: Array<string> = []
    const client = {
      query: (text: string) => {
        asked.push(text)
        return Promise.resolve({ rows: [{ hot_standby: true, read_only: "on" }] })
      }
    } as unknown as Pg.Client
    expect(await sessionState(client, new Map())).toEqual(standby)
    expect(asked).toEqual([stateQuery])
    expect(await sessionState(client, new Map([["in_hot_standby", "off"], ["default_transaction_read_only", "off"]]))).toEqual(primary)
    expect(asked).toHaveLength(1)
  })
})
