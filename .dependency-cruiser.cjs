/**
 * The floors of the house, checked by the test command (`npm run layout`). From the ground up:
 * platform (logger, settings, SQL text) <- contracts <- edge | projections <- consumers | read; consumers <- powerbi;
 * read | powerbi <- reports (the report export service) | console (the operator's console); all <- infra (the CLI entry and the local harness) and bench. A module imports only from its own floor
 * or below; tests may reach the harness.
 */
const above = (floors) => `^(${floors.join("|")})/`
const notTest = "\\.test\\.ts$"

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "modules that import each other, directly or round a loop",
      from: {},
      to: { circular: true }
    },
    {
      name: "platform-imports-nothing-of-ours",
      severity: "error",
      from: { path: "^platform/", pathNot: notTest },
      to: { path: above(["contracts", "edge", "projections", "consumers", "read", "powerbi", "reports", "console", "infra", "bench"]) }
    },
    {
      name: "contracts-stand-on-platform",
      severity: "error",
      from: { path: "^contracts/", pathNot: notTest },
      to: { path: above(["edge", "projections", "consumers", "read", "powerbi", "reports", "console", "infra", "bench"]) }
    },
    {
      name: "edge-stands-on-contracts",
      severity: "error",
      from: { path: "^edge/", pathNot: notTest },
      to: { path: above(["projections", "consumers", "read", "powerbi", "reports", "console", "infra", "bench"]) }
    },
    {
      name: "projections-stand-on-contracts",
      severity: "error",
      from: { path: "^projections/", pathNot: notTest },
      to: { path: above(["edge", "consumers", "read", "powerbi", "reports", "console", "infra", "bench"]) }
    },
    {
      name: "consumers-stand-on-projections",
      severity: "error",
      from: { path: "^consumers/", pathNot: notTest },
      to: { path: above(["edge", "read", "powerbi", "reports", "console", "infra", "bench"]) }
    },
    {
      name: "powerbi-stands-on-consumers",
      severity: "error",
      comment:
        "the Power BI sink follows the consumers' change feeds: it may use consumers, projections, contracts and platform, never the read side",
      from: { path: "^powerbi/", pathNot: notTest },
      to: { path: above(["edge", "read", "reports", "console", "infra", "bench"]) }
    },
    {
      name: "the-emulator-stands-alone",
      severity: "error",
      comment: "the Power BI emulator is the service, not the mesh: it knows only the documented rules (powerbi/rules.ts) and the platform",
      from: { path: "^powerbi/emulator/", pathNot: notTest },
      to: { path: ["^(contracts|edge|projections|consumers|read|reports|console|infra|bench)/", "^powerbi/(?!emulator/|rules\\.ts$)"] }
    },
    {
      name: "read-stands-on-the-catalogue",
      severity: "error",
      comment:
        "the read side knows the marts from the catalogue, as data (and the row-level security's names), and runs no projection or consumer code",
      from: { path: "^read/", pathNot: notTest },
      to: {
        path: ["^(edge|consumers|powerbi|reports|console|infra|bench)/", "^projections/"],
        pathNot: "^projections/(catalogue|table|row-scope)\\.ts$"
      }
    },
    {
      name: "reports-stand-on-read-and-powerbi",
      severity: "error",
      comment:
        "the report export service serves beside the read API and renders through Power BI: it may use read, powerbi (not its emulator), consumers, projections, contracts, platform and the edge's pure log-message encoding, never infra or bench",
      from: { path: "^reports/", pathNot: notTest },
      to: { path: ["^(console|infra|bench)/", "^powerbi/emulator/", "^edge/(?!log-message\\.ts$)"] }
    },
    {
      name: "console-stands-on-read-and-powerbi",
      severity: "error",
      comment:
        "the operator's console serves beside the read API and shows the consumers' and the Power BI sink's state: it may use read, powerbi (not its emulator), consumers, projections, contracts and platform, never the edge, reports, infra or bench (the quarantine's reader comes in from infra)",
      from: { path: "^console/", pathNot: notTest },
      to: { path: ["^(edge|reports|infra|bench)/", "^powerbi/emulator/"] }
    },
    {
      name: "mart-declarations-are-data",
      severity: "error",
      comment: "the catalogue and what it is built from never load projection code, so the read side never runs any",
      from: { path: ["^projections/(catalogue|table|statements|calendar|row-scope)\\.ts$", "^projections/[^/]+/marts\\.ts$"] },
      to: { path: ["^projections/(index|projection)\\.ts$", "^projections/[^/]+/projection\\.ts$"] }
    },
    {
      name: "only-the-harness-reads-local-state",
      severity: "error",
      comment: "the dev harness (infra/local) is used by itself, the CLI entry, tests and benches; production code never reads it",
      from: { pathNot: ["^infra/local/", "^infra/cli\\.ts$", notTest, "^bench/"] },
      to: { path: "^infra/local/" }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|\\.build|\\.mesh)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
      extensions: [".ts", ".js"]
    }
  }
}
