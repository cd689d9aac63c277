/**
 * @module kinfer
 * The public surface of the kinfer runtime: start a server, or embed the data
 * plane. Import from `kinfer` (this file) or `kinfer/client`; no deep imports.
 *
 * @example
 * import { startServer } from 'kinfer';
 * const server = await startServer({ mode: 'repository', modelRepository: './models', port: 8080 });
 * await server.startup;
 */
export { startServer, type RunningServer, type ServeOptions, type ServeMode, type LifecycleHooks } from './server/serve.js';
export { createApp, type AppOptions } from './server/app.js';
export { DataPlane } from './dataplane.js';
export { ModelRepository } from './repository/model-repository.js';
export type { Backend, ModelFiles, ModelMetadata } from './backends/backend.js';
export type { Batcher, BatchRequest, BatchResult } from './batching/batcher.js';
export type { InferRequest, InferResponse } from './core/infer.js';
export type { Tensor, TensorSpec } from './core/tensor.js';
export type { Datatype } from './core/datatypes.js';
export * from './core/errors.js';
export { pull, type PullOptions, type PullResult } from './storage/pull.js';
