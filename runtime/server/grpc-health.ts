/**
 * @module server/grpc-health
 * `grpc.health.v1.Health` on the gRPC port, for Kubernetes `grpc` probes,
 * grpc-health-probe and meshes. Service names: `""`,
 * `inference.GRPCInferenceService` and `readiness` answer what
 * `/v2/health/ready` answers (SERVING once started and the required models
 * are loaded, NOT_SERVING while starting or draining); `liveness` answers
 * `/v2/health/live`. Another name is NOT_FOUND for Check and SERVICE_UNKNOWN
 * for Watch, as the health protocol says.
 */
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import type { DataPlane } from '../dataplane.js';
import { packageDefinitionOf } from '../protocol/grpc/codec.js';
import { HEALTH_PROTO } from '../protocol/grpc/health-proto.js';

type Status = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** How often a Watch re-reads the status to send changes. */
export const WATCH_POLL_MS = 1000;

/** The package definition, for clients (tests, tools) that call the health service. */
export function healthPackageDefinition(): protoLoader.PackageDefinition {
  return packageDefinitionOf(HEALTH_PROTO);
}

export interface HealthService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Sends NOT_SERVING to every open Watch and ends it, so shutdown does not wait on them. */
  close(): void;
}

export function healthService(dp: DataPlane, onError: (err: unknown) => void): HealthService {
  const pkg = grpc.loadPackageDefinition(healthPackageDefinition()) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  // A Map: a client's service name must not reach Object.prototype ('constructor', '__proto__').
  const checks = new Map<string, () => boolean | Promise<boolean>>([
    ['', () => dp.ready()],
    ['inference.GRPCInferenceService', () => dp.ready()],
    ['readiness', () => dp.ready()],
    ['liveness', () => dp.live()],
  ]);
  const statusOf = async (service: string): Promise<Status> => {
    const check = checks.get(service);
    if (!check) return 'SERVICE_UNKNOWN';
    return (await check()) ? 'SERVING' : 'NOT_SERVING';
  };
  const watches = new Set<{ call: grpc.ServerWritableStream<unknown, unknown>; timer: NodeJS.Timeout }>();

  const implementation: grpc.UntypedServiceImplementation = {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      statusOf(call.request.service).then(
        (status) => {
          if (status === 'SERVICE_UNKNOWN') callback({ code: grpc.status.NOT_FOUND, details: `unknown health service '${call.request.service}' (known: "", ${[...checks.keys()].filter(Boolean).join(', ')})` });
          else callback(null, { status });
        },
        (err: unknown) => {
          onError(err);
          callback({ code: grpc.status.INTERNAL, details: 'health check failed' });
        },
      );
    },
    Watch: (call: grpc.ServerWritableStream<{ service: string }, unknown>) => {
      let last: Status | undefined;
      const send = () =>
        statusOf(call.request.service).then((status) => {
          if (status !== last && !call.cancelled && call.writable) call.write({ status });
          last = status;
        }, onError);
      const watch = { call: call as grpc.ServerWritableStream<unknown, unknown>, timer: setInterval(send, WATCH_POLL_MS) };
      watch.timer.unref();
      watches.add(watch);
      call.on('cancelled', () => {
        clearInterval(watch.timer);
        watches.delete(watch);
      });
      void send();
    },
  };

  return {
    definition: pkg.grpc.health.v1.Health.service,
    implementation,
    close() {
      for (const w of watches) {
        clearInterval(w.timer);
        if (w.call.writable) w.call.write({ status: 'NOT_SERVING' });
        w.call.end();
      }
      watches.clear();
    },
  };
}
