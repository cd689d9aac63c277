/**
 * @module knative/deploy
 * `kinfer deploy <function>`: server-side apply (fieldManager `kinfer`) of a
 * function's generated manifests, as `kubectl apply --server-side -f
 * manifests/<fn>/` would. `dryRun` prints what would be sent and sends nothing.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
// Not re-exported by the package index; the package has no exports map, so the deep path is public in practice.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { stringify, parseAllDocuments } from 'yaml';
import { InvalidArgument, NotFound } from '../runtime/core/errors.js';
import { FIELD_MANAGER } from './resources/common.js';
import { isNotFound, kubeError, loadKubeConfig, namespaceOf, type KubeOptions } from './kube.js';
import { repoRoot } from './specs.js';
import { waitReady, type WaitOptions, type WaitTarget } from './wait.js';

/** Resources whose API path is not namespaced. */
const CLUSTER_SCOPED = new Set(['ClusterServingRuntime']);
/** Plural resource names, for the dry-run's request line (a real apply asks the API server's discovery). */
const PLURALS: Record<string, string> = {
  Service: 'services',
  Trigger: 'triggers',
  InferenceService: 'inferenceservices',
  TrainedModel: 'trainedmodels',
  ClusterServingRuntime: 'clusterservingruntimes',
};

export interface DeployOptions extends KubeOptions {
  dryRun?: boolean;
  /** Deploy the KServe form (`manifests/<fn>/kserve/`) instead of the Knative Service and Triggers. */
  kserve?: boolean;
  /** Take over fields another manager owns (server-side apply `force`). Default false. */
  force?: boolean;
  /** Default: `manifests/` of the repository. */
  manifestsDir?: string;
  /** Where dry-run output goes; default stdout. */
  out?: (text: string) => void;
  /** After the apply, wait until every applied object is Ready at its new generation (knative/wait.ts). */
  wait?: WaitOptions;
  /**
   * A canary rollout: this percent of the traffic to the revision the apply makes, the rest to the
   * one serving now (Knative: `spec.traffic` with tags `candidate` and `current`; KServe:
   * `canaryTrafficPercent`). A later deploy without it promotes (its apply drops the split).
   */
  canary?: number;
}

export interface AppliedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  /** The request a server-side apply makes (namespaced path shown with its plural). */
  request: string;
  /** With `wait`: the object's `status.url` once Ready (a Knative Service, an InferenceService, a TrainedModel's infer URL). */
  url?: string;
}

export const MAX_MANIFESTS = 100;
/**
 * What `wait` waits for, by `<group>/<kind>`: Knative's kinds report `observedGeneration` faithfully.
 * KServe's InferenceService copies its Knative Service's (kserve#6081), so a change of its spec is seen
 * through the Ready condition's `lastTransitionTime` instead. A TrainedModel's Ready is KServe's
 * living condition set over InferenceServiceReady, MemoryResourceAvailable and IsMMSPredictor
 * (`v1alpha1/trained_model_status.go`); its controller sets no `observedGeneration`, and a spec change
 * that leaves those True leaves Ready's transition alone, so its Ready is taken as it is (`none`).
 * InferenceServiceReady=False is waiting, not failure: the InferenceService is waited for beside it.
 * Its Ready does not say that the model agent has loaded the model (the model's ready route does).
 */
const WAITED: Record<string, { track: WaitTarget['track']; waitsOn?: readonly string[] }> = {
  'serving.knative.dev/Service': { track: 'generation' },
  'eventing.knative.dev/Trigger': { track: 'generation' },
  'serving.kserve.io/InferenceService': { track: 'transition' },
  'serving.kserve.io/TrainedModel': { track: 'none', waitsOn: ['InferenceServiceReady'] },
};

const KINDS_APPLIED = [
  { group: 'serving.knative.dev', version: 'v1', kind: 'Service' },
  { group: 'eventing.knative.dev', version: 'v1', kind: 'Trigger' },
  { group: 'serving.kserve.io', version: 'v1beta1', kind: 'InferenceService' },
  { group: 'serving.kserve.io', version: 'v1alpha1', kind: 'TrainedModel' },
  { group: 'serving.kserve.io', version: 'v1alpha1', kind: 'ClusterServingRuntime' },
];
let serializersRegistered = false;

/**
 * client-node picks a serializer by `<Version><Kind>` alone, so a Knative
 * `serving.knative.dev/v1 Service` is serialized as a core `V1Service` and its
 * `spec.template` is silently dropped. Registering these kinds by full
 * group/version/kind makes it send them as they are.
 */
function registerPassThroughSerializers(): void {
  if (serializersRegistered) return;
  const passThrough = { serialize: (o: unknown) => o, deserialize: (o: unknown) => o };
  for (const gvk of KINDS_APPLIED) {
    try {
      ObjectSerializer.registerModel(gvk, passThrough);
    } catch {
      // already registered (by us in another copy of this module, or by the caller): fine
    }
  }
  serializersRegistered = true;
}

/** The objects of `manifests/<fn>/` (or `<fn>/kserve/`), in file order, namespaced. */
export async function functionManifests(fn: string, opts: { manifestsDir?: string; kserve?: boolean; namespace: string }): Promise<KubernetesObject[]> {
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(fn)) throw new InvalidArgument(`function: expected a function name (DNS label), got ${JSON.stringify(fn)}`);
  const base = opts.manifestsDir ?? join(repoRoot(), 'manifests');
  const dir = opts.kserve ? join(base, fn, 'kserve') : join(base, fn);
  if (!existsSync(dir)) throw new NotFound(`no manifests for function ${fn} in ${dir} (run make manifests)`);
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  const objects: KubernetesObject[] = [];
  for (const f of files) {
    for (const doc of parseAllDocuments(await readFile(join(dir, f), 'utf8'))) {
      if (doc.errors.length > 0) throw new InvalidArgument(`${join(dir, f)}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as KubernetesObject | null;
      if (!obj) continue;
      if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) throw new InvalidArgument(`${join(dir, f)}: apiVersion, kind and metadata.name are required`);
      if (!CLUSTER_SCOPED.has(obj.kind)) {
        const { name, ...rest } = obj.metadata;
        obj.metadata = { name, namespace: opts.namespace, ...rest };
      }
      objects.push(obj);
      if (objects.length > MAX_MANIFESTS) throw new InvalidArgument(`${dir}: more than ${MAX_MANIFESTS} manifests`);
    }
  }
  if (objects.length === 0) throw new NotFound(`no manifests for function ${fn} in ${dir}`);
  return objects;
}

/**
 * Puts the canary split into the applied Knative Service or InferenceService. Knative's split
 * names the revision serving now, read from the cluster (a dry run too, when it has a kubeconfig);
 * KServe finds it itself.
 */
async function splitTraffic(objects: KubernetesObject[], percent: number, kc: KubeConfig | undefined): Promise<void> {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new InvalidArgument(`canary: expected a whole percent from 0 to 100, got ${percent}`);
  for (const o of objects as (KubernetesObject & { spec: Record<string, any> })[]) {
    if (o.kind === 'InferenceService') o.spec.predictor.canaryTrafficPercent = percent;
    if (o.kind !== 'Service' || !o.apiVersion?.startsWith('serving.knative.dev/')) continue;
    const what = `Service ${o.metadata!.namespace}/${o.metadata!.name}`;
    if (!kc) throw new InvalidArgument(`--canary splits traffic with the revision ${what} serves now, read from the cluster: give a kubeconfig (a dry run reads, and applies nothing)`);
    registerPassThroughSerializers();
    // A canary in progress keeps its `current` revision (a new percent, or new code for the candidate);
    // otherwise the revision serving now is the one the route sends most to (it may be pinned, as by
    // `kn service update --traffic rev=100`), else the latest ready one.
    const current = await KubernetesObjectApi.makeApiClient(kc)
      .read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata!.name!, namespace: o.metadata!.namespace } })
      .then(
        (r) => {
          type Target = { tag?: string; revisionName?: string; percent?: number };
          const live = r as { spec?: { traffic?: Target[] }; status?: { latestReadyRevisionName?: string; traffic?: Target[] } };
          const routed = [...(live.status?.traffic ?? [])].filter((t) => t.revisionName).sort((a, b) => (b.percent ?? 0) - (a.percent ?? 0))[0];
          return live.spec?.traffic?.find((t) => t.tag === 'current' && t.revisionName)?.revisionName ?? routed?.revisionName ?? live.status?.latestReadyRevisionName;
        },
        (err: unknown) => (isNotFound(err) ? undefined : Promise.reject(kubeError(err, `read ${what}`, kc))),
      );
    if (!current) throw new NotFound(`--canary splits traffic with the revision ${what} serves now, and it has none ready: deploy it without --canary first`);
    o.spec.traffic = [
      { revisionName: current, percent: 100 - percent, tag: 'current' },
      { latestRevision: true, percent, tag: 'candidate' },
    ];
  }
}

/** Service before Triggers, InferenceService before TrainedModel: what a subscriber or model refers to comes first. */
function rank(file: string): number {
  return /^(service|inference-service)\.ya?ml$/.test(file) ? 0 : 1;
}

export function applyRequest(obj: KubernetesObject, opts: { force?: boolean } = {}): string {
  const [group, version] = obj.apiVersion!.includes('/') ? obj.apiVersion!.split('/') : ['', obj.apiVersion!];
  const root = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const plural = PLURALS[obj.kind!] ?? `${obj.kind!.toLowerCase()}s`;
  const ns = obj.metadata?.namespace ? `/namespaces/${obj.metadata.namespace}` : '';
  return `PATCH ${root}${ns}/${plural}/${obj.metadata!.name}?fieldManager=${FIELD_MANAGER}${opts.force ? '&force=true' : ''} (${PatchStrategy.ServerSideApply})`;
}

export async function deploy(fn: string, opts: DeployOptions = {}): Promise<AppliedObject[]> {
  // A dry run needs no cluster; a kubeconfig is read only if one is given, for its namespace.
  const kc = opts.dryRun && !opts.kubeconfig ? undefined : loadKubeConfig(opts);
  const namespace = namespaceOf(kc, opts);
  const objects = await functionManifests(fn, { manifestsDir: opts.manifestsDir, kserve: opts.kserve, namespace });
  if (opts.canary !== undefined) await splitTraffic(objects, opts.canary, kc);
  const summary = (o: KubernetesObject): AppliedObject => ({
    apiVersion: o.apiVersion!,
    kind: o.kind!,
    name: o.metadata!.name!,
    namespace: o.metadata!.namespace,
    request: applyRequest(o, opts),
  });
  if (opts.dryRun) {
    const out = opts.out ?? ((t: string) => process.stdout.write(t));
    for (const o of objects) out(`# dry run: ${applyRequest(o, opts)}\n---\n${stringify(o, { lineWidth: 0 })}`);
    return objects.map(summary);
  }
  registerPassThroughSerializers();
  const api = KubernetesObjectApi.makeApiClient(kc!);
  const applied: AppliedObject[] = [];
  const targets: WaitTarget[] = [];
  for (const o of objects) {
    const what = `${o.kind} ${o.metadata!.namespace ? o.metadata!.namespace + '/' : ''}${o.metadata!.name}`;
    const waited = opts.wait ? WAITED[`${o.apiVersion!.split('/')[0]}/${o.kind}`] : undefined;
    const track = waited?.track;
    // The generation before the apply tells whether it changed the spec (read only where that matters).
    const before = track === 'transition' || track === 'none' ? await api.read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata!.name!, namespace: o.metadata!.namespace } }).then((r) => r.metadata?.generation, (err: unknown) => (isNotFound(err) ? 0 : Promise.reject(kubeError(err, what, kc)))) : undefined;
    let answer: KubernetesObject;
    try {
      answer = await api.patch(o, undefined, undefined, FIELD_MANAGER, opts.force ? true : undefined, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw kubeError(err, `apply ${what}`, kc);
    }
    applied.push(summary(o));
    if (!track) continue;
    const generation = answer.metadata?.generation;
    if (track === 'none' && before !== 0 && before !== generation) {
      opts.wait?.onProgress?.(`${what}: its spec changed, and KServe's Ready for it cannot tell the new spec's from the old: once it is Ready, the model's own ready route (/v2/models/${o.metadata!.name}/ready) says whether the agent has loaded the new one`);
    }
    const appliedAt = answer.metadata?.managedFields?.find((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply')?.time;
    targets.push({
      apiVersion: o.apiVersion!,
      kind: o.kind!,
      name: o.metadata!.name!,
      namespace: o.metadata!.namespace,
      generation,
      track,
      ...(track === 'transition' && before !== generation && appliedAt ? { readySince: new Date(appliedAt) } : {}),
      ...(waited?.waitsOn ? { waitsOn: waited.waitsOn } : {}),
    });
  }
  if (!opts.wait) return applied;
  const ready = await waitReady(kc!, targets, opts.wait);
  const urls = new Map(ready.map((r) => [`${r.kind}/${r.name}`, r.url]));
  return applied.map((a) => {
    const url = urls.get(`${a.kind}/${a.name}`);
    return url ? { ...a, url } : a;
  });
}
