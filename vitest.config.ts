import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["contracts/**/*.test.ts", "edge/**/*.test.ts", "consumers/**/*.test.ts", "projections/**/*.test.ts", "infra/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default"]
  }
})
