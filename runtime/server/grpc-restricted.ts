/**
 * @module server/grpc-restricted
 * Triton's `--grpc-restricted-protocol` (see restricted.ts): the gRPC methods by category, and
 * the server interceptor that checks a restricted call's metadata before its handler runs.
 */
import * as grpc from '@grpc/grpc-js';
import { matches, type ApiCategory, type Restrictions } from './restricted.js';

/** Prefix of a gRPC restriction's metadata key, as Triton names it. */
const GRPC_HEADER_PREFIX = 'triton-grpc-protocol-';

/** gRPC methods by category. Reflection is in none (it describes the services, as the .proto does). */
const GRPC_METHODS: Record<string, ApiCategory> = {
  '/inference.GRPCInferenceService/ServerLive': 'health',
  '/inference.GRPCInferenceService/ServerReady': 'health',
  '/inference.GRPCInferenceService/ModelReady': 'health',
  '/grpc.health.v1.Health/Check': 'health',
  '/grpc.health.v1.Health/Watch': 'health',
  '/inference.GRPCInferenceService/ServerMetadata': 'metadata',
  '/inference.GRPCInferenceService/ModelMetadata': 'metadata',
  '/inference.GRPCInferenceService/ModelInfer': 'inference',
  '/inference.GRPCInferenceService/ModelStreamInfer': 'inference',
  '/inference.GRPCInferenceService/ModelConfig': 'model-config',
  '/inference.GRPCInferenceService/ModelStatistics': 'statistics',
  '/inference.GRPCInferenceService/RepositoryIndex': 'model-repository',
  '/inference.GRPCInferenceService/RepositoryModelLoad': 'model-repository',
  '/inference.GRPCInferenceService/RepositoryModelUnload': 'model-repository',
  '/inference.GRPCInferenceService/SystemSharedMemoryStatus': 'shared-memory',
  '/inference.GRPCInferenceService/SystemSharedMemoryRegister': 'shared-memory',
  '/inference.GRPCInferenceService/SystemSharedMemoryUnregister': 'shared-memory',
  '/inference.GRPCInferenceService/CudaSharedMemoryStatus': 'shared-memory',
  '/inference.GRPCInferenceService/CudaSharedMemoryRegister': 'shared-memory',
  '/inference.GRPCInferenceService/CudaSharedMemoryUnregister': 'shared-memory',
  '/inference.GRPCInferenceService/TraceSetting': 'trace',
  '/inference.GRPCInferenceService/LogSettings': 'logging',
};

export function grpcCategory(path: string): ApiCategory | undefined {
  return GRPC_METHODS[path];
}

/**
 * The server interceptor: a call to a restricted category whose metadata lacks
 * `triton-grpc-protocol-<key>: <value>` ends UNAVAILABLE (Triton's code and message) before
 * its handler sees a message.
 */
export function restrictGrpc(r: Restrictions): grpc.ServerInterceptor {
  return (method, call) => {
    const category = grpcCategory(method.path);
    const rule = category && r.get(category);
    if (!rule) return new grpc.ServerInterceptingCall(call);
    const key = GRPC_HEADER_PREFIX + rule.header;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const v = metadata.get(key)[0];
            if (matches(typeof v === 'string' ? v : undefined, rule.value)) mdNext(metadata);
            else call.sendStatus({ code: grpc.status.UNAVAILABLE, details: `This protocol is restricted, expecting header '${key}'`, metadata: new grpc.Metadata() });
          },
        });
      },
    });
  };
}
