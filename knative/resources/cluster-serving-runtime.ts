/**
 * @module knative/resources/cluster-serving-runtime
 * The ClusterServingRuntime `kinfer` (serving.kserve.io/v1alpha1), for
 * InferenceServices written with `predictor.model.modelFormat`: KServe's
 * storage initializer downloads the model into /mnt/models and kinfer serves it
 * under the InferenceService's name (KServe fills `{{.Name}}`).
 *
 * Auto-selected only for `xmodel`, which no other runtime serves. For `onnx` an
 * InferenceService names it (`runtime: kinfer`): installing kinfer must not move
 * a cluster's onnx models off the runtime they already use (KServe's Triton
 * runtime takes onnx at priority 1, and the highest priority wins).
 */
import { DEFAULT_IMAGE } from '../../functions/define.js';
import { HTTP_PORT, MANAGED_BY, MANAGED_BY_LABEL, type Manifest } from './common.js';

export function clusterServingRuntime(image = DEFAULT_IMAGE): Manifest {
  return {
    apiVersion: 'serving.kserve.io/v1alpha1',
    kind: 'ClusterServingRuntime',
    metadata: { name: 'kinfer', labels: { 'app.kubernetes.io/part-of': 'kinfer', [MANAGED_BY_LABEL]: MANAGED_BY } },
    spec: {
      annotations: { 'prometheus.kserve.io/port': String(HTTP_PORT), 'prometheus.kserve.io/path': '/metrics' },
      supportedModelFormats: [
        { name: 'onnx', version: '1', autoSelect: false },
        { name: 'xmodel', autoSelect: true, priority: 1 },
        { name: 'echo', autoSelect: false },
      ],
      // KServe picks or accepts a runtime only if it lists the InferenceService's protocolVersion, which defaults to v1.
      protocolVersions: ['v1', 'v2'],
      multiModel: false,
      containers: [
        {
          name: 'kserve-container',
          image,
          env: [
            { name: 'MODEL_NAME', value: '{{.Name}}' },
            { name: 'STORAGE_URI', value: '/mnt/models' },
          ],
          ports: [{ containerPort: HTTP_PORT, protocol: 'TCP' }],
          readinessProbe: { httpGet: { path: '/v2/health/ready', port: HTTP_PORT }, periodSeconds: 5 },
          livenessProbe: { httpGet: { path: '/v2/health/live', port: HTTP_PORT }, periodSeconds: 10 },
          resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '2', memory: '4Gi' } },
        },
      ],
    },
  };
}
