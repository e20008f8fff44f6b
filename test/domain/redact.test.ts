import { describe, expect, it } from "vitest";

import { REDACTED, redactSecrets } from "../../src/domain/redact.js";

const R = REDACTED;

describe("redactSecrets: token formats", () => {
  it.each([
    ["classic GitHub PAT (ghp_)", `ghp_${"A1".repeat(18)}`],
    ["OAuth token (gho_)", `gho_${"b2".repeat(18)}`],
    ["user-to-server token (ghu_)", `ghu_${"c3".repeat(18)}`],
    ["installation token (ghs_)", `ghs_${"d4".repeat(18)}`],
    ["refresh token (ghr_)", `ghr_${"e5".repeat(38)}`],
    ["fine-grained PAT (github_pat_)", `github_pat_11ABCDEFG0_${"x".repeat(59)}`],
    ["Anthropic key (sk-ant-)", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-xyz"],
    ["npm token (npm_)", `npm_${"f6".repeat(18)}`],
    ["AWS access key id (AKIA)", "AKIAIOSFODNN7EXAMPLE"],
    ["AWS temporary key id (ASIA)", "ASIAY34FZKBOKMUTVV7A"],
  ])("%s", (_name, secret) => {
    expect(redactSecrets(`use ${secret} here`)).toBe(`use ${R} here`);
  });

  it("does not redact short look-alikes and ordinary words", () => {
    const text = "ghp_short, sk-ant-x, AKIA1234, ASIA is a continent, npm_config, the skeleton key";
    expect(redactSecrets(text)).toBe(text);
  });
});

describe("redactSecrets: PEM private keys", () => {
  const body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK";

  it.each(["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "PGP PRIVATE KEY BLOCK"])("%s", (label) => {
    const pem = `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`;
    expect(redactSecrets(`before\n${pem}\nafter`)).toBe(`before\n${R}\nafter`);
  });

  it("a block cut at its end (no END line) is redacted through the end", () => {
    expect(redactSecrets(`key:\n-----BEGIN OPENSSH PRIVATE KEY-----\n${body}`)).toBe(`key:\n${R}`);
  });

  it("a block cut at its start (the tail of a log) is redacted from its base64 lines to the END line", () => {
    expect(redactSecrets(`Error reading key\n${body}\n-----END RSA PRIVATE KEY-----\ndone`)).toBe(`Error reading key\n${R}\ndone`);
  });

  it("keepLines keeps one line per line, with a diff's line markers", () => {
    const patch = `+-----BEGIN EC PRIVATE KEY-----\n+${body.replace("\n", "\n+")}\n+-----END EC PRIVATE KEY-----\n context`;
    expect(redactSecrets(patch, { keepLines: true, linePrefix: /^[ +-]/ })).toBe(`+${R}\n+${R}\n+${R}\n+${R}\n context`);
    const tail = `${body}\n-----END RSA PRIVATE KEY-----\nnext`;
    expect(redactSecrets(tail, { keepLines: true })).toBe(`${R}\n${R}\n${R}\nnext`);
  });

  it("does not backtrack for ever over long base64 without an END line", () => {
    const started = performance.now();
    redactSecrets(`${"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n".repeat(20_000)}-----END X-----`);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe("redactSecrets: HTTP credentials", () => {
  it("an Authorization header value, keeping the header and scheme", () => {
    expect(redactSecrets("Authorization: Bearer abc.def.ghi123456")).toBe(`Authorization: Bearer ${R}`);
    expect(redactSecrets("authorization: token 0123456789abcdef")).toBe(`authorization: token ${R}`);
  });

  it("an x-access-token URL, keeping the rest of the URL", () => {
    expect(redactSecrets("fatal: https://x-access-token:v1.0123456789abcdef@github.com/o/r.git")).toBe(`fatal: https://x-access-token:${R}@github.com/o/r.git`);
  });
});

describe("redactSecrets: npm", () => {
  it("_authToken=… in .npmrc, with and without a registry prefix", () => {
    expect(redactSecrets("_authToken=0a1b2c3d-4e5f-6789-abcd-ef0123456789")).toBe(`_authToken=${R}`);
    expect(redactSecrets("//registry.example.test/:_authToken=0a1b2c3d-4e5f")).toBe(`//registry.example.test/:_authToken=${R}`);
    expect(redactSecrets("//npm.pkg.github.com/:_authToken = secretvalue")).toBe(`//npm.pkg.github.com/:_authToken = ${R}`);
  });

  it("_auth=… (base64 user:password) and _password=…", () => {
    expect(redactSecrets("_auth=dXNlcjpwYXNzd29yZA==")).toBe(`_auth=${R}`);
    expect(redactSecrets("//host/:_password=cGFzc3dvcmQ=")).toBe(`//host/:_password=${R}`);
  });

  it("keeps an environment variable reference", () => {
    expect(redactSecrets("//registry.example.test/:_authToken=${NPM_TOKEN}")).toBe("//registry.example.test/:_authToken=${NPM_TOKEN}");
  });
});

describe("redactSecrets: AWS", () => {
  it("aws_secret_access_key in a credentials file, keeping the key name", () => {
    const file = "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";
    expect(redactSecrets(file)).toBe(`[default]\naws_access_key_id = ${R}\naws_secret_access_key = ${R}\n`);
  });

  it("AWS_SECRET_ACCESS_KEY and aws_session_token as environment variables", () => {
    expect(redactSecrets("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCY")).toBe(`AWS_SECRET_ACCESS_KEY=${R}`);
    expect(redactSecrets('aws_session_token: "IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJHMEUCIQ"')).toBe(`aws_session_token: "${R}"`);
  });
});

describe("redactSecrets: netrc", () => {
  it("the password of a machine line, keeping machine and login", () => {
    expect(redactSecrets("machine github.com login octocat password hunter2")).toBe(`machine github.com login octocat password ${R}`);
  });

  it("the password of a machine entry over several lines, and of a default entry", () => {
    expect(redactSecrets("machine api.example.com\n  login me\n  password s3cr3t\n")).toBe(`machine api.example.com\n  login me\n  password ${R}\n`);
    expect(redactSecrets("default login anonymous password guest@")).toBe(`default login anonymous password ${R}`);
  });

  it("leaves prose about passwords alone", () => {
    const text = "The password reset page is broken on this machine. The default password is documented.";
    expect(redactSecrets(text)).toBe(text);
  });
});

describe("redactSecrets: Docker config", () => {
  it('the auth value of "auths", keeping the structure', () => {
    const config = '{\n  "auths": {\n    "ghcr.io": { "auth": "dXNlcjpnaHBfc2VjcmV0" },\n    "https://index.docker.io/v1/": {"auth":"b2N0bzpwYXNz"}\n  }\n}';
    expect(redactSecrets(config)).toBe(`{\n  "auths": {\n    "ghcr.io": { "auth": "${R}" },\n    "https://index.docker.io/v1/": {"auth":"${R}"}\n  }\n}`);
  });

  it("identitytoken and registrytoken", () => {
    expect(redactSecrets('{"identitytoken": "eyJhbGciOi-abc"}')).toBe(`{"identitytoken": "${R}"}`);
    expect(redactSecrets('{"registrytoken":"abc123"}')).toBe(`{"registrytoken":"${R}"}`);
  });
});

describe("redactSecrets: generic assignments keep the key and redact the value", () => {
  it.each([
    ["password=", "password=hunter2", `password=${R}`],
    ["secret=", "secret=abc123def", `secret=${R}`],
    ["token=", "token=0123456789abcdef", `token=${R}`],
    ["api_key=", "api_key=k-98765", `api_key=${R}`],
    ["key: value (YAML)", "password: Sup3rS3cret!", `password: ${R}`],
    ["double quotes", 'api_key: "letters-only-but-quoted"', `api_key: "${R}"`],
    ["single quotes", "client_secret = 'hunter two'", `client_secret = '${R}'`],
    ["JSON", '{"password": "pa55word", "user": "me"}', `{"password": "${R}", "user": "me"}`],
    ["prefixed environment variable", "export DB_PASSWORD=plainletters", `export DB_PASSWORD=${R}`],
    ["camelCase key", "apiKey: abc-123-def", `apiKey: ${R}`],
    ["query string", "GET /reset?token=abc123&user=me", `GET /reset?token=${R}&user=me`],
    ["Go :=", "token := xyz987", `token := ${R}`],
  ])("%s", (_name, input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });

  it("leaves code, types, numbers and references alone", () => {
    const code = [
      "  token: string;",
      "  password?: string | null,",
      "const token = await getToken();",
      "const secret = process.env.SECRET;",
      "password = hash(input)",
      "secret: SECRET_NAME",
      "max_tokens: 4096",
      "token_budget = 6_000",
      "token: ${{ secrets.GITHUB_TOKEN }}",
      "password: <your password>",
      "if (token === expected) return;",
      "secretsManager = new SecretsManager()",
    ].join("\n");
    expect(redactSecrets(code)).toBe(code);
  });

  it("does not redact a value twice", () => {
    expect(redactSecrets(`token: ghp_${"a".repeat(36)}`)).toBe(`token: ${R}`);
    expect(redactSecrets(redactSecrets("password=hunter2"))).toBe(`password=${R}`);
  });

  it("stays linear on long keyword runs", () => {
    const started = performance.now();
    redactSecrets("token".repeat(40_000));
    redactSecrets(`${"a".repeat(200_000)}password`);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
