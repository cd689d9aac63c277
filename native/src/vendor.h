/**
 * @module native/src/vendor
 * The vendor C ABI the addon calls through dlopen/dlsym, and the loader that
 * finds it. Two libraries:
 *
 *  - XRT (`libxrt_coreutil.so`, override KINFER_XRT_LIB): its own C API, the
 *    subset below with XRT's real signatures (xrt_device.h, xrt.h).
 *  - The kinfer VART shim (`libkinfer_vart.so`, override KINFER_VART_LIB): a
 *    small C ABI, `kinfer_vart_*`, because VART itself is C++
 *    (vart::Runner::create_runner, xir::Graph::deserialize). A thin C++ shim
 *    over real VART exports it (vendor-shim/vart_shim.cc); the fake vendor
 *    library exports the same ABI for tests.
 *
 * Everything above `KINFER_VENDOR_ABI_ONLY` is plain C so the fake (C) and the
 * shim (C++) include the same declarations the loader resolves.
 */
#ifndef KINFER_VENDOR_H_
#define KINFER_VENDOR_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- XRT C API subset (signatures as in XRT's xrt_device.h / xrt.h) ---- */
typedef void* xrtDeviceHandle;
typedef unsigned int (*kinfer_xclProbe_fn)(void);
typedef xrtDeviceHandle (*kinfer_xrtDeviceOpen_fn)(unsigned int index);
typedef xrtDeviceHandle (*kinfer_xrtDeviceOpenByBDF_fn)(const char* bdf);
typedef int (*kinfer_xrtDeviceClose_fn)(xrtDeviceHandle dhdl);
typedef int (*kinfer_xrtDeviceLoadXclbinFile_fn)(xrtDeviceHandle dhdl, const char* xclbin_fnm);

/* ---- kinfer VART shim ABI, version 1 ---- */
#define KINFER_VART_ABI_VERSION 1
#define KINFER_VART_MAX_DIMS 8
#define KINFER_VART_NAME_LEN 128

/** Element types; the addon maps them to v2 datatype names. */
enum kinfer_dtype {
  KINFER_DT_INT8 = 1,
  KINFER_DT_UINT8 = 2,
  KINFER_DT_INT16 = 3,
  KINFER_DT_UINT16 = 4,
  KINFER_DT_INT32 = 5,
  KINFER_DT_UINT32 = 6,
  KINFER_DT_INT64 = 7,
  KINFER_DT_UINT64 = 8,
  KINFER_DT_FP16 = 9,
  KINFER_DT_FP32 = 10,
  KINFER_DT_FP64 = 11,
  KINFER_DT_BOOL = 12
};

/** One runner tensor. shape[0] is the runner's batch size. */
typedef struct kinfer_vart_tensor_info {
  char name[KINFER_VART_NAME_LEN];
  int32_t dtype;
  int32_t ndim;
  int64_t shape[KINFER_VART_MAX_DIMS];
  /** Fixed-point position for quantised DPU tensors (xir "fix_point"), 0 if none. */
  int32_t fix_point;
} kinfer_vart_tensor_info;

typedef struct kinfer_vart_runner kinfer_vart_runner;

/*
 * Contract for every function returning int: 0 on success; otherwise non-zero
 * and, when `err` is not NULL, a NUL-terminated message in err[0..errlen).
 * A runner may be run from any thread, one run at a time (the addon
 * serialises runs per runner); create and destroy are called off the JS thread.
 */
typedef int (*kinfer_vart_abi_version_fn)(void);
/** Deserialises the .xmodel, picks its DPU subgraph and creates a runner on the
 *  given device (BDF may be "" when only the XRT index is known). */
typedef int (*kinfer_vart_runner_create_fn)(const char* xmodel_path, const char* device_bdf,
                                            unsigned int device_index, kinfer_vart_runner** out,
                                            char* err, size_t errlen);
typedef int (*kinfer_vart_runner_tensor_count_fn)(const kinfer_vart_runner* runner, int is_output);
typedef int (*kinfer_vart_runner_tensor_info_fn)(const kinfer_vart_runner* runner, int is_output,
                                                 int index, kinfer_vart_tensor_info* out);
/** Runs one full batch. Buffers are caller-owned, contiguous, in tensor order,
 *  each exactly the tensor's byte size; the runner reads inputs and writes
 *  outputs in place (no copies on the addon side). */
typedef int (*kinfer_vart_runner_run_fn)(kinfer_vart_runner* runner, const void* const* inputs,
                                         const size_t* input_bytes, int n_inputs,
                                         void* const* outputs, const size_t* output_bytes,
                                         int n_outputs, char* err, size_t errlen);
typedef void (*kinfer_vart_runner_destroy_fn)(kinfer_vart_runner* runner);
/** Optional: XRT's name (shell/VBNV) of device `index`, for enumeration. */
typedef int (*kinfer_xrt_device_name_fn)(unsigned int index, char* buf, size_t len);

#ifdef __cplusplus
}
#endif

#if defined(__cplusplus) && !defined(KINFER_VENDOR_ABI_ONLY)
#include <string>

namespace kinfer {

/** Outcome of a native step: empty code = ok; otherwise a KINFER_* code
 *  (LIB_MISSING, SYMBOL_MISSING, NO_DEVICE, BUSY, LOCK_FAILED, OPEN_FAILED,
 *  XCLBIN_FAILED, RUNNER_FAILED, RUN_FAILED, INVALID) and a specific message. */
struct Status {
  std::string code;
  std::string message;
  bool ok() const { return code.empty(); }
  static Status Ok() { return {}; }
  static Status Error(std::string c, std::string m) { return {std::move(c), std::move(m)}; }
};

struct XrtApi {
  std::string path;
  kinfer_xclProbe_fn probe = nullptr; /* optional */
  kinfer_xrtDeviceOpen_fn open = nullptr;
  kinfer_xrtDeviceOpenByBDF_fn openByBdf = nullptr;
  kinfer_xrtDeviceClose_fn close = nullptr;
  kinfer_xrtDeviceLoadXclbinFile_fn loadXclbinFile = nullptr;
};

struct VartApi {
  std::string path;
  kinfer_vart_runner_create_fn create = nullptr;
  kinfer_vart_runner_tensor_count_fn tensorCount = nullptr;
  kinfer_vart_runner_tensor_info_fn tensorInfo = nullptr;
  kinfer_vart_runner_run_fn run = nullptr;
  kinfer_vart_runner_destroy_fn destroy = nullptr;
  kinfer_xrt_device_name_fn deviceName = nullptr; /* optional */
};

/** Loads XRT (path from KINFER_XRT_LIB, else the default names). Handles are
 *  kept for the process (never dlclose'd: vendor libraries keep C++ statics).
 *  Every missing required symbol is named in the message. Thread-safe. */
Status LoadXrt(const XrtApi** out);
/** Same for the VART shim (KINFER_VART_LIB); also checks the ABI version. */
Status LoadVart(const VartApi** out);
/** Library names that would be tried now, for messages. */
std::string XrtLibDescription();
std::string VartLibDescription();

}  // namespace kinfer
#endif

#endif  // KINFER_VENDOR_H_
