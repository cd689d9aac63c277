/**
 * @module native/src/vendor
 * dlopen/dlsym of XRT and the VART shim. The addon links neither, so it builds
 * and loads on machines without Vitis AI; what is missing is reported by name
 * when a device is opened or a runner created.
 */
#include "vendor.h"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace kinfer {
namespace {

std::mutex g_mutex;
std::map<std::string, std::unique_ptr<XrtApi>> g_xrt;
std::map<std::string, std::unique_ptr<VartApi>> g_vart;

const std::vector<std::string> kXrtDefaults = {"libxrt_coreutil.so.2", "libxrt_coreutil.so"};
const std::vector<std::string> kXrtCoreDefaults = {"libxrt_core.so.2", "libxrt_core.so"};
const std::vector<std::string> kVartDefaults = {"libkinfer_vart.so"};

std::vector<std::string> Candidates(const char* envName, const std::vector<std::string>& defaults) {
  const char* env = std::getenv(envName);
  if (env != nullptr && env[0] != '\0') return {env};
  return defaults;
}

std::string Join(const std::vector<std::string>& names, const char* sep) {
  std::string out;
  for (size_t i = 0; i < names.size(); i++) {
    if (i) out += sep;
    out += names[i];
  }
  return out;
}

/** First candidate that dlopens; on failure `err` holds every dlerror. */
void* OpenFirst(const std::vector<std::string>& names, std::string* opened, std::string* err) {
  for (const auto& name : names) {
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) {
      *opened = name;
      return h;
    }
    const char* e = dlerror();
    if (!err->empty()) *err += "; ";
    *err += e != nullptr ? e : name + ": unknown dlopen error";
  }
  return nullptr;
}

template <typename Fn>
void Resolve(void* handle, const char* symbol, Fn* out, std::vector<std::string>* missing) {
  dlerror();
  *out = reinterpret_cast<Fn>(dlsym(handle, symbol));
  if (*out == nullptr && missing != nullptr) missing->push_back(symbol);
}

}  // namespace

std::string XrtLibDescription() { return Join(Candidates("KINFER_XRT_LIB", kXrtDefaults), " or "); }
std::string VartLibDescription() { return Join(Candidates("KINFER_VART_LIB", kVartDefaults), " or "); }

Status LoadXrt(const XrtApi** out) {
  const auto names = Candidates("KINFER_XRT_LIB", kXrtDefaults);
  const std::string key = Join(names, "|");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_xrt.find(key);
  if (it != g_xrt.end()) {
    *out = it->second.get();
    return Status::Ok();
  }
  std::string opened, err;
  void* h = OpenFirst(names, &opened, &err);
  if (h == nullptr) {
    return Status::Error("LIB_MISSING", "XRT runtime not available: " + Join(names, " or ") +
                                            " not found (set KINFER_XRT_LIB to its path): " + err);
  }
  auto api = std::make_unique<XrtApi>();
  api->path = opened;
  std::vector<std::string> missing;
  Resolve(h, "xrtDeviceOpen", &api->open, &missing);
  Resolve(h, "xrtDeviceOpenByBDF", &api->openByBdf, &missing);
  Resolve(h, "xrtDeviceClose", &api->close, &missing);
  Resolve(h, "xrtDeviceLoadXclbinFile", &api->loadXclbinFile, &missing);
  Resolve(h, "xclProbe", &api->probe, nullptr);
  if (api->probe == nullptr && std::getenv("KINFER_XRT_LIB") == nullptr) {
    // Real XRT keeps xclProbe in the shim library libxrt_core, not coreutil.
    std::string coreOpened, coreErr;
    void* core = OpenFirst(kXrtCoreDefaults, &coreOpened, &coreErr);
    if (core != nullptr) Resolve(core, "xclProbe", &api->probe, nullptr);
  }
  if (!missing.empty()) {
    dlclose(h);
    return Status::Error("SYMBOL_MISSING",
                         "XRT runtime " + opened + " lacks symbol(s): " + Join(missing, ", "));
  }
  *out = api.get();
  g_xrt[key] = std::move(api);
  return Status::Ok();
}

Status LoadVart(const VartApi** out) {
  const auto names = Candidates("KINFER_VART_LIB", kVartDefaults);
  const std::string key = Join(names, "|");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_vart.find(key);
  if (it != g_vart.end()) {
    *out = it->second.get();
    return Status::Ok();
  }
  std::string opened, err;
  void* h = OpenFirst(names, &opened, &err);
  if (h == nullptr) {
    return Status::Error("LIB_MISSING",
                         "Vitis AI runtime not available: " + Join(names, " or ") +
                             " not found (the kinfer shim over libvart-runner.so; build "
                             "native/vendor-shim or set KINFER_VART_LIB): " + err);
  }
  auto api = std::make_unique<VartApi>();
  api->path = opened;
  std::vector<std::string> missing;
  kinfer_vart_abi_version_fn version = nullptr;
  Resolve(h, "kinfer_vart_abi_version", &version, &missing);
  Resolve(h, "kinfer_vart_runner_create", &api->create, &missing);
  Resolve(h, "kinfer_vart_runner_tensor_count", &api->tensorCount, &missing);
  Resolve(h, "kinfer_vart_runner_tensor_info", &api->tensorInfo, &missing);
  Resolve(h, "kinfer_vart_runner_run", &api->run, &missing);
  Resolve(h, "kinfer_vart_runner_destroy", &api->destroy, &missing);
  Resolve(h, "kinfer_xrt_device_name", &api->deviceName, nullptr);
  if (!missing.empty()) {
    dlclose(h);
    return Status::Error("SYMBOL_MISSING",
                         "Vitis AI shim " + opened + " lacks symbol(s): " + Join(missing, ", "));
  }
  const int v = version();
  if (v != KINFER_VART_ABI_VERSION) {
    dlclose(h);
    return Status::Error("SYMBOL_MISSING", "Vitis AI shim " + opened + " has ABI version " +
                                               std::to_string(v) + ", the addon needs " +
                                               std::to_string(KINFER_VART_ABI_VERSION));
  }
  *out = api.get();
  g_vart[key] = std::move(api);
  return Status::Ok();
}

}  // namespace kinfer
