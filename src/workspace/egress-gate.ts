import { chown, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { SandboxUnavailableError } from "../domain/errors.js";
import type { SandboxNetwork } from "./sandbox.js";
import {
  DEFAULT_EGRESS_PROXY_PORT,
  defaultEgressAllowlist,
  type EgressRegistrySources,
  egressEnv,
  egressShellCommand,
  startEgressProxy,
  type EgressLog,
  type EgressProxy,
} from "./sandbox/egress-proxy.js";

/** The port the forwarder listens on inside each sandbox (its own network namespace). */
const FORWARDER_PORT = DEFAULT_EGRESS_PROXY_PORT;

/** Options of {@link EgressGate}. */
export interface EgressGateOptions {
  /** Hosts the set-up step may reach; `undefined` → {@link defaultEgressAllowlist} of `registries` (the registries configured on this host). */
  allow: readonly string[] | undefined;
  /** The registries configured for the server (from `config/`), for the default allowlist. */
  registries?: EgressRegistrySources;
  /** The host user sandboxed commands run as (it must be able to connect to the socket); `null` for the app's own user. */
  owner: { uid: number; gid: number } | null;
  log?: EgressLog;
}

/**
 * The only network a sandboxed command can get: one egress proxy per process, started on first
 * use on a Unix socket in a private folder, allowing the operator's host list only (never
 * loopback, link-local, metadata or private addresses). {@link EgressGate.wrap} turns a
 * command line into one that reaches the network through it.
 */
export class EgressGate {
  readonly #options: EgressGateOptions;
  #proxy: Promise<{ proxy: EgressProxy; dir: string }> | undefined;

  constructor(options: EgressGateOptions) {
    this.#options = options;
  }

  async #start(): Promise<{ proxy: EgressProxy; dir: string }> {
    const allow = this.#options.allow ?? (await defaultEgressAllowlist(this.#options.registries));
    if (allow.length === 0) {
      throw new SandboxUnavailableError("the set-up step may use the network, but no host is allowed: set SANDBOX_NETWORK_ALLOW");
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), "mc-egress-"));
    const socketPath = path.join(dir, "proxy.sock");
    const proxy = await startEgressProxy({ socketPath, allow, ...(this.#options.log ? { log: this.#options.log } : {}) });
    const owner = this.#options.owner;
    if (owner) {
      // The sandbox user connects to the socket; nobody else may.
      await chown(dir, owner.uid, owner.gid);
      await chown(socketPath, owner.uid, owner.gid);
    }
    return { proxy, dir };
  }

  /**
   * `command` rewritten to start the forwarder first, and the network settings for
   * `runSandboxed`.
   *
   * @throws {SandboxUnavailableError} when no host is allowed or the proxy cannot start
   */
  async wrap(command: string): Promise<{ command: string; network: SandboxNetwork }> {
    this.#proxy ??= this.#start().catch((err: unknown) => {
      this.#proxy = undefined;
      throw err instanceof SandboxUnavailableError
        ? err
        : new SandboxUnavailableError(`the egress proxy cannot start: ${err instanceof Error ? err.message : String(err)}`);
    });
    const { proxy } = await this.#proxy;
    return {
      command: egressShellCommand(command, FORWARDER_PORT, proxy.socketPath),
      network: { mode: "proxy", socketPath: proxy.socketPath, env: egressEnv(FORWARDER_PORT) },
    };
  }

  /** Stops the proxy, if it was started. */
  async close(): Promise<void> {
    const started = await this.#proxy?.catch(() => undefined);
    this.#proxy = undefined;
    if (!started) return;
    await started.proxy.close();
    await rm(started.dir, { recursive: true, force: true });
  }
}
