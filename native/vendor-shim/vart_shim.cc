/**
 * @module native/vendor-shim/vart_shim
 * The kinfer VART shim: exports the C ABI of src/vendor.h over Vitis AI's C++
 * runtime (xir::Graph::deserialize, vart::Runner::create_runner), so the addon
 * can dlopen it by plain C symbol names.
 *
 * NOT BUILT HERE: it needs the Vitis AI headers and libraries (vart-runner,
 * xir, xrt_coreutil), which this project's machines do not have, and it has
 * never run on hardware. On a Vitis AI host (e.g. the Vitis AI runtime
 * container):
 *
 *   g++ -std=c++17 -O2 -fPIC -shared -o libkinfer_vart.so vart_shim.cc \
 *       -I../src -lvart-runner -lxir -lxrt_coreutil -lglog
 *
 * and put libkinfer_vart.so on the loader path or point KINFER_VART_LIB at it.
 */
#define KINFER_VENDOR_ABI_ONLY
#include "vendor.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>
#include <vart/runner.hpp>
#include <vart/tensor_buffer.hpp>
#include <xir/graph/graph.hpp>
#include <xir/tensor/tensor.hpp>
#include <xrt/xrt_device.h>

namespace {

/** A TensorBuffer over caller memory: VART reads and writes the JS arrays in place. */
class UserTensorBuffer : public vart::TensorBuffer {
 public:
  UserTensorBuffer(void* data, const xir::Tensor* tensor) : vart::TensorBuffer(tensor), data_(data) {}
  std::pair<uint64_t, size_t> data(const std::vector<int> idx = {}) override {
    const size_t elem = static_cast<size_t>(std::ceil(tensor_->get_data_type().bit_width / 8.f));
    const size_t total = static_cast<size_t>(tensor_->get_element_num());
    if (idx.empty()) return {reinterpret_cast<uint64_t>(data_), total * elem};
    const auto dims = tensor_->get_shape();
    size_t offset = 0;
    for (size_t k = 0; k < dims.size() && k < idx.size(); k++) {
      size_t stride = 1;
      for (size_t m = k + 1; m < dims.size(); m++) stride *= static_cast<size_t>(dims[m]);
      offset += static_cast<size_t>(idx[k]) * stride;
    }
    return {reinterpret_cast<uint64_t>(data_) + offset * elem, (total - offset) * elem};
  }

 private:
  void* data_;
};

int DtypeOf(const xir::DataType& t) {
  const int bits = t.bit_width;
  switch (t.type) {
    case xir::DataType::XINT:
    case xir::DataType::INT:
      return bits == 8 ? KINFER_DT_INT8 : bits == 16 ? KINFER_DT_INT16 : bits == 32 ? KINFER_DT_INT32 : bits == 64 ? KINFER_DT_INT64 : 0;
    case xir::DataType::XUINT:
    case xir::DataType::UINT:
      return bits == 8 ? KINFER_DT_UINT8 : bits == 16 ? KINFER_DT_UINT16 : bits == 32 ? KINFER_DT_UINT32 : bits == 64 ? KINFER_DT_UINT64 : 0;
    case xir::DataType::FLOAT:
      return bits == 16 ? KINFER_DT_FP16 : bits == 32 ? KINFER_DT_FP32 : bits == 64 ? KINFER_DT_FP64 : 0;
    default:
      return 0;
  }
}

void SetErr(char* err, size_t len, const std::string& msg) {
  if (err != nullptr && len > 0) std::snprintf(err, len, "%s", msg.c_str());
}

}  // namespace

struct kinfer_vart_runner {
  std::unique_ptr<xir::Graph> graph;
  std::unique_ptr<vart::Runner> runner;
  std::vector<const xir::Tensor*> inputs;
  std::vector<const xir::Tensor*> outputs;
};

extern "C" {

int kinfer_vart_abi_version(void) { return KINFER_VART_ABI_VERSION; }

int kinfer_vart_runner_create(const char* xmodel_path, const char* device_bdf, unsigned int device_index,
                              kinfer_vart_runner** out, char* err, size_t errlen) {
  (void)device_bdf;
  (void)device_index;  // VART's DPU runner picks its device through XRT (XLNX_ENABLE_DEVICES); see docs/native.md.
  try {
    auto r = std::make_unique<kinfer_vart_runner>();
    r->graph = xir::Graph::deserialize(xmodel_path);
    const xir::Subgraph* dpu = nullptr;
    for (auto* child : r->graph->get_root_subgraph()->children_topological_sort()) {
      if (child->has_attr("device") && child->get_attr<std::string>("device") == "DPU") {
        if (dpu != nullptr) {
          SetErr(err, errlen, std::string(xmodel_path) + " has more than one DPU subgraph; kinfer runs single-subgraph models");
          return -1;
        }
        dpu = child;
      }
    }
    if (dpu == nullptr) {
      SetErr(err, errlen, std::string(xmodel_path) + " has no DPU subgraph");
      return -1;
    }
    r->runner = vart::Runner::create_runner(dpu, "run");
    r->inputs = r->runner->get_input_tensors();
    r->outputs = r->runner->get_output_tensors();
    *out = r.release();
    return 0;
  } catch (const std::exception& e) {
    SetErr(err, errlen, e.what());
    return -1;
  }
}

int kinfer_vart_runner_tensor_count(const kinfer_vart_runner* r, int is_output) {
  return static_cast<int>(is_output ? r->outputs.size() : r->inputs.size());
}

int kinfer_vart_runner_tensor_info(const kinfer_vart_runner* r, int is_output, int index, kinfer_vart_tensor_info* out) {
  const auto& list = is_output ? r->outputs : r->inputs;
  if (index < 0 || static_cast<size_t>(index) >= list.size()) return -1;
  const xir::Tensor* t = list[static_cast<size_t>(index)];
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "%s", t->get_name().c_str());
  out->dtype = DtypeOf(t->get_data_type());
  const auto shape = t->get_shape();
  if (shape.size() > KINFER_VART_MAX_DIMS) return -1;
  out->ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); i++) out->shape[i] = shape[i];
  out->fix_point = t->has_attr("fix_point") ? t->get_attr<int>("fix_point") : 0;
  return 0;
}

int kinfer_vart_runner_run(kinfer_vart_runner* r, const void* const* inputs, const size_t* input_bytes, int n_inputs,
                           void* const* outputs, const size_t* output_bytes, int n_outputs, char* err, size_t errlen) {
  (void)input_bytes;
  (void)output_bytes;  // checked by the addon against the sizes reported above
  try {
    if (static_cast<size_t>(n_inputs) != r->inputs.size() || static_cast<size_t>(n_outputs) != r->outputs.size()) {
      SetErr(err, errlen, "buffer count does not match the runner's tensors");
      return -1;
    }
    std::vector<std::unique_ptr<UserTensorBuffer>> owned;
    std::vector<vart::TensorBuffer*> in, out;
    for (int i = 0; i < n_inputs; i++) {
      owned.push_back(std::make_unique<UserTensorBuffer>(const_cast<void*>(inputs[i]), r->inputs[static_cast<size_t>(i)]));
      in.push_back(owned.back().get());
    }
    for (int i = 0; i < n_outputs; i++) {
      owned.push_back(std::make_unique<UserTensorBuffer>(outputs[i], r->outputs[static_cast<size_t>(i)]));
      out.push_back(owned.back().get());
    }
    const auto job = r->runner->execute_async(in, out);
    const int rc = r->runner->wait(static_cast<int>(job.first), -1);
    if (rc != 0) {
      SetErr(err, errlen, "vart::Runner::wait returned " + std::to_string(rc));
      return rc;
    }
    return 0;
  } catch (const std::exception& e) {
    SetErr(err, errlen, e.what());
    return -1;
  }
}

void kinfer_vart_runner_destroy(kinfer_vart_runner* r) { delete r; }

int kinfer_xrt_device_name(unsigned int index, char* buf, size_t len) {
  try {
    xrt::device device(index);
    std::snprintf(buf, len, "%s", device.get_info<xrt::info::device::name>().c_str());
    return 0;
  } catch (const std::exception&) {
    return -1;
  }
}

}  // extern "C"
