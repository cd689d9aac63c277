/**
 * @module protocol/grpc/health-proto
 * The standard gRPC health checking service (`grpc.health.v1.Health`), which
 * Kubernetes' `grpc` probes, `grpc-health-probe` and service meshes call. Kept
 * as text for the same reason as service-proto.ts.
 */
export const HEALTH_PROTO = `
syntax = "proto3";
package grpc.health.v1;

message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
`;
