/**
 * @module native/src/run-worker
 * AsyncWorkers (open, create runner, run, release, enumerate) and the Device /
 * Runner handles. Input and output typed arrays are passed to the runner by
 * pointer: no copy on either side of the boundary.
 */
#include "run-worker.h"

#include <cstring>
#include <exception>
#include <utility>

namespace kinfer {
namespace {

/** Largest tensor a runner may declare: one JS typed array holds it, and no DPU buffer comes near. */
constexpr size_t kMaxTensorBytes = 0x7fffffff;

Napi::Value RejectedPromise(Napi::Env env, const Status& st) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(MakeError(env, st).Value());
  return d.Promise();
}

/** A worker settling a promise; subclasses implement Run() (worker thread) and Result() (JS thread). */
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Start() {
    GlobalCounters().queued++;
    Queue();
    return deferred_.Promise();
  }

 protected:
  void Execute() final {
    GlobalCounters().queued--;
    GlobalCounters().running++;
    try {
      status_ = Run();
    } catch (const std::exception& e) {
      status_ = Status::Error("INTERNAL", std::string("native fault: ") + e.what());
    }
    GlobalCounters().running--;
    if (!status_.ok()) SetError(status_.message);
  }
  // Neither may throw: node-addon-api would rethrow into JS, and where JS cannot run (a terminated
  // worker thread's env still completes its queued work) that escapes to std::terminate.
  void OnOK() final {
    try {
      deferred_.Resolve(Result());
    } catch (const Napi::Error& e) {
      Fail(e);
    }
  }
  void OnError(const Napi::Error&) final {
    try {
      deferred_.Reject(MakeError(Env(), status_).Value());
    } catch (const Napi::Error& e) {
      Fail(e);
    }
  }

  virtual Status Run() = 0;
  virtual Napi::Value Result() { return Env().Undefined(); }

 private:
  /** Rejects with `e` when JS can still run; in a dying env nobody is left to see the promise. */
  void Fail(const Napi::Error& e) {
    try {
      deferred_.Reject(e.Value());
    } catch (const Napi::Error&) {
    }
  }

  Napi::Promise::Deferred deferred_;
  Status status_;
};

Napi::Object NewDevice(Napi::Env env, std::shared_ptr<DeviceState> state);
Napi::Object NewRunner(Napi::Env env, std::shared_ptr<RunnerState> state);

Napi::Object TensorInfoValue(Napi::Env env, const TensorInfo& t) {
  auto o = Napi::Object::New(env);
  o.Set("name", t.name);
  o.Set("datatype", t.datatype);
  auto shape = Napi::Array::New(env, t.shape.size());
  for (size_t i = 0; i < t.shape.size(); i++) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.shape[i])));
  o.Set("shape", shape);
  o.Set("byteSize", Napi::Number::New(env, static_cast<double>(t.byteSize)));
  o.Set("fixPoint", t.fixPoint);
  return o;
}

Napi::Object EnumerationValue(Napi::Env env, const Enumeration& en) {
  auto o = Napi::Object::New(env);
  auto list = Napi::Array::New(env, en.devices.size());
  for (size_t i = 0; i < en.devices.size(); i++) {
    const auto& e = en.devices[i];
    auto d = Napi::Object::New(env);
    d.Set("index", e.index);
    d.Set("bdf", e.bdf);
    d.Set("vendorId", e.vendorId);
    d.Set("deviceId", e.deviceId);
    d.Set("subsystemId", e.subsystemId);
    d.Set("driver", e.driver);
    d.Set("shell", e.shell);
    d.Set("name", e.name);
    d.Set("numaNode", e.numaNode);
    d.Set("sysfs", e.fromSysfs);
    d.Set("xrt", e.fromXrt);
    list.Set(static_cast<uint32_t>(i), d);
  }
  o.Set("devices", list);
  o.Set("sysfsDir", en.sysfsDir);
  o.Set("xrtCount", en.xrtCount);
  if (!en.xrtError.empty()) o.Set("xrtError", en.xrtError);
  return o;
}

class EnumerateWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;

 protected:
  Status Run() override {
    result_ = Enumerate();
    return Status::Ok();
  }
  Napi::Value Result() override { return EnumerationValue(Env(), result_); }

 private:
  Enumeration result_;
};

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string selector, std::string xclbin)
      : PromiseWorker(env), selector_(std::move(selector)), xclbin_(std::move(xclbin)) {}

 protected:
  Status Run() override { return OpenDevice(selector_, xclbin_, &state_); }
  Napi::Value Result() override { return NewDevice(Env(), std::move(state_)); }

 private:
  std::string selector_, xclbin_;
  std::shared_ptr<DeviceState> state_;
};

/** Drops a shared hold off the JS thread: the last one closes the vendor object. */
template <typename T>
class ReleaseWorker : public PromiseWorker {
 public:
  ReleaseWorker(Napi::Env env, std::shared_ptr<T> hold) : PromiseWorker(env), hold_(std::move(hold)) {}

 protected:
  Status Run() override {
    hold_.reset();
    return Status::Ok();
  }

 private:
  std::shared_ptr<T> hold_;
};

class CreateRunnerWorker : public PromiseWorker {
 public:
  CreateRunnerWorker(Napi::Env env, std::shared_ptr<DeviceState> device, std::string xmodel)
      : PromiseWorker(env), device_(std::move(device)), xmodel_(std::move(xmodel)) {}

 protected:
  Status Run() override {
    Status st = Create();
    // Off the JS thread, as in RunWorker: after a device close() during the creation this may be
    // the last hold (when the runner was not made), and closing the device calls XRT.
    device_.reset();
    return st;
  }
  Napi::Value Result() override { return NewRunner(Env(), std::move(state_)); }

 private:
  Status Create() {
    const VartApi* vart = nullptr;
    Status st = LoadVart(&vart);
    if (!st.ok()) return st;
    char err[1024] = {0};
    kinfer_vart_runner* r = nullptr;
    const int rc = vart->create(xmodel_.c_str(), device_->bdf.c_str(), static_cast<unsigned>(device_->index < 0 ? 0 : device_->index),
                                &r, err, sizeof(err));
    if (rc != 0 || r == nullptr) {
      return Status::Error("RUNNER_FAILED", "cannot create a VART runner for " + xmodel_ + ": " + (err[0] ? err : "code " + std::to_string(rc)));
    }
    auto state = std::make_shared<RunnerState>();
    state->vart = vart;
    state->runner = r;
    state->device = device_;
    state->xmodel = xmodel_;
    GlobalCounters().runnersAlive++;
    for (int isOutput = 0; isOutput < 2; isOutput++) {
      const int n = vart->tensorCount(r, isOutput);
      if (n < 0 || n > 256) return Status::Error("RUNNER_FAILED", "runner for " + xmodel_ + " reports " + std::to_string(n) + " tensors");
      for (int i = 0; i < n; i++) {
        kinfer_vart_tensor_info ti{};
        if (vart->tensorInfo(r, isOutput, i, &ti) != 0) {
          return Status::Error("RUNNER_FAILED", "runner for " + xmodel_ + ": cannot read tensor " + std::to_string(i));
        }
        TensorInfo t;
        t.name.assign(ti.name, strnlen(ti.name, sizeof(ti.name)));
        t.datatype = DatatypeName(ti.dtype);
        const size_t elem = DatatypeSize(ti.dtype);
        if (t.datatype.empty() || elem == 0 || ti.ndim < 1 || ti.ndim > KINFER_VART_MAX_DIMS) {
          return Status::Error("RUNNER_FAILED", "runner for " + xmodel_ + ": tensor '" + t.name + "' has unsupported type " +
                                                    std::to_string(ti.dtype) + " or rank " + std::to_string(ti.ndim));
        }
        size_t bytes = elem;
        bool tooLarge = false;
        std::string shape;
        for (int d = 0; d < ti.ndim; d++) {
          if (ti.shape[d] <= 0) return Status::Error("RUNNER_FAILED", "runner for " + xmodel_ + ": tensor '" + t.name + "' has a non-positive dim");
          t.shape.push_back(ti.shape[d]);
          shape += (d ? "," : "") + std::to_string(ti.shape[d]);
          tooLarge = tooLarge || __builtin_mul_overflow(bytes, static_cast<size_t>(ti.shape[d]), &bytes) || bytes > kMaxTensorBytes;
        }
        if (tooLarge) {
          return Status::Error("RUNNER_FAILED", "runner for " + xmodel_ + ": tensor '" + t.name + "' is too large: shape [" + shape + "] of " +
                                                    t.datatype + " is more than " + std::to_string(kMaxTensorBytes) + " bytes");
        }
        t.byteSize = bytes;
        t.fixPoint = ti.fix_point;
        (isOutput ? state->outputs : state->inputs).push_back(std::move(t));
      }
    }
    state_ = std::move(state);
    return Status::Ok();
  }

  std::shared_ptr<DeviceState> device_;
  std::string xmodel_;
  std::shared_ptr<RunnerState> state_;
};

class RunWorker : public PromiseWorker {
 public:
  RunWorker(Napi::Env env, RunBaton baton, std::vector<Napi::ObjectReference> keep)
      : PromiseWorker(env), baton_(std::move(baton)), keep_(std::move(keep)) {}

 protected:
  Status Run() override {
    Status st = RunLocked();
    // Let go here, off the JS thread: after a close() during the run this is the last hold, and
    // destroying the runner (and maybe its device) calls into the vendor runtime.
    baton_.runner.reset();
    return st;
  }

 private:
  Status RunLocked() {
    RunnerState& r = *baton_.runner;
    std::lock_guard<std::mutex> lock(r.runMutex);
    char err[1024] = {0};
    const int rc = r.vart->run(r.runner, baton_.inputs.data(), baton_.inputBytes.data(), static_cast<int>(baton_.inputs.size()),
                               baton_.outputs.data(), baton_.outputBytes.data(), static_cast<int>(baton_.outputs.size()), err,
                               sizeof(err));
    if (rc != 0) return Status::Error("RUN_FAILED", "runner for " + r.xmodel + " failed: " + (err[0] ? err : "code " + std::to_string(rc)));
    return Status::Ok();
  }

  RunBaton baton_;
  // Keeps the typed arrays (and so their memory) alive until the run settles.
  std::vector<Napi::ObjectReference> keep_;
};

/** Reads the `count` elements of array `value`. Element getters run JS: nothing read before may be trusted after. */
Status Elements(const Napi::Value& value, size_t count, const char* role, std::vector<Napi::Value>* out) {
  if (!value.IsArray()) return Status::Error("INVALID", std::string(role) + ": expected an array of typed arrays");
  auto arr = value.As<Napi::Array>();
  if (arr.Length() != count) {
    return Status::Error("INVALID", std::string(role) + ": expected " + std::to_string(count) + " buffers, got " + std::to_string(arr.Length()));
  }
  for (uint32_t i = 0; i < count; i++) out->push_back(arr.Get(i));
  return Status::Ok();
}

/** Checks `values` are typed arrays of the given byte sizes; fills pointers. Runs no JS. */
template <typename Ptr>
Status Buffers(const std::vector<Napi::Value>& values, const std::vector<TensorInfo>& specs, const char* role, std::vector<Ptr>* ptrs,
               std::vector<size_t>* sizes, std::vector<Napi::ObjectReference>* keep) {
  for (size_t i = 0; i < values.size(); i++) {
    const Napi::Value& v = values[i];
    if (!v.IsTypedArray()) return Status::Error("INVALID", std::string(role) + " '" + specs[i].name + "': expected a typed array");
    auto ta = v.As<Napi::TypedArray>();
    if (ta.ByteLength() != specs[i].byteSize) {
      return Status::Error("INVALID", std::string(role) + " '" + specs[i].name + "': expected " + std::to_string(specs[i].byteSize) +
                                          " bytes, got " + std::to_string(ta.ByteLength()));
    }
    Napi::ArrayBuffer buffer = ta.ArrayBuffer();
    if (!buffer.IsArrayBuffer()) {
      // Other threads could change it mid-run (and napi_get_arraybuffer_info refuses it: it threw "Invalid argument").
      return Status::Error("INVALID", std::string(role) + " '" + specs[i].name +
                                          "': backed by a SharedArrayBuffer, which the runtime cannot use; copy it into an ArrayBuffer");
    }
    auto* base = static_cast<uint8_t*>(buffer.Data()) + ta.ByteOffset();
    ptrs->push_back(static_cast<Ptr>(base));
    sizes->push_back(ta.ByteLength());
    keep->push_back(Napi::Persistent(ta.As<Napi::Object>()));
  }
  return Status::Ok();
}

class DeviceHandle : public Napi::ObjectWrap<DeviceHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Device",
                       {InstanceMethod<&DeviceHandle::Info>("info"), InstanceMethod<&DeviceHandle::CreateRunner>("createRunner"),
                        InstanceMethod<&DeviceHandle::Close>("close")});
  }
  explicit DeviceHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceHandle>(info) {}
  std::shared_ptr<DeviceState> state;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto o = Napi::Object::New(info.Env());
    o.Set("open", state != nullptr);
    if (state) {
      o.Set("bdf", state->bdf);
      o.Set("index", state->index);
      o.Set("lockPath", state->lockPath);
      o.Set("xclbin", state->xclbin);
      o.Set("xrtLibrary", state->xrt->path);
    }
    return o;
  }
  Napi::Value CreateRunner(const Napi::CallbackInfo& info) {
    if (!state) return RejectedPromise(info.Env(), Status::Error("INVALID", "device is closed"));
    if (info.Length() < 1 || !info[0].IsString()) return RejectedPromise(info.Env(), Status::Error("INVALID", "xmodel: expected a path string"));
    return (new CreateRunnerWorker(info.Env(), state, info[0].As<Napi::String>()))->Start();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) { return (new ReleaseWorker<DeviceState>(info.Env(), std::move(state)))->Start(); }
};

class RunnerHandle : public Napi::ObjectWrap<RunnerHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Runner", {InstanceMethod<&RunnerHandle::Run>("run"), InstanceMethod<&RunnerHandle::Close>("close")});
  }
  explicit RunnerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RunnerHandle>(info) {}
  std::shared_ptr<RunnerState> state;

 private:
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Reading the arrays can run getters that close this runner (moving `state` out): use this ref only.
    std::shared_ptr<RunnerState> runner = state;
    if (!runner) return RejectedPromise(env, Status::Error("INVALID", "runner is closed"));
    std::vector<Napi::Value> inputs, outputs;
    Status st = Elements(info[0], runner->inputs.size(), "input", &inputs);
    if (st.ok()) st = Elements(info[1], runner->outputs.size(), "output", &outputs);
    if (!st.ok()) return RejectedPromise(env, st);
    if (!state) return RejectedPromise(env, Status::Error("INVALID", "runner is closed"));
    // No JS runs from here on: no getter can close the runner or detach a buffer once its pointer is taken.
    RunBaton baton;
    baton.runner = runner;
    std::vector<Napi::ObjectReference> keep;
    st = Buffers(inputs, runner->inputs, "input", &baton.inputs, &baton.inputBytes, &keep);
    if (st.ok()) st = Buffers(outputs, runner->outputs, "output", &baton.outputs, &baton.outputBytes, &keep);
    if (!st.ok()) return RejectedPromise(env, st);
    return (new RunWorker(env, std::move(baton), std::move(keep)))->Start();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) { return (new ReleaseWorker<RunnerState>(info.Env(), std::move(state)))->Start(); }
};

Napi::Object NewDevice(Napi::Env env, std::shared_ptr<DeviceState> state) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->device.New({});
  DeviceHandle::Unwrap(obj)->state = std::move(state);
  return obj;
}

Napi::Object NewRunner(Napi::Env env, std::shared_ptr<RunnerState> state) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->runner.New({});
  auto inputs = Napi::Array::New(env, state->inputs.size());
  for (size_t i = 0; i < state->inputs.size(); i++) inputs.Set(static_cast<uint32_t>(i), TensorInfoValue(env, state->inputs[i]));
  auto outputs = Napi::Array::New(env, state->outputs.size());
  for (size_t i = 0; i < state->outputs.size(); i++) outputs.Set(static_cast<uint32_t>(i), TensorInfoValue(env, state->outputs[i]));
  obj.Set("inputs", inputs);
  obj.Set("outputs", outputs);
  RunnerHandle::Unwrap(obj)->state = std::move(state);
  return obj;
}

}  // namespace

RunnerState::~RunnerState() {
  if (runner != nullptr && vart != nullptr) {
    vart->destroy(runner);
    GlobalCounters().runnersAlive--;
  }
}

const char* DatatypeName(int dtype) {
  switch (dtype) {
    case KINFER_DT_INT8: return "INT8";
    case KINFER_DT_UINT8: return "UINT8";
    case KINFER_DT_INT16: return "INT16";
    case KINFER_DT_UINT16: return "UINT16";
    case KINFER_DT_INT32: return "INT32";
    case KINFER_DT_UINT32: return "UINT32";
    case KINFER_DT_INT64: return "INT64";
    case KINFER_DT_UINT64: return "UINT64";
    case KINFER_DT_FP16: return "FP16";
    case KINFER_DT_FP32: return "FP32";
    case KINFER_DT_FP64: return "FP64";
    case KINFER_DT_BOOL: return "BOOL";
    default: return "";
  }
}

size_t DatatypeSize(int dtype) {
  switch (dtype) {
    case KINFER_DT_INT8: case KINFER_DT_UINT8: case KINFER_DT_BOOL: return 1;
    case KINFER_DT_INT16: case KINFER_DT_UINT16: case KINFER_DT_FP16: return 2;
    case KINFER_DT_INT32: case KINFER_DT_UINT32: case KINFER_DT_FP32: return 4;
    case KINFER_DT_INT64: case KINFER_DT_UINT64: case KINFER_DT_FP64: return 8;
    default: return 0;
  }
}

Napi::Error MakeError(Napi::Env env, const Status& status) {
  Napi::Error e = Napi::Error::New(env, status.message);
  e.Set("code", Napi::String::New(env, "KINFER_" + status.code));
  return e;
}

void InitHandles(Napi::Env env, AddonData* data) {
  data->device = Napi::Persistent(DeviceHandle::Define(env));
  data->runner = Napi::Persistent(RunnerHandle::Define(env));
}

Napi::Value EnumerateSync(const Napi::CallbackInfo& info) { return EnumerationValue(info.Env(), Enumerate()); }

Napi::Value EnumerateAsync(const Napi::CallbackInfo& info) { return (new EnumerateWorker(info.Env()))->Start(); }

Napi::Value OpenDeviceAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    return RejectedPromise(env, Status::Error("INVALID", "openDevice(selector: string, xclbin: string)"));
  }
  return (new OpenWorker(env, info[0].As<Napi::String>(), info[1].As<Napi::String>()))->Start();
}

Napi::Value CountersValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Counters& c = GlobalCounters();
  auto o = Napi::Object::New(env);
  o.Set("devicesOpen", c.devicesOpen.load());
  o.Set("runnersAlive", c.runnersAlive.load());
  o.Set("queued", c.queued.load());
  o.Set("running", c.running.load());
  auto keys = OpenDeviceKeys();
  auto list = Napi::Array::New(env, keys.size());
  for (size_t i = 0; i < keys.size(); i++) list.Set(static_cast<uint32_t>(i), keys[i]);
  o.Set("openDevices", list);
  return o;
}

}  // namespace kinfer
