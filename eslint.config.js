// ESLint flat config: typescript-eslint's type-aware rules on every TypeScript file of the
// project (src/, test/, bench/, vitest.config.ts — the files tsconfig.json includes).
// Formatting is Prettier's job (`.prettierrc.json`); eslint-config-prettier turns off the
// rules that would argue with it.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import prettier from "eslint-config-prettier";
import tseslint from "typescript-eslint";

export default defineConfig(
  {
    // scratch/ holds local, untracked files (ignored by git too).
    ignores: ["node_modules/", "dist/", "coverage/", "data/", "test/fixtures/", "scratch/"],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
  },
  js.configs.recommended,
  {
    files: ["**/*.ts", "**/*.mts", "**/*.cts"],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Promises: none dropped, none passed where a void callback is expected, no await on a non-promise,
      // and `return await` inside try/catch so the catch and finally see the rejection.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/return-await": ["error", "in-try-catch"],
      // Type-only imports are marked (tsconfig has verbatimModuleSyntax) and leave no side-effect import behind.
      "@typescript-eslint/consistent-type-imports": ["error", { prefer: "type-imports", fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-import-type-side-effects": "error",
      // Unused code is removed; a leading underscore marks a parameter or binding kept on purpose.
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          args: "after-used",
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrors: "all",
          caughtErrorsIgnorePattern: "^_",
          destructuredArrayIgnorePattern: "^_",
          ignoreRestSiblings: true,
        },
      ],
      // No deprecated API (e.g. zod 4's no-op `.finite()`).
      "@typescript-eslint/no-deprecated": "error",
      // A switch over a union handles every member (or has a default).
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      eqeqeq: ["error", "always", { null: "ignore" }],
    },
  },
  {
    // Migrations are frozen in time and typed `Kysely<any>` on purpose (CONVENTIONS.md, habit 11).
    files: ["src/**/migrations/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
    },
  },
  {
    // Tests: fakes implement async interfaces without awaiting, expect() receives methods, and
    // request bodies captured from nock are untyped JSON. src/ keeps every rule.
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/unbound-method": "off",
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-return": "off",
    },
  },
  {
    // Plain JavaScript (this file): no type information.
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
  prettier,
);
