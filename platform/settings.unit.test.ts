import { describe, expect, it } from "vitest"
import {
  databaseUrl,
  natsSettings,
  numberSetting,
  optionalSetting,
  requiredSetting,
  SettingError,
  type SettingSource,
  wholeNumberSetting
} from "./settings.ts"

const PORT = { env: "PORT", flag: "port" }

describe("the settings loader", () => {
  it("reads the environment, and a flag given on the command line wins over it", () => {
    expect(optionalSetting({ env: { PORT: "8000" } }, PORT)).toBe("8000")
    expect(optionalSetting({ env: { PORT: "8000" }, flags: { port: "9000" } }, PORT)).toBe("9000")
    expect(optionalSetting({ env: { PORT: "8000" }, flags: { port: undefined } }, PORT)).toBe("8000")
  })

  it("takes an empty value for one not given", () => {
    expect(optionalSetting({ env: { PORT: "" }, flags: { port: "" } }, PORT)).toBeUndefined()
    expect(wholeNumberSetting({ env: { PORT: "" } }, PORT, 8788)).toBe(8788)
  })

  it("refuses a missing required setting with a tagged error naming it and how to set it", () => {
    const source: SettingSource = { env: {} }
    expect(() => requiredSetting(source, { env: "READ_DATABASE_URL" }, "set it to a reader role")).toThrow(
      "READ_DATABASE_URL is not set: set it to a reader role"
    )
    try {
      databaseUrl(source)
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(SettingError)
      expect(error).toMatchObject({ _tag: "SettingError", setting: "DATABASE_URL" })
      expect((error as SettingError).message).toMatch(/^DATABASE_URL is not set: .*npm run up/)
    }
  })

  it("names the flag beside the variable only where the command takes flags", () => {
    expect(() => wholeNumberSetting({ env: { PORT: "x" } }, PORT, 1)).toThrow('PORT must be a whole number of at least 1, got "x"')
    expect(() => wholeNumberSetting({ env: {}, flags: { port: "-3" } }, PORT, 1)).toThrow(
      'PORT (--port) must be a whole number of at least 1, got "-3"'
    )
  })

  it("checks whole numbers and numbers against their minimum", () => {
    expect(wholeNumberSetting({ env: { N: "0" } }, { env: "N" }, 5, 0)).toBe(0)
    expect(() => wholeNumberSetting({ env: { N: "0" } }, { env: "N" }, 5, 1)).toThrow("N must be a whole number of at least 1")
    expect(() => wholeNumberSetting({ env: { N: "2.5" } }, { env: "N" }, 5)).toThrow('got "2.5"')
    expect(numberSetting({ env: { N: "2.5" } }, { env: "N" }, 10)).toBe(2.5)
    expect(numberSetting({ env: {} }, { env: "N" }, 10)).toBe(10)
    expect(() => numberSetting({ env: { N: "-1" } }, { env: "N" }, 10, 0)).toThrow('N must be a number of at least 0, got "-1"')
  })

  it("reaches NATS as the default user at the default URL unless told otherwise, the password from the environment only", () => {
    expect(natsSettings({ env: {} }, "projector")).toEqual({
      url: "nats://127.0.0.1:4222",
      servers: ["nats://127.0.0.1:4222"],
      user: "projector"
    })
    expect(natsSettings({ env: { NATS_URL: "nats://log:4222", NATS_USER: "p2", NATS_PASSWORD: "s" } }, "projector")).toEqual({
      url: "nats://log:4222",
      servers: ["nats://log:4222"],
      user: "p2",
      password: "s"
    })
    expect(natsSettings({ env: { NATS_URL: "nats://a:1" }, flags: { "nats-url": "nats://b:2", "nats-user": "admin2" } }, "admin")).toEqual({
      url: "nats://b:2",
      servers: ["nats://b:2"],
      user: "admin2"
    })
  })

  it("takes a cluster as a comma-separated list of servers", () => {
    expect(natsSettings({ env: { NATS_URL: "nats://hub1:4222, nats://hub2:4222,nats://hub3:4222" } }, "projector").servers).toEqual([
      "nats://hub1:4222",
      "nats://hub2:4222",
      "nats://hub3:4222"
    ])
  })
})
