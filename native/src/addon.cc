/**
 * @module native/src/addon
 * The export table of kinfer_native.node, and nothing else.
 */
#include <napi.h>

#include "run-worker.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new kinfer::AddonData();
  kinfer::InitHandles(env, data);
  env.SetInstanceData<kinfer::AddonData>(data);
  exports.Set("enumerate", Napi::Function::New(env, kinfer::EnumerateSync, "enumerate"));
  exports.Set("enumerateAsync", Napi::Function::New(env, kinfer::EnumerateAsync, "enumerateAsync"));
  exports.Set("openDevice", Napi::Function::New(env, kinfer::OpenDeviceAsync, "openDevice"));
  exports.Set("counters", Napi::Function::New(env, kinfer::CountersValue, "counters"));
  exports.Set("abiVersion", Napi::Number::New(env, KINFER_VART_ABI_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(kinfer_native, Init)
