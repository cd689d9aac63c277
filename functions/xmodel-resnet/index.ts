/**
 * @module functions/xmodel-resnet
 * The original KServe example of the Xilinx Inference Server: a ResNet50 XModel
 * on an Alveo U250 FPGA (the `xmodel-` name prefix selects the XModel backend,
 * as in the original server). Needs a node with that FPGA shell and the Xilinx
 * device plugin; none exists on the project's machines, so this function is
 * tested only as manifests.
 */
import { defineFunction } from '../define.js';

export default defineFunction({
  name: 'xmodel-resnet',
  description: 'ResNet50 XModel on a Xilinx U250 FPGA (the original KServe example)',
  model: { name: 'xmodel-resnet', storageUri: 'pvc://models/xmodel-resnet', platform: 'xmodel', memory: '1Gi' },
  backend: { batchSize: 4, instances: 1, options: {} },
  batching: { maxBatchSize: 4, maxQueueDelayMicroseconds: 2000, preferredBatchSizes: [4] },
  // One FPGA per pod: the target is the batch the DPU runs at once.
  scaling: { metric: 'concurrency', target: 4, containerConcurrency: 8, minScale: 0, maxScale: 4, initialScale: 1, scaleDownDelay: '5m', timeoutSeconds: 60, startupSeconds: 900 },
  resources: {
    requests: { cpu: '2', memory: '4Gi' },
    limits: { cpu: '4', memory: '8Gi' },
    accelerators: { 'xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_3_1-0': 1 },
  },
});
