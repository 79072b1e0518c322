import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["{platform,contracts,edge,projections,consumers,read,powerbi,reports,console,infra}/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default"]
  }
})
