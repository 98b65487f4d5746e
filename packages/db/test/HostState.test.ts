/**
 * HostState, the hosts module's rules as `takumi-db doctor` applies them to what it found at each
 * listed host: which host a new connection would use, and the state a row of the query says.
 */
import { describe, expect, it } from "@effect/vitest"
import * as HostState from "../src/HostState.js"

const primary: HostState.SessionState = { hotStandby: false, readOnly: false }
const standby: HostState.SessionState = { hotStandby: true, readOnly: true }
const readOnly: HostState.SessionState = { hotStandby: false, readOnly: true }

/** hosts named a, b, c, ... with these states (`undefined`: not reached) */
const hosts = (...states: ReadonlyArray<HostState.SessionState | undefined>) =>
  states.map((state, i) => ({ route: String.fromCharCode(97 + i), state }))

describe("HostState.wouldUse", () => {
  it("read-write with disable: the first writable host in the listed order, past a failed one and a standby", () => {
    expect(HostState.wouldUse("read-write", "disable", hosts(undefined, standby, readOnly, primary))).toEqual(["d"])
  })

  it("primary accepts a read-only primary; standby only a hot standby", () => {
    expect(HostState.wouldUse("primary", "disable", hosts(standby, readOnly, primary))).toEqual(["b"])
    expect(HostState.wouldUse("standby", "disable", hosts(primary, readOnly, standby))).toEqual(["c"])
  })

  it("prefer-standby takes a standby when one answered, else any host", () => {
    expect(HostState.wouldUse("prefer-standby", "disable", hosts(primary, standby))).toEqual(["b"])
    expect(HostState.wouldUse("prefer-standby", "disable", hosts(undefined, primary))).toEqual(["b"])
  })

  it("random: every fitting host is a candidate", () => {
    expect(HostState.wouldUse("any", "random", hosts(primary, undefined, standby))).toEqual(["a", "c"])
  })

  it("none when no host fits", () => {
    expect(HostState.wouldUse("read-write", "disable", hosts(standby, undefined))).toEqual([])
  })
})

describe("HostState.stateFromRow", () => {
  it("reads pg_is_in_recovery() and default_transaction_read_only", () => {
    expect(HostState.stateFromRow({ hot_standby: true, read_only: "on" })).toEqual(standby)
    expect(HostState.stateFromRow({ hot_standby: false, read_only: "on" })).toEqual(readOnly)
    expect(HostState.stateFromRow({ hot_standby: false, read_only: "off" })).toEqual(primary)
  })
})
