import eslint from "@eslint/js"
import globals from "globals"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["node_modules/", ".mesh/", ".build/", "dist/"] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }]
    }
  },
  // The report pages' scripts run in the browser.
  { files: ["reports/pages/**/*.js"], languageOptions: { sourceType: "module", globals: globals.browser } },
  { files: ["**/*.cjs"], languageOptions: { sourceType: "commonjs", globals: { module: "writable", require: "readonly" } } },
  {
    files: ["**/*.test.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        { object: "it", property: "skip", message: "no skipped tests" },
        { object: "test", property: "skip", message: "no skipped tests" },
        { object: "describe", property: "skip", message: "no skipped tests" }
      ]
    }
  }
)
