/**
 * @module native/src/baton
 * The structs that cross from the JS thread to a worker thread. Everything in
 * them is plain C++ (no napi values): the JS objects that own the buffers are
 * kept alive by references held in the worker, on the JS thread.
 */
#ifndef KINFER_BATON_H_
#define KINFER_BATON_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device.h"
#include "vendor.h"

namespace kinfer {

struct TensorInfo {
  std::string name;
  std::string datatype;  // v2 name: INT8, FP32, ...
  std::vector<int64_t> shape;
  size_t byteSize = 0;
  int fixPoint = 0;
};

/** One VART runner on one device. Destroyed (runner first, then its hold on
 *  the device) when the JS handle and every in-flight run have let go. */
class RunnerState {
 public:
  ~RunnerState();
  const VartApi* vart = nullptr;
  kinfer_vart_runner* runner = nullptr;
  std::shared_ptr<DeviceState> device;
  std::string xmodel;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  /** VART runners are not promised to be re-entrant: one run at a time. */
  std::mutex runMutex;
};

/** Pointers into JS-owned typed arrays: the runner reads and writes them in place. */
struct RunBaton {
  std::shared_ptr<RunnerState> runner;
  std::vector<const void*> inputs;
  std::vector<size_t> inputBytes;
  std::vector<void*> outputs;
  std::vector<size_t> outputBytes;
};

/** v2 datatype name of a kinfer_dtype, "" when unknown. */
const char* DatatypeName(int dtype);
/** Bytes per element of a kinfer_dtype, 0 when unknown. */
size_t DatatypeSize(int dtype);

}  // namespace kinfer

#endif  // KINFER_BATON_H_
