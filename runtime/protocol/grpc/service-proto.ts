/**
 * @module protocol/grpc/service-proto
 * The `inference.GRPCInferenceService` kinfer serves: the Open Inference
 * Protocol's gRPC API (`open_inference_grpc.proto`, KServe's v2) and, from
 * Triton's `grpc_service.proto` and `model_config.proto`, the streaming,
 * model repository, model configuration and statistics RPCs, with their field
 * numbers, so KServe's and Triton's gRPC clients talk to it unchanged. Kept as
 * text in the module so the bundle needs no .proto file beside it. Of Triton's
 * messages only the fields kinfer fills are declared (a client's full
 * definition decodes them, and reads the rest as unset). The shared-memory,
 * trace-setting and log-settings RPCs are declared with their whole messages.
 */
export const SERVICE_PROTO = `
syntax = "proto3";
package inference;

service GRPCInferenceService {
  rpc ServerLive(ServerLiveRequest) returns (ServerLiveResponse) {}
  rpc ServerReady(ServerReadyRequest) returns (ServerReadyResponse) {}
  rpc ModelReady(ModelReadyRequest) returns (ModelReadyResponse) {}
  rpc ServerMetadata(ServerMetadataRequest) returns (ServerMetadataResponse) {}
  rpc ModelMetadata(ModelMetadataRequest) returns (ModelMetadataResponse) {}
  rpc ModelInfer(ModelInferRequest) returns (ModelInferResponse) {}
  rpc ModelStreamInfer(stream ModelInferRequest) returns (stream ModelStreamInferResponse) {}
  rpc ModelConfig(ModelConfigRequest) returns (ModelConfigResponse) {}
  rpc ModelStatistics(ModelStatisticsRequest) returns (ModelStatisticsResponse) {}
  rpc RepositoryIndex(RepositoryIndexRequest) returns (RepositoryIndexResponse) {}
  rpc RepositoryModelLoad(RepositoryModelLoadRequest) returns (RepositoryModelLoadResponse) {}
  rpc RepositoryModelUnload(RepositoryModelUnloadRequest) returns (RepositoryModelUnloadResponse) {}
  rpc SystemSharedMemoryStatus(SystemSharedMemoryStatusRequest) returns (SystemSharedMemoryStatusResponse) {}
  rpc SystemSharedMemoryRegister(SystemSharedMemoryRegisterRequest) returns (SystemSharedMemoryRegisterResponse) {}
  rpc SystemSharedMemoryUnregister(SystemSharedMemoryUnregisterRequest) returns (SystemSharedMemoryUnregisterResponse) {}
  rpc CudaSharedMemoryStatus(CudaSharedMemoryStatusRequest) returns (CudaSharedMemoryStatusResponse) {}
  rpc CudaSharedMemoryRegister(CudaSharedMemoryRegisterRequest) returns (CudaSharedMemoryRegisterResponse) {}
  rpc CudaSharedMemoryUnregister(CudaSharedMemoryUnregisterRequest) returns (CudaSharedMemoryUnregisterResponse) {}
  rpc TraceSetting(TraceSettingRequest) returns (TraceSettingResponse) {}
  rpc LogSettings(LogSettingsRequest) returns (LogSettingsResponse) {}
}

message LogSettingsRequest {
  message SettingValue { oneof parameter_choice { bool bool_param = 1; uint32 uint32_param = 2; string string_param = 3; } }
  map<string, SettingValue> settings = 1;
}
message LogSettingsResponse {
  message SettingValue { oneof parameter_choice { bool bool_param = 1; uint32 uint32_param = 2; string string_param = 3; } }
  map<string, SettingValue> settings = 1;
}

message TraceSettingRequest {
  message SettingValue { repeated string value = 1; }
  map<string, SettingValue> settings = 1;
  string model_name = 2;
}
message TraceSettingResponse {
  message SettingValue { repeated string value = 1; }
  map<string, SettingValue> settings = 1;
}

message SystemSharedMemoryStatusRequest { string name = 1; }
message SystemSharedMemoryStatusResponse {
  message RegionStatus { string name = 1; string key = 2; uint64 offset = 3; uint64 byte_size = 4; }
  map<string, RegionStatus> regions = 1;
}
message SystemSharedMemoryRegisterRequest { string name = 1; string key = 2; uint64 offset = 3; uint64 byte_size = 4; }
message SystemSharedMemoryRegisterResponse {}
message SystemSharedMemoryUnregisterRequest { string name = 1; }
message SystemSharedMemoryUnregisterResponse {}
message CudaSharedMemoryStatusRequest { string name = 1; }
message CudaSharedMemoryStatusResponse {
  message RegionStatus { string name = 1; uint64 device_id = 2; uint64 byte_size = 3; }
  map<string, RegionStatus> regions = 1;
}
message CudaSharedMemoryRegisterRequest { string name = 1; bytes raw_handle = 2; int64 device_id = 3; uint64 byte_size = 4; }
message CudaSharedMemoryRegisterResponse {}
message CudaSharedMemoryUnregisterRequest { string name = 1; }
message CudaSharedMemoryUnregisterResponse {}

message ServerLiveRequest {}
message ServerLiveResponse { bool live = 1; }
message ServerReadyRequest {}
message ServerReadyResponse { bool ready = 1; }
message ModelReadyRequest { string name = 1; string version = 2; }
message ModelReadyResponse { bool ready = 1; }
message ServerMetadataRequest {}
message ServerMetadataResponse { string name = 1; string version = 2; repeated string extensions = 3; }
message ModelMetadataRequest { string name = 1; string version = 2; }
message ModelMetadataResponse {
  message TensorMetadata { string name = 1; string datatype = 2; repeated int64 shape = 3; }
  string name = 1;
  repeated string versions = 2;
  string platform = 3;
  repeated TensorMetadata inputs = 4;
  repeated TensorMetadata outputs = 5;
  map<string, string> properties = 6;
}

message ModelInferRequest {
  message InferInputTensor {
    string name = 1;
    string datatype = 2;
    repeated int64 shape = 3;
    map<string, InferParameter> parameters = 4;
    InferTensorContents contents = 5;
  }
  message InferRequestedOutputTensor {
    string name = 1;
    map<string, InferParameter> parameters = 2;
  }
  string model_name = 1;
  string model_version = 2;
  string id = 3;
  map<string, InferParameter> parameters = 4;
  repeated InferInputTensor inputs = 5;
  repeated InferRequestedOutputTensor outputs = 6;
  repeated bytes raw_input_contents = 7;
}

message ModelInferResponse {
  message InferOutputTensor {
    string name = 1;
    string datatype = 2;
    repeated int64 shape = 3;
    map<string, InferParameter> parameters = 4;
    InferTensorContents contents = 5;
  }
  string model_name = 1;
  string model_version = 2;
  string id = 3;
  map<string, InferParameter> parameters = 4;
  repeated InferOutputTensor outputs = 5;
  repeated bytes raw_output_contents = 6;
}

message ModelStreamInferResponse {
  string error_message = 1;
  ModelInferResponse infer_response = 2;
}

message InferParameter {
  oneof parameter_choice {
    bool bool_param = 1;
    int64 int64_param = 2;
    string string_param = 3;
    double double_param = 4;
    uint64 uint64_param = 5;
  }
}

message InferTensorContents {
  repeated bool bool_contents = 1;
  repeated int32 int_contents = 2;
  repeated int64 int64_contents = 3;
  repeated uint32 uint_contents = 4;
  repeated uint64 uint64_contents = 5;
  repeated float fp32_contents = 6;
  repeated double fp64_contents = 7;
  repeated bytes bytes_contents = 8;
}

message RepositoryIndexRequest { string repository_name = 1; bool ready = 2; }
message RepositoryIndexResponse {
  message ModelIndex { string name = 1; string version = 2; string state = 3; string reason = 4; }
  repeated ModelIndex models = 1;
}
message ModelRepositoryParameter {
  oneof parameter_choice {
    bool bool_param = 1;
    int64 int64_param = 2;
    string string_param = 3;
    bytes bytes_param = 4;
  }
}
message RepositoryModelLoadRequest {
  string repository_name = 1;
  string model_name = 2;
  map<string, ModelRepositoryParameter> parameters = 3;
}
message RepositoryModelLoadResponse {}
message RepositoryModelUnloadRequest {
  string repository_name = 1;
  string model_name = 2;
  map<string, ModelRepositoryParameter> parameters = 3;
}
message RepositoryModelUnloadResponse {}

message ModelConfigRequest { string name = 1; string version = 2; }
message ModelConfigResponse { ModelConfig config = 1; }
enum DataType {
  TYPE_INVALID = 0; TYPE_BOOL = 1; TYPE_UINT8 = 2; TYPE_UINT16 = 3; TYPE_UINT32 = 4; TYPE_UINT64 = 5;
  TYPE_INT8 = 6; TYPE_INT16 = 7; TYPE_INT32 = 8; TYPE_INT64 = 9; TYPE_FP16 = 10; TYPE_FP32 = 11;
  TYPE_FP64 = 12; TYPE_STRING = 13; TYPE_BF16 = 14;
}
message ModelTensorReshape { repeated int64 shape = 1; }
message ModelInput {
  enum Format { FORMAT_NONE = 0; FORMAT_NHWC = 1; FORMAT_NCHW = 2; }
  string name = 1;
  DataType data_type = 2;
  Format format = 3;
  repeated int64 dims = 4;
  ModelTensorReshape reshape = 5;
  bool optional = 8;
}
message ModelOutput {
  string name = 1;
  DataType data_type = 2;
  repeated int64 dims = 3;
  string label_filename = 4;
  ModelTensorReshape reshape = 5;
}
message ModelInstanceGroup {
  enum Kind { KIND_AUTO = 0; KIND_GPU = 1; KIND_CPU = 2; KIND_MODEL = 3; }
  string name = 1;
  int32 count = 2;
  Kind kind = 4;
}
message ModelParameter { string string_value = 1; }
message ModelResponseCache { bool enable = 1; }
message ModelQueuePolicy {
  enum TimeoutAction { REJECT = 0; DELAY = 1; }
  TimeoutAction timeout_action = 1;
  uint64 default_timeout_microseconds = 2;
  bool allow_timeout_override = 3;
  uint32 max_queue_size = 4;
}
message ModelDynamicBatching {
  repeated int32 preferred_batch_size = 1;
  uint64 max_queue_delay_microseconds = 2;
  uint64 priority_levels = 4;
  uint64 default_priority_level = 5;
  ModelQueuePolicy default_queue_policy = 6;
  map<uint64, ModelQueuePolicy> priority_queue_policy = 7;
}
message ModelEnsembling {
  message Step {
    string model_name = 1;
    int64 model_version = 2;
    map<string, string> input_map = 3;
    map<string, string> output_map = 4;
  }
  repeated Step step = 1;
}
message ModelVersionPolicy {
  message Latest { uint32 num_versions = 1; }
  message All {}
  message Specific { repeated int64 versions = 1; }
  oneof policy_choice { Latest latest = 1; All all = 2; Specific specific = 3; }
}
message ModelSequenceBatching {
  message Control {
    enum Kind { CONTROL_SEQUENCE_START = 0; CONTROL_SEQUENCE_READY = 1; CONTROL_SEQUENCE_END = 2; CONTROL_SEQUENCE_CORRID = 3; }
    Kind kind = 1;
    repeated int32 int32_false_true = 2;
    repeated float fp32_false_true = 3;
    DataType data_type = 4;
    repeated bool bool_false_true = 5;
  }
  message ControlInput { string name = 1; repeated Control control = 2; }
  message InitialState {
    DataType data_type = 1;
    repeated int64 dims = 2;
    oneof state_data { bool zero_data = 3; string data_file = 4; }
    string name = 5;
  }
  message State {
    string input_name = 1;
    string output_name = 2;
    DataType data_type = 3;
    repeated int64 dims = 4;
    repeated InitialState initial_state = 5;
  }
  message StrategyDirect { uint64 max_queue_delay_microseconds = 1; float minimum_slot_utilization = 2; }
  message StrategyOldest { int32 max_candidate_sequences = 1; repeated int32 preferred_batch_size = 2; uint64 max_queue_delay_microseconds = 3; }
  oneof strategy_choice { StrategyDirect direct = 3; StrategyOldest oldest = 4; }
  uint64 max_sequence_idle_microseconds = 1;
  repeated ControlInput control_input = 2;
  repeated State state = 5;
}
message ModelConfig {
  string name = 1;
  string platform = 2;
  ModelVersionPolicy version_policy = 3;
  int32 max_batch_size = 4;
  repeated ModelInput input = 5;
  repeated ModelOutput output = 6;
  repeated ModelInstanceGroup instance_group = 7;
  oneof scheduling_choice { ModelDynamicBatching dynamic_batching = 11; ModelSequenceBatching sequence_batching = 13; ModelEnsembling ensemble_scheduling = 15; }
  map<string, ModelParameter> parameters = 14;
  ModelResponseCache response_cache = 24;
}

message ModelStatisticsRequest { string name = 1; string version = 2; }
message ModelStatisticsResponse { repeated ModelStatistics model_stats = 1; }
message StatisticDuration { uint64 count = 1; uint64 ns = 2; }
message InferStatistics {
  StatisticDuration success = 1;
  StatisticDuration fail = 2;
  StatisticDuration queue = 3;
  StatisticDuration compute_input = 4;
  StatisticDuration compute_infer = 5;
  StatisticDuration compute_output = 6;
  StatisticDuration cache_hit = 7;
  StatisticDuration cache_miss = 8;
}
message InferBatchStatistics {
  uint64 batch_size = 1;
  StatisticDuration compute_input = 2;
  StatisticDuration compute_infer = 3;
  StatisticDuration compute_output = 4;
}
message ModelStatistics {
  string name = 1;
  string version = 2;
  uint64 last_inference = 3;
  uint64 inference_count = 4;
  uint64 execution_count = 5;
  InferStatistics inference_stats = 6;
  repeated InferBatchStatistics batch_stats = 7;
}
`;
