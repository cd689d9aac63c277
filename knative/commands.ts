/**
 * @module knative/commands
 * What the CLI verbs `kinfer manifests | validate | deploy | status | list | logs | dev`
 * call. Each returns data (the CLI formats it) and throws a KinferError with a
 * specific message on failure.
 */
export { generateManifests, loadFunctions, type GenerateOptions, type GenerateResult } from './generate.js';
export { startLocalServing, type LocalServing, type LocalServingOptions } from './local-serving.js';
export { validateManifests, type ValidationResult } from './validate.js';
export { deploy, type AppliedObject, type DeployOptions } from './deploy.js';
export { status, type FunctionStatus, type Condition } from './status.js';
export { list, type FunctionSummary } from './list.js';
export { followLogs, logs, type FollowOptions, type LogsOptions, type PodLog } from './logs.js';
export { defaultSpecsDir, repoRoot, specsAvailable } from './specs.js';
export type { KubeOptions } from './kube.js';
