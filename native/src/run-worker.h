/**
 * @module native/src/run-worker
 * The async side of the addon, after sharp: arguments are checked and copied
 * into a baton on the JS thread, Execute() runs on a libuv worker thread and
 * never touches JS, OnOK/OnError settle a promise on the JS thread.
 * Also the two handle classes JS receives: Device and Runner.
 */
#ifndef KINFER_RUN_WORKER_H_
#define KINFER_RUN_WORKER_H_

#include <napi.h>

#include "baton.h"

namespace kinfer {

/** An Error with `code` = "KINFER_<status.code>". */
Napi::Error MakeError(Napi::Env env, const Status& status);

/** The class constructors, kept per addon instance (worker_threads safe). */
struct AddonData {
  Napi::FunctionReference device;
  Napi::FunctionReference runner;
};

/** Registers the Device and Runner classes in `data`. */
void InitHandles(Napi::Env env, AddonData* data);

/** enumerate(): the device list, synchronously (sysfs reads and xclProbe). */
Napi::Value EnumerateSync(const Napi::CallbackInfo& info);
/** enumerateAsync(): the same off the JS thread. */
Napi::Value EnumerateAsync(const Napi::CallbackInfo& info);
/** openDevice(selector: string, xclbin: string): Promise<Device>. */
Napi::Value OpenDeviceAsync(const Napi::CallbackInfo& info);
/** counters(): live native objects and queued/running work. */
Napi::Value CountersValue(const Napi::CallbackInfo& info);

}  // namespace kinfer

#endif  // KINFER_RUN_WORKER_H_
