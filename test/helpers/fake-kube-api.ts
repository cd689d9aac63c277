/**
 * @module test/helpers/fake-kube-api
 * A TEST DOUBLE of the Kubernetes API server, on 127.0.0.1 (plain HTTP). It is
 * not Kubernetes: it answers only the calls kinfer's deploy/status/list/logs
 * make (discovery of the resource kinds kinfer uses, server-side apply, get,
 * label-selected list and watch, pod logs) from an in-memory store (an apply
 * moves `metadata.generation` when the spec changes and keeps the status), and records
 * every request so tests can assert method, path, query, content type and body.
 * Every change bumps one resourceVersion counter; a watch replays the changes
 * after its `resourceVersion`, or answers 410 Expired from before `expireWatches`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  contentType?: string;
  /** Parsed JSON/YAML body, if any. */
  body?: unknown;
}

interface ResourceInfo {
  name: string;
  kind: string;
  namespaced: boolean;
}

/** Discovery: the group/versions and kinds this double knows. */
const DISCOVERY: Record<string, ResourceInfo[]> = {
  'serving.knative.dev/v1': [
    { name: 'services', kind: 'Service', namespaced: true },
    { name: 'revisions', kind: 'Revision', namespaced: true },
  ],
  'eventing.knative.dev/v1': [
    { name: 'triggers', kind: 'Trigger', namespaced: true },
    { name: 'brokers', kind: 'Broker', namespaced: true },
  ],
  'serving.kserve.io/v1beta1': [{ name: 'inferenceservices', kind: 'InferenceService', namespaced: true }],
  'serving.kserve.io/v1alpha1': [
    { name: 'trainedmodels', kind: 'TrainedModel', namespaced: true },
    { name: 'servingruntimes', kind: 'ServingRuntime', namespaced: true },
    { name: 'clusterservingruntimes', kind: 'ClusterServingRuntime', namespaced: false },
  ],
  'apps/v1': [{ name: 'deployments', kind: 'Deployment', namespaced: true }],
  v1: [{ name: 'pods', kind: 'Pod', namespaced: true }],
};

export interface FakeKubeApi {
  url: string;
  /** A kubeconfig file pointing at this double (current context namespace as given). */
  kubeconfigPath: string;
  requests: RecordedRequest[];
  /** Store an object at its API path, e.g. `/apis/serving.knative.dev/v1/namespaces/ns/services/echo` (a watch sees ADDED or MODIFIED). */
  put(path: string, obj: unknown): void;
  get(path: string): unknown;
  /** Removes an object (a watch sees DELETED). */
  remove(path: string): void;
  /** Replaces the status of the object at `path`, as its controller would (a watch sees MODIFIED). */
  setStatus(path: string, status: unknown): void;
  /** Open watch requests on a collection path (`/api/v1/namespaces/ns/pods`). */
  watchers(collection: string): number;
  /** Ends every open watch with a 410 Expired ERROR event; later watches from an older resourceVersion get the same. */
  expireWatches(): void;
  /** Refuse watch requests with this HTTP status (undefined: serve them again). */
  refuseWatches(code: number | undefined): void;
  /** Log text for `GET /api/v1/namespaces/<ns>/pods/<pod>/log?container=<c>`. */
  setPodLog(namespace: string, pod: string, container: string, text: string): void;
  /** Appends to a pod's log, and writes it to the requests following it (`follow=true`). */
  appendPodLog(namespace: string, pod: string, container: string, text: string): void;
  /** Ends the followed log responses of a container (its pod went away). */
  endPodLog(namespace: string, pod: string, container: string): void;
  /** Cuts the followed log connections of a container mid-stream (an API server restart, an idle timeout). */
  dropPodLog(namespace: string, pod: string, container: string): void;
  /** Follow requests open on a container now. */
  followers(namespace: string, pod: string, container: string): number;
  close(): Promise<void>;
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}

function json(res: ServerResponse, obj: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(obj));
}

const MAX_BODY = 4 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function matchesSelector(obj: unknown, selector: string | undefined): boolean {
  if (!selector) return true;
  const labels = ((obj as { metadata?: { labels?: Record<string, string> } }).metadata?.labels ?? {}) as Record<string, string>;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return k !== undefined && labels[k] === v;
  });
}

interface WatchEvent {
  rv: number;
  collection: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: unknown;
}

interface Watcher {
  collection: string;
  selector: string | undefined;
  res: ServerResponse;
}

const expired = (rv: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${rv}`, reason: 'Expired', code: 410 });

/** Writes a kubeconfig whose one context ('fake', token 'fake-token') points at `server`, in `namespace` when given. */
export async function writeKubeconfig(path: string, server: string, namespace?: string): Promise<void> {
  const context: Record<string, string> = { cluster: 'fake', user: 'fake' };
  if (namespace) context.namespace = namespace;
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // client-node refuses http:// unless TLS verification is marked skipped.
      clusters: [{ name: 'fake', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context }],
      'current-context': 'fake',
    }),
  );
}

export async function startFakeKubeApi(opts: { namespace?: string } = {}): Promise<FakeKubeApi> {
  const store = new Map<string, unknown>();
  let resourceVersion = 1;
  /** Changes, replayed to a watch from an older resourceVersion; a watch from below `compacted` gets 410. */
  const events: WatchEvent[] = [];
  let compacted = 0;
  let watchRefusal: number | undefined;
  const watches = new Set<Watcher>();
  const collectionOf = (path: string) => path.slice(0, path.lastIndexOf('/'));
  const send = (w: Watcher, e: WatchEvent) => {
    if (e.collection === w.collection && matchesSelector(e.obj, w.selector)) w.res.write(JSON.stringify({ type: e.type, object: e.obj }) + '\n');
  };
  const change = (path: string, type: WatchEvent['type'], obj: unknown) => {
    const e: WatchEvent = { rv: ++resourceVersion, collection: collectionOf(path), type, obj };
    const meta = (obj as { metadata?: Record<string, unknown> }).metadata;
    if (meta) meta.resourceVersion = String(e.rv);
    events.push(e);
    for (const w of watches) send(w, e);
  };
  const podLogs = new Map<string, string>();
  /** Open `follow=true` log responses, by namespace/pod/container. */
  const followers = new Map<string, Set<ServerResponse>>();
  const requests: RecordedRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const text = await readBody(req);
    const contentType = req.headers['content-type'];
    let body: unknown;
    if (text) body = contentType?.includes('json') ? JSON.parse(text) : parseYaml(text);
    const rec: RecordedRequest = { method: req.method ?? 'GET', path: u.pathname, query: Object.fromEntries(u.searchParams), body };
    if (contentType) rec.contentType = contentType;
    requests.push(rec);

    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(\/.*)?$/.exec(u.pathname);
    if (!m) return status(res, 404, 'NotFound', `the server could not find the requested resource (${u.pathname})`);
    const gv = m[1] ?? `${m[2]}/${m[3]}`;
    const rest = m[4] ?? '';
    const kinds = DISCOVERY[gv];
    if (!kinds) return status(res, 404, 'NotFound', `no API group/version ${gv}`);
    if (rest === '' && req.method === 'GET')
      return json(res, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: gv,
        resources: kinds.map((k) => ({ name: k.name, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get', 'list', 'patch', 'create'] })),
      });
    const parts = rest.split('/').filter(Boolean);
    const ns = parts[0] === 'namespaces' ? parts[1] : undefined;
    const [plural, name, sub] = ns ? parts.slice(2) : parts;
    const info = kinds.find((k) => k.name === plural);
    if (!info) return status(res, 404, 'NotFound', `the server could not find the requested resource ${gv} ${plural}`);
    const objPath = u.pathname.replace(/\/log$/, '');

    if (req.method === 'GET' && sub === 'log' && info.kind === 'Pod') {
      if (!store.has(objPath)) return status(res, 404, 'NotFound', `pods "${name}" not found`);
      const container = u.searchParams.get('container') ?? '';
      const log = podLogs.get(`${ns}/${name}/${container}`);
      if (log === undefined) return status(res, 400, 'BadRequest', `container ${container} is not valid for pod ${name}`);
      // The last `tailLines` lines; a log that ends in a newline keeps it.
      const tail = Number(u.searchParams.get('tailLines') ?? '0');
      const ends = log.endsWith('\n');
      const lines = (ends ? log.slice(0, -1) : log).split('\n');
      res.writeHead(200, { 'content-type': 'text/plain' });
      const text = tail > 0 ? lines.slice(-tail).join('\n') + (ends ? '\n' : '') : log;
      if (u.searchParams.get('follow') !== 'true') return void res.end(text);
      // Followed: what there is now, then each appendPodLog, until endPodLog or the client goes.
      const key = `${ns}/${name}/${container}`;
      let open = followers.get(key);
      if (!open) followers.set(key, (open = new Set()));
      open.add(res);
      res.on('close', () => open.delete(res));
      return void res.write(text);
    }
    if (req.method === 'GET' && name) {
      const obj = store.get(u.pathname);
      return obj ? json(res, obj) : status(res, 404, 'NotFound', `${plural}.${gv.split('/')[0]} "${name}" not found`);
    }
    if (req.method === 'GET' && u.searchParams.get('watch') === 'true') {
      if (watchRefusal !== undefined) return status(res, watchRefusal, 'Forbidden', `${plural} is forbidden: cannot watch resource "${plural}"`);
      const from = Number(u.searchParams.get('resourceVersion') ?? resourceVersion);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders(); // as the API server does: a watch's headers come before its first event
      if (from < compacted) return void res.end(JSON.stringify({ type: 'ERROR', object: expired(String(from)) }) + '\n');
      const w: Watcher = { collection: u.pathname, selector: u.searchParams.get('labelSelector') ?? undefined, res };
      for (const e of events) if (e.rv > from) send(w, e);
      watches.add(w);
      res.on('close', () => watches.delete(w));
      return;
    }
    if (req.method === 'GET') {
      const prefix = u.pathname + '/';
      const items = [...store.entries()]
        .filter(([p, o]) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/') && matchesSelector(o, u.searchParams.get('labelSelector') ?? undefined))
        .map(([, o]) => o);
      return json(res, { kind: `${info.kind}List`, apiVersion: gv, metadata: { resourceVersion: String(resourceVersion) }, items });
    }
    if (req.method === 'PATCH' && name) {
      if (contentType !== 'application/apply-patch+yaml') return status(res, 415, 'UnsupportedMediaType', `unsupported patch type ${contentType}`);
      if (!u.searchParams.get('fieldManager')) return status(res, 400, 'BadRequest', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
      const obj = body as { kind?: string; metadata?: { name?: string; namespace?: string } };
      if (obj?.kind !== info.kind || obj.metadata?.name !== name)
        return status(res, 400, 'BadRequest', `the body's kind/name ${obj?.kind}/${obj?.metadata?.name} does not match the path`);
      // As the API server: the generation moves when the spec does; an apply leaves the status alone.
      const prev = store.get(u.pathname) as { spec?: unknown; status?: unknown; metadata?: { generation?: number } } | undefined;
      const prevGeneration = prev?.metadata?.generation ?? 0;
      const applied = obj as typeof obj & { spec?: unknown; status?: unknown; metadata: { generation?: number } };
      applied.metadata.generation = prev && JSON.stringify(prev.spec) === JSON.stringify(applied.spec) ? prevGeneration : prevGeneration + 1;
      if (prev?.status !== undefined) applied.status = prev.status;
      // The API server records each manager's apply, with its time in whole seconds.
      (applied.metadata as Record<string, unknown>).managedFields = [
        { manager: u.searchParams.get('fieldManager'), operation: 'Apply', apiVersion: (obj as { apiVersion?: string }).apiVersion, time: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
      ];
      if (u.searchParams.get('dryRun') !== 'All') {
        change(u.pathname, prev ? 'MODIFIED' : 'ADDED', obj);
        store.set(u.pathname, obj);
      }
      return json(res, obj);
    }
    return status(res, 405, 'MethodNotAllowed', `${req.method} ${u.pathname} is not supported by this test double`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => status(res, 500, 'InternalError', String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'kinfer-fake-kube-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  await writeKubeconfig(kubeconfigPath, url, opts.namespace);
  return {
    url,
    kubeconfigPath,
    requests,
    put: (path, obj) => {
      change(path, store.has(path) ? 'MODIFIED' : 'ADDED', obj);
      store.set(path, obj);
    },
    get: (path) => store.get(path),
    setStatus: (path, status) => {
      const obj = store.get(path);
      if (obj === undefined) throw new Error(`setStatus: nothing at ${path}`);
      const next = { ...(obj as object), status };
      change(path, 'MODIFIED', next);
      store.set(path, next);
    },
    remove: (path) => {
      const obj = store.get(path);
      if (obj === undefined) return;
      store.delete(path);
      change(path, 'DELETED', obj);
    },
    watchers: (collection) => [...watches].filter((w) => w.collection === collection).length,
    expireWatches: () => {
      compacted = resourceVersion;
      for (const w of watches) w.res.end(JSON.stringify({ type: 'ERROR', object: expired(String(resourceVersion)) }) + '\n');
      watches.clear();
    },
    refuseWatches: (code) => void (watchRefusal = code),
    setPodLog: (namespace, pod, container, text) => void podLogs.set(`${namespace}/${pod}/${container}`, text),
    appendPodLog: (namespace, pod, container, text) => {
      const key = `${namespace}/${pod}/${container}`;
      podLogs.set(key, (podLogs.get(key) ?? '') + text);
      for (const res of followers.get(key) ?? []) res.write(text);
    },
    endPodLog: (namespace, pod, container) => {
      for (const res of followers.get(`${namespace}/${pod}/${container}`) ?? []) res.end();
    },
    dropPodLog: (namespace, pod, container) => {
      for (const res of followers.get(`${namespace}/${pod}/${container}`) ?? []) res.socket?.destroy();
    },
    followers: (namespace, pod, container) => followers.get(`${namespace}/${pod}/${container}`)?.size ?? 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
