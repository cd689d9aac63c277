/**
 * @module repository/model-repository
 * Model name → the handles of the versions that serve it (the config's
 * `version_policy`: by default the latest version only; a request without a
 * version goes to the highest one serving, as in Triton). Loads are
 * transactional: the versions are loaded beside the old ones and swapped in
 * together only when all are READY; a failed load or reload (including a
 * failed `model_warmup` sample) leaves the previous versions serving. Loads
 * and unloads of one model are serialised; different models load concurrently.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import type { Backend, ModelMetadata } from '../backends/backend.js';
import { selectBackend } from '../backends/select.js';
import { withReshape } from '../backends/reshape.js';
import { ENSEMBLE_CONCURRENCY, EnsembleBackend, isEnsemble, planEnsemble, type PlannedStep, type StepRunner } from '../backends/ensemble.js';
import type { Batcher } from '../batching/batcher.js';
import { InvalidArgument, KinferError, NotFound, NotReady, Unavailable, Unsupported } from '../core/errors.js';
import type { Parameters, TensorSpec } from '../core/tensor.js';
import { batchObserver, forgetModel, type Metrics } from '../observability/metrics.js';
import { ModelStatistics } from '../observability/statistics.js';
import { within } from '../core/within.js';
import { DEFAULT_DRAIN_TIMEOUT_MS } from '../config.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { ModelHandle, type ModelState } from './model-handle.js';
import type { ModelConfig } from './model-config.js';
import { checkModelName as checkPlainName, listModelNames, modelSourceStamp, readModelLayout, versionFiles, type ModelVersionFiles } from './layout.js';
import { selectVersions } from './version-policy.js';
import { checkOverridePath, stageOverrideFiles, type OverrideFiles, type StagedFiles } from './override-files.js';
import { parseModelConfig } from './config-files.js';
import { runWarmup } from './warmup.js';
import { localPathOf } from '../storage/pull.js';
import { displayUri } from '../storage/transfer.js';
import { planSequences } from './sequence-plan.js';
import { SequenceBatcher } from '../batching/sequence-batcher.js';

export interface BatcherFactoryOptions {
  name: string;
  version: string;
  instances: Backend[];
  metadata: ModelMetadata;
  config: ModelConfig;
  /** The version's Triton statistics: the batcher feeds their queue and compute times. */
  statistics?: ModelStatistics;
}

export type BatcherFactory = (opts: BatcherFactoryOptions) => Batcher;

/** What a pull left: the folder that now holds the model, and how to finish or undo replacing `dest`. */
export interface PulledModel {
  dir: string;
  /** The new files loaded: removes what they replaced. */
  commit(): Promise<void>;
  /** The new files failed to load: puts back what they replaced (nothing, if `dest` was empty). */
  rollback(): Promise<void>;
}

/** Fetches `uri` into `dest`, keeping what it replaces until `commit` or `rollback`. */
export type Puller = (uri: string, dest: string, signal?: AbortSignal) => Promise<PulledModel>;

export interface ModelRepositoryOptions {
  repoDir: string;
  logger: Logger;
  metrics?: Metrics;
  createBatcher: BatcherFactory;
  /** Needed for load requests with `parameters.storage_uri` and for function mode. */
  pull?: Puller;
  /**
   * Triton JSON model configs for loads of these names that carry no `config` parameter: the
   * function's own (KINFER_MODEL_CONFIG for MODEL_NAME), also when KServe's agent loads it with `{}`.
   */
  defaultConfigs?: ReadonlyMap<string, string>;
  /**
   * How long an unload (or the old version's close after a reload) waits for its queued and
   * running requests; past it they are answered Unavailable and the backend is released anyway.
   */
  drainTimeoutMs?: number;
  /** The server's response cache: a version's entries go when it is unloaded or replaced. */
  responseCache?: ResponseCache;
  /** Runs an ensemble's step on its composing model (the data plane's infer); without it ensembles are refused. */
  runStep?: StepRunner;
  /**
   * Folders a load request's local `storage_uri` (`file://`, `pvc://`, a path) must lie in, symlinks
   * followed: a client of the load API must not make the server read any file it can (labels are read
   * back through classification). Undefined: anywhere (the server's own STORAGE_URI is not a request).
   */
  localLoadRoots?: readonly string[];
  /** The environment a local storage URI is read in (KINFER_PVC_ROOT for `pvc://`): the server's, as the puller's. */
  env?: NodeJS.ProcessEnv;
}


export interface IndexEntry {
  name: string;
  version?: string;
  state: ModelState;
  reason?: string;
}

interface Entry {
  state: ModelState;
  /** The versions serving, ascending by number (the last answers requests without a version); empty when none. */
  handles: ModelHandle[];
  reason?: string;
  /** The last successful load's parameters without `storage_uri` (none after a `file:` load): what `reload` loads with. */
  parameters?: Parameters;
  /** Versions ('' before one was chosen) with a failed-load duration series: an unload drops them. */
  failedVersions?: Set<string>;
}

/** One model's load/unload chain: operations on a model run one at a time, in call order. */
interface Chain {
  tail: Promise<unknown>;
  /** Operations queued or running, this one included; the chain is dropped at 0. */
  pending: number;
}

/** How long an ensemble's load waits for a composing ensemble that is itself loading. */
const NESTED_ENSEMBLE_WAIT_MS = 10 * 60_000;

/** Backend instances of one version at most (`instance_group` counts, `threads`): each holds a session, and often a thread. */
export const MAX_INSTANCES = 256;

/** Largest `label_filename` read: ~1M labels of 60 bytes. */
const MAX_LABEL_FILE_BYTES = 64 * 2 ** 20;

/** Each output's `label_filename` read from the model folder: one label per line, line i for class i. */
async function readLabelFiles(dir: string, config: ModelConfig): Promise<Map<string, string[]>> {
  const labels = new Map<string, string[]>();
  for (const [output, file] of Object.entries(config.outputLabelFiles ?? {})) {
    const cannot = (why: string) => new InvalidArgument(`model '${config.name}': output '${output}': cannot read label_filename ${JSON.stringify(file)} in ${dir}: ${why}`);
    const size = (await stat(join(dir, file)).catch((err: NodeJS.ErrnoException) => Promise.reject(cannot(err.code ?? err.message)))).size;
    // Labels are held in memory for the model's life: a file this large is a wrong name (a weights file), not labels.
    if (size > MAX_LABEL_FILE_BYTES) throw cannot(`${size} bytes, over the ${MAX_LABEL_FILE_BYTES / 2 ** 20} MiB a label file may have`);
    const text = await readFile(join(dir, file), 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw cannot(err.code ?? err.message);
    });
    const lines = text.split(/\r?\n/);
    if (lines.at(-1) === '') lines.pop();
    labels.set(output, lines);
  }
  return labels;
}

/** A request's version as Triton reads it: an integer ("02" is "2"), -1 (and none) the highest serving (""). */
function versionAsTriton(version: string | undefined): string | undefined {
  if (version === undefined || !/^-?\d{1,19}$/.test(version)) return version;
  return BigInt(version) === -1n ? '' : BigInt(version).toString();
}

/** Rejects names that are not a plain folder name (`../x`, `a/b`, `..`); returns the name. */
export function checkModelName(name: string): string {
  checkPlainName(name);
  return name;
}

export class ModelRepository {
  private readonly entries = new Map<string, Entry>();
  /** Kept apart from `entries`: an unload drops the entry while a load may be queued behind it. */
  private readonly chains = new Map<string, Chain>();
  /** Set by closeAll: a load after it would hold sessions or devices nobody releases. */
  private closing = false;
  /** Models whose files live outside `repoDir` (pulled from file:// or pvc:// in place). */
  private readonly modelDirs = new Map<string, string>();
  /** Models serving from files sent with their load (Triton's `file:` overrides), until a load without files or an unload. */
  private readonly overrides = new Map<string, StagedFiles>();
  /** Ensembles whose load is running, with the config it loads: the cycle check sees them before they serve. */
  private readonly loadingEnsembles = new Map<string, ModelConfig>();
  /**
   * Models loaded only because an ensemble needed them, never by a load of their own (Triton's
   * dependents: `unload_dependents` unloads them with the last ensemble that runs them).
   */
  private readonly implicit = new Set<string>();

  constructor(private readonly opts: ModelRepositoryOptions) {}

  private get drainMs(): number {
    return this.opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  }

  get repoDir(): string {
    return this.opts.repoDir;
  }

  /**
   * Loads (or reloads) `name` from the repository folder, or from `files` (Triton's `file:`
   * overrides, which need a `config` parameter). Concurrent calls for the same model run one
   * after the other. On failure the previous versions, if any, keep serving and the error is
   * rethrown; without them the model is UNAVAILABLE with the reason.
   */
  load(name: string, parameters: Parameters = {}, files?: OverrideFiles): Promise<ModelHandle> {
    checkModelName(name);
    if (this.closing) return Promise.reject(new Unavailable(`model '${name}' not loaded: the server is shutting down`));
    if (files?.size) {
      // Triton's rule: the files replace the model folder, its config file included.
      if (typeof parameters.config !== 'string') return Promise.reject(new InvalidArgument(`model '${name}': file: parameters need a config parameter (the model's config as JSON)`));
      if (parameters.storage_uri !== undefined) return Promise.reject(new InvalidArgument(`model '${name}': file: parameters and storage_uri both name the model's files; send one`));
      try {
        for (const path of files.keys()) checkOverridePath(path);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    // Visible at once: the index says LOADING and requests get 409 (NotReady) while the load waits its turn.
    this.entryOf(name);
    this.implicit.delete(name); // loaded in its own right now (an ensemble's load marks it again after)
    return this.serialise(name, () => this.doLoad(name, this.withDefaultConfig(name, parameters), files));
  }

  /** `parameters` with the function's own config for `name` when they carry none. */
  private withDefaultConfig(name: string, parameters: Parameters): Parameters {
    const config = parameters.config === undefined ? this.opts.defaultConfigs?.get(name) : undefined;
    return config === undefined ? parameters : { ...parameters, config };
  }

  /**
   * Loads `name` again from its folder with the parameters of its last successful load (a pull's
   * `storage_uri` aside): for repository polling, when the folder's files change.
   */
  reload(name: string): Promise<void> {
    checkModelName(name);
    if (this.closing) return Promise.reject(new Unavailable(`model '${name}' not loaded: the server is shutting down`));
    this.entryOf(name);
    // The parameters are read in this operation's turn: a load queued before it (from the API) has set them by then.
    return this.serialise(name, async () => {
      // Files sent with the load serve, not the folder: a change to the folder is not theirs.
      if (this.overrides.has(name)) return;
      // Unloaded through the API while this waited (the unload kept the entry for it): stays unloaded.
      const entry = this.entries.get(name);
      if (!entry || (entry.handles.length === 0 && entry.state === 'UNLOADING')) {
        if (entry) this.dropUnlessQueued(name, entry);
        return;
      }
      await this.doLoad(name, this.withDefaultConfig(name, this.entries.get(name)?.parameters ?? {}));
    });
  }

  /**
   * Stops serving `name`: new requests get 404, queued ones finish, then the backend is released.
   * With `unloadDependents` (Triton's `unload_dependents`) an ensemble's composing models go too
   * when only ensembles loaded them and no other ensemble (serving or loading) runs them; nested
   * ensembles the same way. A dependent that fails to unload does not stop the others; the first
   * failure is thrown after.
   */
  async unload(name: string, opts: { unloadDependents?: boolean } = {}): Promise<void> {
    const steps = this.entries.get(name)?.handles[0]?.config.ensemble;
    await this.unloadOne(name);
    this.implicit.delete(name);
    if (!opts.unloadDependents || !steps) return;
    let failure: unknown;
    for (const m of new Set(steps.map((s) => s.modelName))) {
      if (!this.implicit.has(m) || !this.entries.has(m)) continue;
      const user = this.ensembleUsing(m);
      if (user) {
        this.opts.logger.info({ event: 'unload_dependent_kept', model: m, ensemble: name, usedBy: user }, `kept ${m}: ensemble ${user} still runs it`);
        continue;
      }
      await this.unload(m, opts).catch((err: unknown) => (failure ??= err));
    }
    if (failure !== undefined) throw failure;
  }

  /** An ensemble serving or loading with a step on `model`, or undefined. */
  private ensembleUsing(model: string): string | undefined {
    const runs = (c: ModelConfig) => c.ensemble?.some((s) => s.modelName === model);
    for (const [name, entry] of this.entries) if (entry.handles.some((h) => runs(h.config))) return name;
    for (const [name, config] of this.loadingEnsembles) if (runs(config)) return name;
    return undefined;
  }

  private unloadOne(name: string): Promise<void> {
    checkModelName(name);
    if (!this.entries.has(name)) return Promise.reject(new NotFound(`model '${name}' is not loaded`));
    return this.serialise(name, async () => {
      const entry = this.entries.get(name);
      const handles = entry?.handles ?? [];
      if (!entry || handles.length === 0) {
        // Nothing serving (a failed load, or unloaded meanwhile): forget the failure, unless a load waits.
        // UNLOADING tells a reload queued behind (a repository poll) that the model was unloaded.
        if (entry) {
          entry.state = 'UNLOADING';
          this.forgetFailures(name, entry);
          this.dropUnlessQueued(name, entry);
        }
        return;
      }
      entry.state = 'UNLOADING';
      entry.handles = [];
      try {
        await Promise.all(handles.map((h) => this.retire(name, h, true)));
        await this.dropOverride(name);
      } finally {
        this.forgetFailures(name, entry);
        this.dropUnlessQueued(name, entry);
        const versions = handles.map((h) => h.version);
        this.opts.logger.info({ event: 'unload', model: name, versions }, `unloaded ${name} (version ${versions.join(', ')})`);
      }
    });
  }

  /**
   * Closes a handle that no longer serves (unloaded, or replaced by a reload): its requests
   * finish within the drain limit or are answered 503, its backend is released, then its
   * response-cache entries (results of its last requests included) and, with `forgetMetrics`,
   * its metric series go.
   */
  private async retire(name: string, handle: ModelHandle, forgetMetrics: boolean): Promise<void> {
    const log = this.opts.logger;
    const at = { model: name, version: handle.version, ms: this.drainMs };
    try {
      const { drained, released } = await handle.close(this.drainMs);
      if (!drained) log.warn({ event: 'unload_timeout', ...at }, `model '${name}' v${handle.version}: requests still queued or running after ${this.drainMs} ms were answered 503`);
      if (!released) log.warn({ event: 'release_timeout', ...at }, `model '${name}' v${handle.version}: its backend did not finish releasing within ${this.drainMs} ms; going on without it`);
    } finally {
      this.opts.responseCache?.forget(handle.cacheScope);
      if (forgetMetrics && this.opts.metrics) forgetModel(this.opts.metrics, name, handle.version);
    }
  }

  /** The handle serving `name` at `version`; without a version, the highest version serving. */
  get(name: string, version?: string): ModelHandle {
    const entry = this.entries.get(name);
    const handles = entry?.handles;
    if (!handles?.length) {
      if (entry?.state === 'LOADING') throw new NotReady(`model '${name}' is loading`);
      // Unloaded by the shutdown (or never there): a request still arriving during the drain goes to another replica.
      if (this.closing) throw new Unavailable(`model '${name}' is not served: the server is shutting down; send the request to another replica`);
      if (entry?.state === 'UNAVAILABLE') throw new NotReady(`model '${name}' is not available: ${entry.reason}`);
      throw new NotFound(`model '${name}' is not found`);
    }
    version = versionAsTriton(version);
    if (version === undefined || version === '') return handles[handles.length - 1]!;
    const handle = handles.find((h) => h.version === version);
    if (!handle) {
      const serving = handles.map((h) => h.version).join(', ');
      throw new NotFound(`model '${name}' has no version '${version}' loaded (serving version${handles.length > 1 ? 's' : ''} ${serving})`);
    }
    return handle;
  }

  /** The versions of `name` serving, ascending by number (none when it does not serve). */
  versions(name: string): string[] {
    return (this.entries.get(name)?.handles ?? []).map((h) => h.version);
  }

  /** True when `name` at `version` (without one: its highest version serving) is loaded and healthy. */
  isReady(name: string, version?: string): boolean {
    const handles = this.entries.get(name)?.handles;
    if (!handles?.length) return false;
    const v = versionAsTriton(version);
    const handle = v === undefined || v === '' ? handles[handles.length - 1] : handles.find((h) => h.version === v);
    return !!handle && handle.healthy();
  }

  /** True when the repository knows `name`: loading, serving, unloading or failed. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Every version serving, by name, then ascending by version. */
  loaded(): ModelHandle[] {
    return [...this.entries.values()].flatMap((e) => e.handles).sort((a, b) => a.name.localeCompare(b.name) || Number(a.version) - Number(b.version));
  }

  /** Names with at least one version serving, sorted. */
  loadedNames(): string[] {
    return [...this.entries].flatMap(([name, e]) => (e.handles.length ? [name] : [])).sort((a, b) => a.localeCompare(b));
  }

  /**
   * Every model in the repository folder and every model known to the server, with its state:
   * one entry per version serving (as Triton's index), one without a version otherwise.
   */
  async index(): Promise<IndexEntry[]> {
    const names = new Set<string>(await listModelNames(this.opts.repoDir).catch(() => []));
    for (const name of this.entries.keys()) names.add(name);
    return [...names].sort().flatMap((name): IndexEntry[] => {
      const e = this.entries.get(name);
      if (!e) return [{ name, state: 'UNAVAILABLE', reason: 'unloaded' }];
      if (e.handles.length) return e.handles.map((h) => ({ name, version: h.version, state: 'READY' }));
      return [e.reason ? { name, state: e.state, reason: e.reason } : { name, state: e.state }];
    });
  }

  /** Loads every model folder in the repository; failures are logged and reported in the index. */
  async loadAll(): Promise<void> {
    await this.loadNamed(await listModelNames(this.opts.repoDir));
  }

  /** Loads the named models at once (Triton's explicit mode with --load-model); a failure is logged, not thrown. */
  async loadNamed(names: readonly string[]): Promise<void> {
    await Promise.all(
      [...new Set(names)].map((n) =>
        this.load(n).catch((err: unknown) => {
          this.opts.logger.error({ event: 'load_failed', model: n, err: messageOf(err) }, `failed to load ${n}`);
        }),
      ),
    );
  }

  /** Unloads everything (shutdown). */
  async closeAll(): Promise<void> {
    this.closing = true;
    // Ensembles first, outermost first: their running pipelines still need their composing models
    // (ensembles included) for their next steps.
    let left = [...this.entries].filter(([, e]) => e.handles.some((h) => isEnsemble(h.config))).map(([n]) => n);
    for (let guard = left.length; guard > 0 && left.length > 0; guard--) {
      const inner = new Set(left.flatMap((n) => (this.entries.get(n)?.handles ?? []).flatMap((h) => (h.config.ensemble ?? []).map((s) => s.modelName))));
      const outer = left.filter((n) => !inner.has(n));
      const wave = outer.length > 0 ? outer : left; // a cycle cannot load, but never wait on one
      await Promise.allSettled(wave.map((n) => this.unload(n)));
      left = left.filter((n) => !wave.includes(n));
    }
    await Promise.allSettled([...this.entries.keys()].map((n) => this.unload(n)));
  }

  /**
   * Fetches `storageUri` for `name`; later loads of `name` read from where it landed. Until
   * `commit`, `rollback` puts back the files (and the folder) `name` loaded from before.
   */
  async pullInto(name: string, storageUri: string): Promise<PulledModel> {
    if (!this.opts.pull) throw new InvalidArgument('this server has no storage puller for storage_uri');
    const dest = join(this.opts.repoDir, name);
    const before = this.modelDirs.get(name);
    const pulled = await this.opts.pull(storageUri, dest);
    if (pulled.dir === dest) this.modelDirs.delete(name);
    else this.modelDirs.set(name, pulled.dir);
    return {
      dir: pulled.dir,
      commit: () => pulled.commit(),
      rollback: async () => {
        if (before === undefined) this.modelDirs.delete(name);
        else this.modelDirs.set(name, before);
        await pulled.rollback();
      },
    };
  }

  /** Refuses a load request's local storage URI outside `localLoadRoots`: by its path, then by where its symlinks lead. */
  private async checkLocalLoadRoot(uri: string): Promise<void> {
    const roots = this.opts.localLoadRoots;
    const local = roots && localPathOf(uri, this.opts.env);
    if (!roots || local === undefined) return;
    const refuse = (): never => {
      throw new InvalidArgument(`storage URI ${JSON.stringify(displayUri(uri))}: a load request may name local files only under KINFER_LOAD_LOCAL_ROOTS (${roots.join(', ') || 'none'})`);
    };
    const inside = (p: string, rootList: readonly string[]) => rootList.some((r) => p === r || p.startsWith(r.endsWith(sep) ? r : r + sep));
    const lexical = resolve(local);
    if (!inside(lexical, roots.map((r) => resolve(r)))) refuse();
    // A path that does not exist is the pull's to report; one that does must not leave the roots through a link.
    const real = await realpath(lexical).catch(() => undefined);
    if (real === undefined) return;
    const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => resolve(r))));
    if (!inside(real, realRoots)) refuse();
  }

  private async hasFolder(name: string): Promise<boolean> {
    const st = await stat(this.modelDirs.get(name) ?? join(this.opts.repoDir, name)).catch(() => undefined);
    return !!st?.isDirectory();
  }

  /** Removes the files `name` served from since a `file:` load, if any. */
  private async dropOverride(name: string): Promise<void> {
    const staged = this.overrides.get(name);
    this.overrides.delete(name);
    await this.removeStaged(name, staged);
  }

  /** Deletes files staged for `name` that nothing serves from any more; a failure is logged, not thrown. */
  private async removeStaged(name: string, staged: StagedFiles | undefined): Promise<void> {
    await staged?.remove().catch((err: unknown) => this.opts.logger.warn({ event: 'override_cleanup_failed', model: name, err: messageOf(err) }, `could not remove ${staged.dir}`));
  }

  private async readLayout(name: string, staged?: StagedFiles) {
    const dir = staged?.dir ?? this.modelDirs.get(name);
    if (!dir) return readModelLayout(this.opts.repoDir, name);
    const layout = await readModelLayout(dirname(dir), basename(dir));
    return { ...layout, name, config: { ...layout.config, name } };
  }

  private serialise<T>(name: string, op: () => Promise<T>): Promise<T> {
    let chain = this.chains.get(name);
    if (!chain) {
      chain = { tail: Promise.resolve(), pending: 0 };
      this.chains.set(name, chain);
    }
    const own = chain;
    own.pending++;
    const run = own.tail.then(op, op);
    own.tail = run
      .catch(() => undefined)
      .then(() => {
        if (--own.pending === 0 && this.chains.get(name) === own) this.chains.delete(name);
      });
    return run;
  }

  /** `name`'s entry; a new one (LOADING) when the repository does not know it yet. */
  private entryOf(name: string): Entry {
    let entry = this.entries.get(name);
    if (!entry) {
      entry = { state: 'LOADING', handles: [] };
      this.entries.set(name, entry);
    }
    return entry;
  }

  /** Drops the failed-load duration series of `name`'s versions (an unload: nothing of it serves). */
  private forgetFailures(name: string, entry: Entry): void {
    for (const version of entry.failedVersions ?? []) this.opts.metrics?.modelLoadDuration.remove({ model: name, version, outcome: 'failure' });
    entry.failedVersions = undefined;
  }

  /**
   * Inside an operation on `name`: forgets `entry` when it serves nothing and no operation waits
   * behind this one (a queued load would find it gone and start over as LOADING anyway).
   */
  private dropUnlessQueued(name: string, entry: Entry): void {
    const queuedAfter = (this.chains.get(name)?.pending ?? 0) > 1;
    if (this.entries.get(name) === entry && entry.handles.length === 0 && !queuedAfter) this.entries.delete(name);
  }

  /** Loads the versions the config's policy selects; returns the highest (the one requests without a version get). */
  private async doLoad(name: string, parameters: Parameters, files?: OverrideFiles): Promise<ModelHandle> {
    const entry = this.entryOf(name);
    const started = performance.now();
    const log = this.opts.logger;
    if (entry.handles.length === 0) entry.state = 'LOADING';
    let version = '';
    let pulled: PulledModel | undefined;
    let staged: StagedFiles | undefined;
    const fresh: ModelHandle[] = [];
    const reused = new Set<ModelHandle>();
    try {
      if (files?.size) staged = await stageOverrideFiles(name, files);
      const storageUri = parameters.storage_uri;
      if (storageUri !== undefined) {
        if (typeof storageUri !== 'string') throw new InvalidArgument(`parameters.storage_uri: expected a string`);
        await this.checkLocalLoadRoot(storageUri);
        pulled = await this.pullInto(name, storageUri);
      }
      // Taken before the config and labels are read: a file written meanwhile changes the stamp too.
      const stamp = !staged && !pulled && !this.overrides.has(name) ? await modelSourceStamp(this.modelDirs.get(name) ?? join(this.opts.repoDir, name)) : undefined;
      const layout = await this.readLayout(name, staged);
      const config = applyLoadParameters(layout.config, parameters, name);
      if (config.unknownFields) {
        log.warn({ event: 'config_fields_unknown', model: name, fields: config.unknownFields }, `model '${name}': config fields ignored, unknown to kinfer and Triton: ${config.unknownFields.join(', ')}`);
      }
      // From here until its versions serve (or the load fails), the cycle check of any other
      // ensemble load sees this one's new config.
      if (isEnsemble(config)) this.loadingEnsembles.set(name, config);
      const selected = selectVersions(name, layout.versions.map((v) => v.version), config.versionPolicy);
      if (selected.missing.length) {
        log.warn({ event: 'versions_missing', model: name, versions: selected.missing }, `model '${name}': version_policy names version ${selected.missing.join(', ')}, not present in ${layout.dir}`);
      }
      const labels = await readLabelFiles(layout.dir, config);
      // A version whose config and files did not change keeps serving as it is (as in Triton, where a
      // reload loads only the versions that changed): not for files sent or pulled with this load or
      // the last, nor for ensembles, whose load checks their composing models again, nor where a
      // label file lies in a version folder (the other versions' folders are not compared).
      const names = layout.versions.map((v) => v.version);
      const labelsInVersions = Object.values(config.outputLabelFiles ?? {}).some((f) => names.includes(f.split(/[\\/]/)[0]!));
      const reusable = stamp !== undefined && !isEnsemble(config) && !labelsInVersions;
      try {
        for (const v of layout.versions.filter((d) => selected.versions.includes(d.version))) {
          version = v.version;
          const source = reusable ? sourceOf(config, stamp, v.version, names) : undefined;
          const same = source !== undefined ? entry.handles.find((h) => h.version === v.version && h.source === source && h.healthy()) : undefined;
          if (same) {
            fresh.push(same);
            reused.add(same);
            continue;
          }
          const files = await versionFiles(name, v, config.platform, config.defaultModelFilename);
          const handle = await this.loadVersion(name, files, layout.dir, config, labels);
          handle.source = source;
          fresh.push(handle);
        }
      } catch (err) {
        // Versions loaded before the failing one never served: release them, and the metric series their batchers made.
        await Promise.allSettled(fresh.filter((h) => !reused.has(h)).map((h) => h.close(this.drainMs)));
        const serving = new Set(entry.handles.map((h) => h.version));
        // The failing version too: its batcher may have made series before it failed (in its warm-up).
        for (const v of new Set([...fresh.map((h) => h.version), version])) if (!serving.has(v) && this.opts.metrics) forgetModel(this.opts.metrics, name, v);
        throw err;
      }
      const old = entry.handles;
      entry.handles = fresh;
      entry.state = 'READY';
      entry.reason = undefined;
      // A reload reads the repository folder: a files load's config described other files.
      const { storage_uri: _pulled, ...kept } = parameters;
      entry.parameters = files?.size ? {} : kept;
      this.entries.set(name, entry);
      const seconds = (performance.now() - started) / 1000;
      const versions = fresh.map((h) => h.version);
      // Each version's series: the whole load, pull included, as for a single version.
      for (const h of fresh) {
        if (reused.has(h)) continue;
        h.loadSeconds = seconds;
        this.opts.metrics?.modelLoadDuration.observe({ model: name, version: h.version, outcome: 'success' }, seconds);
      }
      const unchanged = [...reused].map((h) => h.version);
      const what = `loaded ${name} v${versions.join(', v')}${unchanged.length ? ` (v${unchanged.join(', v')} unchanged, kept serving)` : ''}`;
      log.info({ event: 'load', model: name, versions, ...(unchanged.length ? { unchanged } : {}), seconds, platform: fresh[0]!.metadata.platform }, what);
      await pulled?.commit().catch((err: unknown) => log.warn({ event: 'pull_cleanup_failed', model: name, err: messageOf(err) }));
      pulled = undefined; // committed: nothing to roll back if closing the old versions fails
      // The files the old versions served from, if they came with their load, go once those versions are closed.
      const replacedOverride = this.overrides.get(name);
      if (staged) this.overrides.set(name, staged);
      else this.overrides.delete(name);
      staged = undefined;
      // A version loaded again shares its metric series with its new handle; a version no longer served loses them.
      await Promise.all(old.filter((h) => !reused.has(h)).map((h) => this.retire(name, h, !versions.includes(h.version))));
      await this.removeStaged(name, replacedOverride);
      return fresh[fresh.length - 1]!;
    } catch (err) {
      // The files the serving versions (or the next plain load, or a restart) read go back as they were.
      await pulled?.rollback().catch((e: unknown) => log.error({ event: 'pull_rollback_failed', model: name, err: messageOf(e) }));
      await staged?.remove().catch(() => undefined);
      const seconds = (performance.now() - started) / 1000;
      const serving = entry.handles.length > 0;
      // A name with no folder is a client's typo (or a flood of them): no entry, no metrics series.
      const known = serving || (await this.hasFolder(name));
      if (known && this.opts.metrics) {
        this.opts.metrics.modelLoadDuration.observe({ model: name, version, outcome: 'failure' }, seconds);
        (entry.failedVersions ??= new Set()).add(version);
      }
      if (!serving && known) {
        entry.state = 'UNAVAILABLE';
        entry.reason = messageOf(err);
      } else {
        this.dropUnlessQueued(name, entry);
      }
      log.error({ event: 'load_failed', model: name, version, err: messageOf(err), keptServing: serving });
      throw err;
    } finally {
      this.loadingEnsembles.delete(name);
    }
  }

  /**
   * Before an ensemble loads: no chain of ensembles may lead back to it (each request would
   * wait on itself); each composing model not serving is loaded (as Triton's explicit mode
   * does), and one still loading is waited for; then every step's model and version must serve,
   * and its maps must name that model's tensors. Any failure fails the ensemble's load. Returns
   * the planned steps.
   */
  private async prepareEnsemble(name: string, config: ModelConfig): Promise<PlannedStep[]> {
    const steps = planEnsemble(config);
    // doLoad registered this config in loadingEnsembles: two loads that would close a cycle see each other.
    const cycle = await this.ensembleCycle(name);
    if (cycle) throw new InvalidArgument(`ensemble '${name}': its steps lead back to it (${cycle.join(' → ')}); ensembles cannot call each other in a cycle`);
    await this.readyComposingModels(name, steps);
    return steps;
  }

  /** The composing models of ensemble `name` serve (or its load fails), and its steps fit them. */
  private async readyComposingModels(name: string, steps: PlannedStep[]): Promise<void> {
    for (const m of new Set(steps.map((s) => s.modelName))) {
      const entry = this.entries.get(m);
      const fail = (err: unknown): never => {
        const why = `ensemble '${name}': composing model '${m}' did not load: ${messageOf(err)}`;
        throw err instanceof NotFound || err instanceof InvalidArgument ? new InvalidArgument(why) : new Unavailable(why);
      };
      if (!entry || (entry.handles.length === 0 && entry.state !== 'LOADING')) {
        await this.load(m).catch(fail);
        this.implicit.add(m);
      } else if (entry.handles.length === 0) {
        // Loading with nothing serving yet (at start, every model loads at once): wait for it. A
        // plain model waits on no other, so its load ends; an ensemble might (if a cycle slipped
        // past the check through configs changed meanwhile), so that wait is bounded.
        const chain = this.chains.get(m)?.tail;
        const nested = this.loadingEnsembles.has(m) || (await this.readLayout(m).then((l) => isEnsemble(l.config), () => false));
        if (chain) await (nested ? within(chain, NESTED_ENSEMBLE_WAIT_MS, undefined) : chain);
      }
    }
    for (const s of steps) {
      const i = s.index;
      let meta: ModelMetadata;
      try {
        meta = this.get(s.modelName, s.modelVersion).metadata;
      } catch (err) {
        const what = `model '${s.modelName}'${s.modelVersion ? ` version ${s.modelVersion}` : ''}`;
        throw new Unavailable(`ensemble '${name}' step ${i}: ${what} does not serve: ${messageOf(err)}`);
      }
      const check = (map: Record<string, string>, specs: TensorSpec[], kind: string) => {
        if (specs.length === 0) return; // a model that takes anything (echo)
        for (const own of Object.keys(map)) {
          if (!specs.some((t) => t.name === own)) {
            throw new InvalidArgument(`ensemble '${name}' step ${i}: model '${s.modelName}' has no ${kind} '${own}' (its ${kind}s: ${specs.map((t) => t.name).join(', ')})`);
          }
        }
      };
      check(s.inputMap, meta.inputs, 'input');
      check(s.outputMap, meta.outputs, 'output');
    }
  }

  /**
   * A path of ensembles from `name` back to itself through their steps, or undefined. A model's
   * steps are those of every config it has or is about to have: serving, being loaded, and in its
   * folder (`name`'s own is the one being loaded).
   */
  private async ensembleCycle(name: string): Promise<string[] | undefined> {
    const edges = new Map<string, string[]>();
    const stepsOf = async (m: string): Promise<string[]> => {
      let out = edges.get(m);
      if (!out) {
        // `name` by the config it is loading now; any other by each config it has or may get.
        const configs = [this.loadingEnsembles.get(m)];
        if (m !== name) {
          const entry = this.entries.get(m);
          configs.push(...(entry?.handles ?? []).map((h) => h.config));
          // The folder's config is what a reload would take, unless the model serves from files or a config sent with its load.
          if (!this.overrides.has(m) && entry?.parameters?.config === undefined) configs.push(await this.readLayout(m).then((l) => l.config, () => undefined));
        }
        out = [...new Set(configs.flatMap((c) => (c && isEnsemble(c) ? (c.ensemble ?? []).map((s) => s.modelName) : [])))];
        edges.set(m, out);
      }
      return out;
    };
    const done = new Set<string>();
    const visit = async (m: string, path: string[]): Promise<string[] | undefined> => {
      if (done.has(m)) return undefined;
      for (const next of await stepsOf(m)) {
        if (next === name) return [...path, m, name];
        if (path.includes(next) || next === m) continue; // a cycle not through `name` is that ensemble's own load to refuse
        const found = await visit(next, [...path, m]);
        if (found) return found;
      }
      done.add(m);
      return undefined;
    };
    return visit(name, []);
  }

  /** One version: its backend instances, batcher and warm-up; nothing is left holding resources when it throws. */
  private async loadVersion(name: string, files: ModelVersionFiles, modelDir: string, config: ModelConfig, labels: Map<string, string[]>): Promise<ModelHandle> {
    const { version, dir, modelFile } = files;
    const log = this.opts.logger;
    let factory: () => Backend;
    if (isEnsemble(config)) {
      const run = this.opts.runStep;
      if (!run) throw new Unsupported(`model '${name}': this server runs no ensembles`);
      // Planned once: its request slots (ENSEMBLE_CONCURRENCY backends) share the plan.
      const steps = await this.prepareEnsemble(name, config);
      factory = () => new EnsembleBackend(run, steps);
    } else {
      factory = selectBackend({ name, version, dir, modelFile, config });
    }
    factory = withReshape(factory, config);
    const instances: Backend[] = [];
    let metadata: ModelMetadata | undefined;
    let batcher: Batcher;
    const statistics = new ModelStatistics();
    try {
      // An ensemble's instances are request slots (it computes nothing itself): that many run at once.
      const count = isEnsemble(config) ? ENSEMBLE_CONCURRENCY : Math.max(1, config.instanceCount);
      if (count > MAX_INSTANCES) throw new InvalidArgument(`model '${name}': ${count} instances asked for (instance_group counts or threads); at most ${MAX_INSTANCES}`);
      for (let i = 0; i < count; i++) {
        const backend = factory();
        const meta = await backend.load({ name, version, dir, modelFile, config });
        instances.push(backend);
        metadata ??= meta;
      }
      const sequencing = config.sequenceBatching;
      if (sequencing) {
        // A stateful model: clients see it without its control and state tensors, which the sequence batcher fills.
        const { plan, served, innerConfig } = await planSequences(name, metadata!, config, sequencing, modelDir);
        const inner = this.opts.createBatcher({ name, version, instances, metadata: metadata!, config: innerConfig, statistics });
        plan.onEvent = (event, id) =>
          log.warn({ event: `sequence_${event}`, model: name, version, sequence: id }, event === 'idle'
            ? `model '${name}': sequence ${id} had no request for ${plan.idleMs} ms; ended, its state dropped`
            : `model '${name}': sequence ${id} started again before its END; its state was reset`);
        // Its waiting requests count as pending and its refusals as rejected, on the model's series.
        batcher = new SequenceBatcher(inner, plan, this.opts.metrics ? batchObserver(this.opts.metrics, name, version) : undefined);
        metadata = served;
      } else {
        // Throws InvalidArgument for batching parameters it cannot honour (e.g. an unknown batch_policy).
        batcher = this.opts.createBatcher({ name, version, instances, metadata: metadata!, config, statistics });
      }
      if (config.warmup?.length) {
        const t0 = performance.now();
        // An ensemble's instances are request slots: one pipeline per sample is its warm-up.
        const { runs } = await runWarmup(isEnsemble(config) ? instances.slice(0, 1) : instances, config, modelDir);
        log.info({ event: 'warmup', model: name, version, runs, seconds: (performance.now() - t0) / 1000 }, `warmed up ${name} v${version}`);
      }
    } catch (err) {
      await Promise.allSettled(instances.map((b) => b.unload()));
      throw err;
    }
    return new ModelHandle(name, version, metadata!, config, batcher, instances, labels, statistics);
  }
}

/**
 * What a version is loaded from: the config, and the model folder's files outside the other
 * versions' folders (its own folder, the config file, labels, warm-up and initial-state files).
 */
function sourceOf(config: ModelConfig, stamp: readonly string[], version: string, versions: readonly string[]): string {
  const others = versions.filter((v) => v !== version).map((v) => `${v}/`);
  return [JSON.stringify(config), ...stamp.filter((line) => !others.some((o) => line.startsWith(o)))].join('\n');
}

/**
 * Load-request parameters over the file config: Triton's `config` (a JSON
 * model config), and the original Xilinx server's `batch_size`, `threads`
 * (parallel instances) and `timeout` (batching delay, ms). Anything else is
 * passed to the backend as a string parameter.
 */
export function applyLoadParameters(base: ModelConfig, params: Parameters, name: string): ModelConfig {
  let config: ModelConfig = { ...base, parameters: { ...base.parameters } };
  // Triton: a `config` parameter replaces the model's config file, parameters included; whatever
  // the key order, the load's other keys (batch_size, threads, backend options) then apply over it.
  if (params.config !== undefined) {
    if (typeof params.config !== 'string') throw new InvalidArgument(`parameters.config: expected a JSON model config string`);
    config = parseModelConfig(params.config, 'parameters.config.json', name);
  }
  for (const [key, value] of Object.entries(params)) {
    switch (key) {
      case 'config':
        break;
      case 'batch_size': {
        const n = positiveInt(key, value);
        config.maxBatchSize = n;
        config.dynamicBatching = { maxQueueDelayMicroseconds: 1000, preferredBatchSize: [], maxQueueSize: 0, ...config.dynamicBatching };
        break;
      }
      case 'threads':
        config.instanceCount = positiveInt(key, value);
        break;
      case 'timeout':
        config.dynamicBatching = { preferredBatchSize: [], maxQueueSize: 0, ...config.dynamicBatching, maxQueueDelayMicroseconds: positiveInt(key, value) * 1000 };
        break;
      case 'storage_uri':
        break;
      default:
        config.parameters[key] = String(value);
    }
  }
  return config;
}

function positiveInt(key: string, value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > 1_000_000) {
    throw new InvalidArgument(`parameters.${key}: expected a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

function messageOf(err: unknown): string {
  return err instanceof KinferError || err instanceof Error ? err.message : String(err);
}
