import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFound, InvalidArgument, Unavailable } from '../runtime/core/errors.js';
import { startFakeKubeApi, type FakeKubeApi } from '../test/helpers/fake-kube-api.js';
import { until } from '../test/helpers/until.js';
import { deploy, followLogs, list, logs, status } from './commands.js';

// Every Kubernetes call here goes to a test double of the API server on 127.0.0.1 (test/helpers/fake-kube-api.ts).
let api: FakeKubeApi;
beforeEach(async () => {
  api = await startFakeKubeApi({ namespace: 'ctx-ns' });
});
afterEach(async () => {
  await api.close();
});

const KSVC = '/apis/serving.knative.dev/v1/namespaces/ml/services';


function readyService(name: string, rev: string, labels: Record<string, string> = { 'app.kubernetes.io/managed-by': 'kinfer' }) {
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name, namespace: 'ml', labels },
    status: {
      url: `http://${name}.ml.example.com`,
      latestReadyRevisionName: rev,
      latestCreatedRevisionName: rev,
      conditions: [
        { type: 'ConfigurationsReady', status: 'True' },
        { type: 'Ready', status: 'True' },
        { type: 'RoutesReady', status: 'True' },
      ],
    },
  };
}

describe('deploy (server-side apply against the API server test double)', () => {
  it('applies the Service then its Trigger with fieldManager kinfer and the apply-patch content type', async () => {
    const applied = await deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath });
    expect(applied.map((a) => `${a.kind}/${a.name}`)).toEqual(['Service/echo', 'Trigger/echo-requests']);
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.path)).toEqual([
      '/apis/serving.knative.dev/v1/namespaces/ml/services/echo',
      '/apis/eventing.knative.dev/v1/namespaces/ml/triggers/echo-requests',
    ]);
    for (const p of patches) {
      expect(p.contentType).toBe('application/apply-patch+yaml');
      expect(p.query.fieldManager).toBe('kinfer');
      expect(p.query.force).toBeUndefined();
    }
    const body = patches[0]!.body as { kind: string; metadata: { name: string; namespace: string }; spec: { template: { metadata: { annotations: Record<string, string> } } } };
    expect(body.kind).toBe('Service');
    expect(body.metadata).toMatchObject({ name: 'echo', namespace: 'ml' });
    expect(body.spec.template.metadata.annotations['autoscaling.knative.dev/target']).toBe('16');
    expect((patches[1]!.body as { kind: string }).kind).toBe('Trigger');
    // Discovery is what KubernetesObjectApi asks before a patch; nothing but GET discovery and PATCH is sent.
    expect(api.requests.every((r) => r.method === 'PATCH' || (r.method === 'GET' && /^\/apis\/[^/]+\/v1$/.test(r.path)))).toBe(true);
    expect(api.get('/apis/serving.knative.dev/v1/namespaces/ml/services/echo')).toBeDefined();
  });

  it('takes the namespace from the kubeconfig context when none is given, and sends force only when asked', async () => {
    await deploy('xmodel-resnet', { kubeconfig: api.kubeconfigPath, force: true });
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.path)).toEqual(['/apis/serving.knative.dev/v1/namespaces/ctx-ns/services/xmodel-resnet']);
    expect(patches[0]!.query.force).toBe('true');
  });

  it('applies the KServe form: InferenceService before TrainedModel; a pvc:// model gets no TrainedModel', async () => {
    await deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true });
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.path)).toEqual([
      '/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/ocr-det',
      '/apis/serving.kserve.io/v1alpha1/namespaces/ml/trainedmodels/ocr-det',
    ]);
    const isvc = patches[0]!.body as { spec: { predictor: { containers: Array<{ env: Array<{ name: string; value: string }> }> } } };
    expect(isvc.spec.predictor.containers[0]!.env).toContainEqual({ name: 'MULTI_MODEL_SERVER', value: 'true' });
    // KServe's model agent cannot fetch pvc:// (nor file://): only the InferenceService is applied.
    api.requests.length = 0;
    await deploy('xmodel-resnet', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true });
    const fpga = api.requests.filter((r) => r.method === 'PATCH');
    expect(fpga.map((r) => r.path)).toEqual(['/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/xmodel-resnet']);
    const limits = (fpga[0]!.body as { spec: { predictor: { containers: Array<{ resources: { limits: Record<string, string> } }> } } }).spec.predictor.containers[0]!.resources.limits;
    expect(limits['xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_3_1-0']).toBe('1');
  });

  it('dry run prints the requests and objects and sends nothing', async () => {
    let printed = '';
    const r = await deploy('echo', { namespace: 'ml', dryRun: true, kubeconfig: api.kubeconfigPath, out: (t) => (printed += t) });
    expect(api.requests).toEqual([]);
    expect(r.map((a) => a.request)).toEqual([
      'PATCH /apis/serving.knative.dev/v1/namespaces/ml/services/echo?fieldManager=kinfer (application/apply-patch+yaml)',
      'PATCH /apis/eventing.knative.dev/v1/namespaces/ml/triggers/echo-requests?fieldManager=kinfer (application/apply-patch+yaml)',
    ]);
    expect(printed).toContain('# dry run: PATCH /apis/serving.knative.dev/v1/namespaces/ml/services/echo');
    expect(printed).toContain('namespace: ml');
    expect(printed).toContain('autoscaling.knative.dev/target: "16"');
  });

  it('--canary splits the Service between the revision serving now and the new one (tags current, candidate); a later plain deploy drops the split; KServe gets canaryTrafficPercent', async () => {
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00003'));
    await deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, canary: 10 });
    const svc = () => api.requests.filter((r) => r.method === 'PATCH' && r.path === `${KSVC}/echo`).pop()!.body as { spec: { traffic?: unknown } };
    expect(svc().spec.traffic).toEqual([
      { revisionName: 'echo-00003', percent: 90, tag: 'current' },
      { latestRevision: true, percent: 10, tag: 'candidate' },
    ]);
    // A second --canary while the split is in place (a new percent; the candidate became the latest ready revision) keeps the revision it started from.
    api.setStatus(`${KSVC}/echo`, { ...(readyService('echo', 'echo-00004').status as object) });
    await deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, canary: 50 });
    expect(svc().spec.traffic).toEqual([
      { revisionName: 'echo-00003', percent: 50, tag: 'current' },
      { latestRevision: true, percent: 50, tag: 'candidate' },
    ]);
    // Promote: the generated manifest has no traffic, so the server-side apply takes kinfer's split away (Knative then routes 100% to the latest).
    await deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath });
    expect(svc().spec.traffic).toBeUndefined();
    // A dry run reads the revision too, and applies nothing.
    let printed = '';
    await deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, canary: 0, dryRun: true, out: (t) => (printed += t) });
    expect(printed).toMatch(/revisionName: echo-00004\n\s+percent: 100\n\s+tag: current/); // promoted: the latest ready one serves now
    await deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, canary: 25 });
    const isvc = api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/inferenceservices/ocr-det')).pop()!.body as { spec: { predictor: { canaryTrafficPercent?: number } } };
    expect(isvc.spec.predictor.canaryTrafficPercent).toBe(25);
  });

  it('--canary compares with the revision the route sends most to when it is pinned (kn service update --traffic rev=100), not the newest ready one', async () => {
    const svc = readyService('echo', 'echo-00005') as ReturnType<typeof readyService> & { status: { traffic?: unknown } };
    svc.status.traffic = [
      { revisionName: 'echo-00002', percent: 100 },
      { revisionName: 'echo-00005', percent: 0, latestRevision: true },
    ];
    api.put(`${KSVC}/echo`, svc);
    await deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, canary: 10 });
    const body = api.requests.filter((r) => r.method === 'PATCH' && r.path === `${KSVC}/echo`).pop()!.body as { spec: { traffic: unknown } };
    expect(body.spec.traffic).toEqual([
      { revisionName: 'echo-00002', percent: 90, tag: 'current' },
      { latestRevision: true, percent: 10, tag: 'candidate' },
    ]);
  });

  it('--canary without a revision serving, or without a cluster to read it from, or outside 0..100, is refused before any apply', async () => {
    await expect(deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, canary: 10 })).rejects.toThrow(/Service ml\/echo serves now, and it has none ready: deploy it without --canary first/);
    await expect(deploy('echo', { namespace: 'ml', dryRun: true, canary: 10 })).rejects.toThrow(/give a kubeconfig/);
    await expect(deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, canary: 101 })).rejects.toThrow(/whole percent from 0 to 100/);
    expect(api.requests.filter((r) => r.method === 'PATCH')).toEqual([]);
  });

  it('rejects an unknown function and a malformed name before any request', async () => {
    await expect(deploy('nope', { namespace: 'ml', kubeconfig: api.kubeconfigPath })).rejects.toThrow(NotFound);
    await expect(deploy('../etc', { namespace: 'ml', kubeconfig: api.kubeconfigPath })).rejects.toThrow(InvalidArgument);
    expect(api.requests).toEqual([]);
  });

  it('maps an API server refusal to Unavailable naming the object', async () => {
    // here, the server is simply gone (connection refused) after the kubeconfig was copied.
    const kubeconfig = join(await mkdtemp(join(tmpdir(), 'kinfer-kc-')), 'config');
    await writeFile(kubeconfig, await readFile(api.kubeconfigPath));
    await api.close();
    const err = await deploy('echo', { namespace: 'ml', kubeconfig }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Error).message).toMatch(/^Kubernetes API: apply Service ml\/echo: /);
    api = await startFakeKubeApi();
  });

  it('a missing kubeconfig file is InvalidArgument naming it', async () => {
    await expect(deploy('echo', { namespace: 'ml', kubeconfig: '/nonexistent/kubeconfig' })).rejects.toThrow(/kubeconfig \/nonexistent\/kubeconfig/);
  });
});

describe('deploy --wait', () => {
  const SVC = `${KSVC}/echo`;
  const TRIGGER = '/apis/eventing.knative.dev/v1/namespaces/ml/triggers/echo-requests';
  const ready = (generation: number, url?: string) => ({ observedGeneration: generation, ...(url ? { url } : {}), conditions: [{ type: 'Ready', status: 'True' }] });

  it('waits until every applied object is Ready at the generation its apply produced, reporting each change; returns the URL', async () => {
    const progress: string[] = [];
    const deploying = deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, wait: { timeoutMs: 10_000, pollMs: 5, onProgress: (l) => progress.push(l) } });
    await until(() => progress.length === 2);
    expect(progress).toEqual(['Service ml/echo: no conditions yet', 'Trigger ml/echo-requests: no conditions yet']);
    api.setStatus(SVC, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'Unknown', reason: 'RevisionMissing', message: 'Configuration "echo" is waiting for a Revision to become ready.' }] });
    api.setStatus(TRIGGER, ready(1));
    await until(() => progress.length === 4);
    api.setStatus(SVC, ready(1, 'http://echo.ml.example.com'));
    const applied = await deploying;
    expect(applied.map((a) => [a.kind, a.url])).toEqual([['Service', 'http://echo.ml.example.com'], ['Trigger', undefined]]);
    expect(progress.slice(2)).toEqual([
      'Service ml/echo: Ready=Unknown (RevisionMissing: Configuration "echo" is waiting for a Revision to become ready.)',
      'Trigger ml/echo-requests: Ready=True',
      'Service ml/echo: Ready=True',
    ]);

    // A changed spec: the status still says Ready for generation 1, which is not enough for generation 2.
    api.put(SVC, { ...(api.get(SVC) as object), spec: { changed: true } });
    progress.length = 0;
    const again = deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, wait: { timeoutMs: 10_000, pollMs: 5, onProgress: (l) => progress.push(l) } });
    await until(() => progress.includes('Service ml/echo: generation 2 not observed yet (at 1)'));
    expect((api.get(SVC) as { metadata: { generation: number } }).metadata.generation).toBe(2);
    api.setStatus(SVC, ready(2, 'http://echo.ml.example.com'));
    expect((await again)[0]!.url).toBe('http://echo.ml.example.com');
  });

  it('Ready False that lasts the window fails, naming the reason; one that passes within it does not; the timeout names what was last seen', async () => {
    const failing = deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, wait: { timeoutMs: 10_000, pollMs: 5, windowMs: 50 } });
    await until(() => api.requests.filter((r) => r.method === 'PATCH').length === 2);
    api.setStatus(TRIGGER, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False', reason: 'BrokerDoesNotExist', message: 'Broker "default" does not exist' }] });
    await expect(failing).rejects.toThrow(new Unavailable('Trigger ml/echo-requests is not ready: BrokerDoesNotExist: Broker "default" does not exist'));

    // Knative reporting False for a moment: within the window it passes.
    const progress: string[] = [];
    const passing = deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, wait: { timeoutMs: 10_000, pollMs: 5, windowMs: 10_000, onProgress: (l) => progress.push(l) } });
    await until(() => progress.some((l) => l.startsWith('Trigger ml/echo-requests: Ready=False')));
    api.setStatus(TRIGGER, ready(1));
    api.setStatus(SVC, ready(1));
    expect((await passing).map((a) => a.kind)).toEqual(['Service', 'Trigger']);

    api.setStatus(SVC, { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'Unknown', reason: 'Deploying' }] });
    const slow = deploy('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, wait: { timeoutMs: 60, pollMs: 5 } });
    await expect(slow).rejects.toThrow('not ready after 0 s: Service ml/echo: Ready=Unknown (Deploying)');
  });

  const ISVC = '/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/ocr-det';
  const TM = '/apis/serving.kserve.io/v1alpha1/namespaces/ml/trainedmodels/ocr-det';
  const TM_URL = 'http://ocr-det.ml.example.com/v2/models/ocr-det/infer';
  const readyAt = (t: Date, url?: string) => ({ ...(url ? { url } : {}), conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: t.toISOString().replace(/\.\d+Z$/, 'Z') }] });
  /** A TrainedModel's status as KServe's controller writes it: its three conditions, Ready over them (the last one marked False gives Ready its reason). */
  const tmStatus = (isvcReady: boolean, memory = true) => {
    const conditions = [
      isvcReady ? { type: 'InferenceServiceReady', status: 'True' } : { type: 'InferenceServiceReady', status: 'False', reason: 'InferenceServiceNotReady', message: 'Inference Service needs to be ready before Trained Model can be ready' },
      { type: 'IsMMSPredictor', status: 'True' },
      memory ? { type: 'MemoryResourceAvailable', status: 'True' } : { type: 'MemoryResourceAvailable', status: 'False', reason: 'MemoryResourceNotAvailable', message: 'Inference Service does not have enough memory resources for Trained Model' },
    ];
    const lastFalse = conditions.filter((c) => c.status === 'False').pop();
    return { ...(isvcReady ? { url: TM_URL } : {}), conditions: [...conditions, lastFalse ? { ...lastFalse, type: 'Ready' } : { type: 'Ready', status: 'True' }] };
  };

  it('--kserve: the InferenceService by its Ready transition after a changing apply (its observedGeneration is its Knative Service\'s)', async () => {
    const progress: string[] = [];
    const first = deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait: { timeoutMs: 10_000, pollMs: 5, onProgress: (l) => progress.push(l) } });
    await until(() => progress.length === 2);
    expect(progress).toEqual(['InferenceService ml/ocr-det: no conditions yet', 'TrainedModel ml/ocr-det: no conditions yet']);
    api.setStatus(ISVC, { ...readyAt(new Date(), 'http://ocr-det.ml.example.com'), observedGeneration: 7 });
    api.setStatus(TM, tmStatus(true));
    expect((await first).map((a) => [a.kind, a.url])).toEqual([['InferenceService', 'http://ocr-det.ml.example.com'], ['TrainedModel', TM_URL]]);

    // A changed spec, and a Ready=True from an hour before: not taken until Ready turns True again.
    api.put(ISVC, { ...(api.get(ISVC) as object), spec: { changed: true } });
    api.setStatus(ISVC, readyAt(new Date(Date.now() - 3_600_000)));
    progress.length = 0;
    const changed = deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait: { timeoutMs: 10_000, pollMs: 5, onProgress: (l) => progress.push(l) } });
    await until(() => progress.includes('InferenceService ml/ocr-det: the new spec not reconciled yet (Ready=True from before the apply)'));
    api.setStatus(ISVC, readyAt(new Date(Date.now() + 1000), 'http://ocr-det.ml.example.com'));
    expect((await changed)[0]!.url).toBe('http://ocr-det.ml.example.com');
    // A Ready=False from before a changing apply is not the new spec's either (a window of 0 would fail on it at once).
    api.put(ISVC, { ...(api.get(ISVC) as object), spec: { changed: 'again' } });
    api.setStatus(ISVC, { conditions: [{ type: 'Ready', status: 'False', reason: 'OldFailure', lastTransitionTime: new Date(Date.now() - 3_600_000).toISOString() }] });
    progress.length = 0;
    const fixing = deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait: { timeoutMs: 10_000, pollMs: 5, windowMs: 0, onProgress: (l) => progress.push(l) } });
    await until(() => progress.includes('InferenceService ml/ocr-det: the new spec not reconciled yet (Ready=False from before the apply)'));
    api.setStatus(ISVC, readyAt(new Date(Date.now() + 1000), 'http://ocr-det.ml.example.com'));
    expect((await fixing)[0]!.url).toBe('http://ocr-det.ml.example.com');
    // An apply that changes nothing takes the Ready there is.
    expect((await deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait: { timeoutMs: 10_000, pollMs: 5 } }))[0]!.url).toBe('http://ocr-det.ml.example.com');
  });

  it('--kserve: a TrainedModel waits out InferenceServiceNotReady, fails on its own False condition, and takes a Ready after a changed spec as it is', async () => {
    const progress: string[] = [];
    const wait = { timeoutMs: 10_000, pollMs: 5, windowMs: 50, onProgress: (l: string) => progress.push(l) };
    const deploying = deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait });
    await until(() => progress.length === 2);
    // Ready=False only because the InferenceService is not ready yet: pending well past the window.
    api.setStatus(TM, tmStatus(false));
    await until(() => progress.some((l) => l.startsWith('TrainedModel ml/ocr-det: InferenceServiceReady=False (InferenceServiceNotReady')));
    await new Promise((r) => setTimeout(r, 200));
    api.setStatus(ISVC, readyAt(new Date(), 'http://ocr-det.ml.example.com'));
    await until(() => progress.includes('InferenceService ml/ocr-det: Ready=True'));
    await new Promise((r) => setTimeout(r, 100));
    let settled = false;
    void deploying.finally(() => (settled = true)).catch(() => undefined);
    expect(settled).toBe(false); // the TrainedModel is not Ready until its controller's next retry sees the InferenceService
    api.setStatus(TM, tmStatus(true));
    expect((await deploying).map((a) => [a.kind, a.url])).toEqual([['InferenceService', 'http://ocr-det.ml.example.com'], ['TrainedModel', TM_URL]]);
    expect(progress.at(-1)).toBe('TrainedModel ml/ocr-det: InferenceServiceReady=True, IsMMSPredictor=True, MemoryResourceAvailable=True, Ready=True');

    // Not enough memory on the InferenceService: a failure of the TrainedModel's own, named after the window.
    api.setStatus(TM, tmStatus(false, false));
    await expect(deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait: { ...wait, onProgress: undefined } })).rejects.toThrow(
      new Unavailable('TrainedModel ml/ocr-det is not ready: MemoryResourceNotAvailable: Inference Service does not have enough memory resources for Trained Model'),
    );

    // A changed spec (the apply puts the manifest's back): nothing in the status speaks of it, so a True Ready from before is taken.
    api.put(TM, { ...(api.get(TM) as object), spec: { changed: true }, status: { ...tmStatus(true), conditions: tmStatus(true).conditions.map((c) => ({ ...c, lastTransitionTime: new Date(Date.now() - 3_600_000).toISOString() })) } });
    const said: string[] = [];
    const changed = await deploy('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath, kserve: true, wait: { timeoutMs: 10_000, pollMs: 5, onProgress: (l) => said.push(l) } });
    expect((api.get(TM) as { metadata: { generation: number } }).metadata.generation).toBeGreaterThan(1);
    expect(changed[1]!.url).toBe(TM_URL);
    // ...and the caller is told what that Ready cannot say.
    expect(said).toContain("TrainedModel ml/ocr-det: its spec changed, and KServe's Ready for it cannot tell the new spec's from the old: once it is Ready, the model's own ready route (/v2/models/ocr-det/ready) says whether the agent has loaded the new one");
  });
});

describe('status', () => {
  it('reads the Service, then the ready replicas of the latest ready revision', async () => {
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00002'));
    api.put('/apis/apps/v1/namespaces/ml/deployments/echo-00002-deployment', { kind: 'Deployment', metadata: { name: 'echo-00002-deployment' }, status: { readyReplicas: 3 } });
    const s = await status('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath });
    expect(s).toMatchObject({ name: 'echo', namespace: 'ml', url: 'http://echo.ml.example.com', ready: true, latestReadyRevision: 'echo-00002', readyReplicas: 3 });
    expect(s.conditions.map((c) => c.type)).toEqual(['ConfigurationsReady', 'Ready', 'RoutesReady']);
    expect(s.traffic).toEqual([]);
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${KSVC}/echo`,
      'GET /apis/apps/v1/namespaces/ml/deployments/echo-00002-deployment',
    ]);
  });

  it('reports a canary split: each revision, its share, its tag and URL', async () => {
    const svc = readyService('echo', 'echo-00004') as ReturnType<typeof readyService> & { status: { traffic?: unknown } };
    svc.status.traffic = [
      { revisionName: 'echo-00003', percent: 90, tag: 'current', url: 'http://current-echo.ml.example.com' },
      { revisionName: 'echo-00004', percent: 10, tag: 'candidate', url: 'http://candidate-echo.ml.example.com', latestRevision: true },
    ];
    api.put(`${KSVC}/echo`, svc);
    const s = await status('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath });
    expect(s.traffic).toEqual([
      { revisionName: 'echo-00003', percent: 90, tag: 'current', url: 'http://current-echo.ml.example.com' },
      { revisionName: 'echo-00004', percent: 10, tag: 'candidate', url: 'http://candidate-echo.ml.example.com', latestRevision: true },
    ]);
  });

  it("falls back to the Revision's actualReplicas when the Deployment is absent, and reports not ready", async () => {
    const svc = readyService('ocr-det', 'ocr-det-00001');
    svc.status.conditions[1] = { type: 'Ready', status: 'False', reason: 'RevisionFailed', message: 'startup probe failed' } as never;
    api.put(`${KSVC}/ocr-det`, svc);
    api.put('/apis/serving.knative.dev/v1/namespaces/ml/revisions/ocr-det-00001', { kind: 'Revision', status: { actualReplicas: 1 } });
    const s = await status('ocr-det', { namespace: 'ml', kubeconfig: api.kubeconfigPath });
    expect(s.ready).toBe(false);
    expect(s.readyReplicas).toBe(1);
    expect(s.conditions[1]).toEqual({ type: 'Ready', status: 'False', reason: 'RevisionFailed', message: 'startup probe failed' });
  });

  it('a missing Service is NotFound naming it', async () => {
    await expect(status('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath })).rejects.toThrow('Knative Service ml/echo not found');
  });
});

describe('list', () => {
  it('lists only kinfer-managed Services via the label selector', async () => {
    api.put(`${KSVC}/ocr-det`, readyService('ocr-det', 'ocr-det-00001'));
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00001'));
    api.put(`${KSVC}/other`, readyService('other', 'other-00001', { app: 'other' }));
    const l = await list({ namespace: 'ml', kubeconfig: api.kubeconfigPath });
    expect(l.map((f) => f.name)).toEqual(['echo', 'ocr-det']);
    expect(l[0]).toEqual({ name: 'echo', namespace: 'ml', url: 'http://echo.ml.example.com', ready: true, latestReadyRevision: 'echo-00001' });
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]).toMatchObject({ method: 'GET', path: KSVC, query: { labelSelector: 'app.kubernetes.io/managed-by=kinfer' } });
  });
});

describe('logs', () => {
  it("reads user-container logs of the current revision's pods", async () => {
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00003'));
    for (const pod of ['echo-00003-deployment-b', 'echo-00003-deployment-a'])
      api.put(`/api/v1/namespaces/ml/pods/${pod}`, { kind: 'Pod', metadata: { name: pod, labels: { 'serving.knative.dev/revision': 'echo-00003' } } });
    api.put('/api/v1/namespaces/ml/pods/echo-00002-deployment-z', { kind: 'Pod', metadata: { name: 'echo-00002-deployment-z', labels: { 'serving.knative.dev/revision': 'echo-00002' } } });
    api.setPodLog('ml', 'echo-00003-deployment-a', 'user-container', 'line1\nline2\nline3');
    api.setPodLog('ml', 'echo-00003-deployment-b', 'user-container', 'b-only');
    const out = await logs('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, tailLines: 2 });
    expect(out).toEqual([
      { pod: 'echo-00003-deployment-a', revision: 'echo-00003', log: 'line2\nline3' },
      { pod: 'echo-00003-deployment-b', revision: 'echo-00003', log: 'b-only' },
    ]);
    const podCalls = api.requests.filter((r) => r.path.startsWith('/api/v1'));
    expect(podCalls[0]).toMatchObject({ method: 'GET', path: '/api/v1/namespaces/ml/pods', query: { labelSelector: 'serving.knative.dev/revision=echo-00003' } });
    expect(podCalls.slice(1).map((r) => [r.path, r.query.container, r.query.tailLines])).toEqual([
      ['/api/v1/namespaces/ml/pods/echo-00003-deployment-a/log', 'user-container', '2'],
      ['/api/v1/namespaces/ml/pods/echo-00003-deployment-b/log', 'user-container', '2'],
    ]);
  });

  const PODS = '/api/v1/namespaces/ml/pods';
  /**
   * A pod of Knative Service `echo`: its server container running (after `restarts` restarts), waiting to
   * be created, waiting to restart after a crash (its last run terminated), or without a status; `deleting` marks it going.
   */
  const pod = (name: string, revision: string, state: 'running' | 'waiting' | 'crashloop' | 'none' = 'running', restarts = 0, deleting = false) => {
    const container =
      state === 'running'
        ? { state: { running: {} } }
        : state === 'waiting'
          ? { state: { waiting: { reason: 'ContainerCreating' } } }
          : { state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1 } } };
    return {
      kind: 'Pod',
      metadata: { name, labels: { 'serving.knative.dev/service': 'echo', 'serving.knative.dev/revision': revision }, ...(deleting ? { deletionTimestamp: '2026-12-07T00:00:00Z' } : {}) },
      ...(state === 'none' ? {} : { status: { containerStatuses: [{ name: 'user-container', restartCount: restarts, ...container }] } }),
    };
  };

  it('follows the running pods line by line across chunk splits, then pods that start later, until stopped', async () => {
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00003'));
    const [a, b, c, d, e, w] = ['a', 'b', 'c', 'd', 'e', 'w'].map((x) => `echo-00003-deployment-${x}`) as [string, string, string, string, string, string];
    const [y, z] = ['y', 'z'].map((x) => `echo-00002-deployment-${x}`) as [string, string];
    api.put(`${PODS}/${a}`, pod(a, 'echo-00003'));
    api.put(`${PODS}/${b}`, pod(b, 'echo-00003'));
    api.put(`${PODS}/${c}`, pod(c, 'echo-00003', 'waiting')); // not started: its log cannot be read yet
    api.put(`${PODS}/${y}`, pod(y, 'echo-00002')); // the previous revision, still serving (a rollout, a traffic split)
    api.put(`${PODS}/${z}`, pod(z, 'echo-00002', 'running', 0, true)); // being deleted
    api.put(`${PODS}/${w}`, pod(w, 'echo-00003', 'crashloop', 2)); // its last run's log is there
    for (const [p, text] of [[a, 'old1\nold2\nold3\n'], [b, 'b-old\n'], [c, 'c1\n'], [d, 'd1\n'], [e, 'e1\n'], [w, 'w-crash\n'], [y, 'y1\n'], [z, 'z1\n']] as const)
      api.setPodLog('ml', p, 'user-container', text);
    const seen: string[] = [];
    const events: string[] = [];
    const stop = new AbortController();
    const following = followLogs('echo', {
      namespace: 'ml',
      kubeconfig: api.kubeconfigPath,
      tailLines: 2,
      signal: stop.signal,
      onLine: (p, line) => seen.push(`${p.slice(-1)}: ${line}`),
      onPod: (p, rev, open) => events.push(`${open ? '+' : '-'}${p.slice(-1)} ${rev}`),
    });
    await until(() => [a, b, y, w].every((p) => api.followers('ml', p, 'user-container') === 1) && api.watchers(PODS) === 1);
    await until(() => seen.length === 5);
    expect(seen.sort()).toEqual(['a: old2', 'a: old3', 'b: b-old', 'w: w-crash', 'y: y1']);
    expect(api.requests.find((r) => r.query.watch === 'true')?.query).toMatchObject({ labelSelector: 'serving.knative.dev/service=echo', allowWatchBookmarks: 'true', timeoutSeconds: '300' });
    // A line written in two pieces arrives once, whole.
    seen.length = 0;
    api.appendPodLog('ml', a, 'user-container', 'new ha');
    api.appendPodLog('ml', a, 'user-container', 'lf\n');
    await until(() => seen.length === 1);
    expect(seen).toEqual(['a: new half']);

    // c's container starts, d is scaled up, the deleted pod changes: c and d are followed, z is not.
    api.put(`${PODS}/${c}`, pod(c, 'echo-00003'));
    api.put(`${PODS}/${d}`, pod(d, 'echo-00004'));
    api.put(`${PODS}/${z}`, pod(z, 'echo-00002', 'running', 0, true));
    await until(() => seen.length === 3);
    expect(seen.slice(1).sort()).toEqual(['c: c1', 'd: d1']);
    // a's container restarts: its stream ends, and the new container is followed.
    api.endPodLog('ml', a, 'user-container');
    await until(() => events.includes(`-a echo-00003`));
    api.put(`${PODS}/${a}`, pod(a, 'echo-00003', 'running', 1));
    await until(() => api.followers('ml', a, 'user-container') === 1);
    // The watch expires (410): the pods are listed again and watched from there; e starts after.
    api.expireWatches();
    await until(() => api.requests.filter((r) => r.path === PODS && r.query.watch === undefined).length === 2 && api.watchers(PODS) === 1);
    api.put(`${PODS}/${e}`, pod(e, 'echo-00003'));
    await until(() => api.followers('ml', e, 'user-container') === 1);
    expect(api.followers('ml', z, 'user-container')).toBe(0);

    stop.abort();
    expect(await following).toEqual([a, b, y, w, c, d, e]);
    await until(() => [a, b, c, d, e, w, y].every((p) => api.followers('ml', p, 'user-container') === 0) && api.watchers(PODS) === 0); // all closed
    expect(events.filter((x) => x.startsWith('+'))).toEqual(['+a echo-00003', '+b echo-00003', '+y echo-00002', '+w echo-00003', '+c echo-00003', '+d echo-00004', '+a echo-00003', '+e echo-00003']);
  });

  it('with no pod running it waits for one; when the watch keeps failing it ends with the last stream', async () => {
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00003'));
    const a = 'echo-00003-deployment-a';
    api.setPodLog('ml', a, 'user-container', 'a1\n');
    const seen: string[] = [];
    let idle = 0;
    const errors: string[] = [];
    const stop = new AbortController();
    const opts = { namespace: 'ml', kubeconfig: api.kubeconfigPath, signal: stop.signal, watchBackoffMs: [5, 5], onLine: (p: string, line: string) => seen.push(`${p.slice(-1)}: ${line}`), onIdle: () => idle++, onError: (src: string, err: Error) => errors.push(`${src}: ${err.message}`) };
    const waiting = followLogs('echo', opts);
    await until(() => idle === 1 && api.watchers(PODS) === 1);
    api.put(`${PODS}/${a}`, pod(a, 'echo-00003')); // scaled up from zero
    await until(() => seen.length === 1);
    api.dropPodLog('ml', a, 'user-container'); // the connection cut mid-stream: the stream ends, waiting again
    await until(() => idle === 2);
    stop.abort();
    expect(await waiting).toEqual([a]);

    // The API server refuses watches (RBAC without `watch`): after the retries, it ends when the open stream does.
    api.refuseWatches(403);
    errors.length = 0;
    const ending = followLogs('echo', { ...opts, signal: new AbortController().signal });
    await until(() => errors.length === 1 && api.followers('ml', a, 'user-container') === 1);
    expect(errors[0]).toMatch(/^pods: stopped looking for new pods after 3 failed watches: Kubernetes API: watch of pods of Knative Service ml\/echo: /);
    api.endPodLog('ml', a, 'user-container');
    expect(await ending).toEqual([a]);
  });

  it('throws when every pod running at the start fails to stream', async () => {
    api.put(`${KSVC}/echo`, readyService('echo', 'echo-00003'));
    api.put(`${PODS}/echo-00003-deployment-a`, pod('echo-00003-deployment-a', 'echo-00003')); // no log: the API server answers 400
    const follow = followLogs('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath, signal: new AbortController().signal, onLine: () => {} });
    await expect(follow).rejects.toThrow("Kubernetes API: logs of pod ml/echo-00003-deployment-a: HTTP 400"); // client-node's Log drops the body
    await until(() => api.watchers(PODS) === 0);
  });

  it('a Service without a revision is NotFound', async () => {
    api.put(`${KSVC}/echo`, { kind: 'Service', metadata: { name: 'echo' }, status: {} });
    await expect(logs('echo', { namespace: 'ml', kubeconfig: api.kubeconfigPath })).rejects.toThrow('has no revision yet');
  });
});
