// Kernels' argument checks, the same for every device (zerorun/kernels.h), and the factory that
// picks the device's implementation.
#include "zerorun/kernels.h"

#include "absl/strings/str_cat.h"

namespace zerorun {
namespace {

absl::Status Refuse(const char* call, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("Kernels::", call, ": ", why));
}

// `view` lies on `device` and, unless `any_dtype`, holds fp32.
absl::Status CheckView(const char* call, const char* name, const BufferView& view, Device device,
                       bool any_dtype = false) {
  if (view.device != device) {
    return Refuse(call, absl::StrCat(name, " is on ", view.device.ToString(), ", these kernels on ",
                                     device.ToString()));
  }
  if (view.count > 0 && view.data == nullptr) return Refuse(call, absl::StrCat(name, " is null"));
  if (!any_dtype && view.dtype != DType::kFp32) {
    return Refuse(call, absl::StrCat(name, " holds ", DTypeName(view.dtype), ", not fp32"));
  }
  return absl::OkStatus();
}

absl::Status CheckStream(const char* call, const Stream* stream, Device device) {
  if (stream == nullptr || stream->device() == device) return absl::OkStatus();
  return Refuse(call, absl::StrCat("the stream is on ", stream->device().ToString(),
                                   ", these kernels on ", device.ToString()));
}

// Two views of the same count that do not overlap.
absl::Status CheckPair(const char* call, const BufferView& in, const BufferView& out) {
  if (in.count != out.count) {
    return Refuse(call, absl::StrCat("in has ", in.count, " elements, out ", out.count));
  }
  const char* a = static_cast<const char*>(in.data);
  const char* b = static_cast<const char*>(out.data);
  if (in.count > 0 && a < b + out.bytes() && b < a + in.bytes()) {
    return Refuse(call, "in and out overlap");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Kernels::Scale(BufferView x, float factor, Stream* stream) {
  if (absl::Status s = CheckView("Scale", "x", x, device()); !s.ok()) return s;
  if (absl::Status s = CheckStream("Scale", stream, device()); !s.ok()) return s;
  return x.empty() ? absl::OkStatus() : DoScale(x, factor, stream);
}

absl::StatusOr<double> Kernels::SumSquares(BufferView x, float pre, Stream* stream) {
  if (absl::Status s = CheckView("SumSquares", "x", x, device()); !s.ok()) return s;
  if (absl::Status s = CheckStream("SumSquares", stream, device()); !s.ok()) return s;
  if (stream != nullptr) {
    if (absl::Status s = stream->Synchronize(); !s.ok()) return s;
  }
  return x.empty() ? 0.0 : DoSumSquares(x, pre, stream);
}

absl::StatusOr<bool> Kernels::AllFinite(BufferView x, Stream* stream) {
  if (absl::Status s = CheckView("AllFinite", "x", x, device()); !s.ok()) return s;
  if (absl::Status s = CheckStream("AllFinite", stream, device()); !s.ok()) return s;
  if (stream != nullptr) {
    if (absl::Status s = stream->Synchronize(); !s.ok()) return s;
  }
  return x.empty() ? true : DoAllFinite(x, stream);
}

absl::Status Kernels::Convert(BufferView in, BufferView out, Stream* stream) {
  for (auto [name, v] : {std::pair{"in", &in}, std::pair{"out", &out}}) {
    if (absl::Status s = CheckView("Convert", name, *v, device(), true); !s.ok()) return s;
  }
  if (absl::Status s = CheckStream("Convert", stream, device()); !s.ok()) return s;
  if (absl::Status s = CheckPair("Convert", in, out); !s.ok()) return s;
  if (in.dtype != out.dtype && in.dtype != DType::kFp32 && out.dtype != DType::kFp32) {
    return Refuse("Convert", absl::StrCat(DTypeName(in.dtype), " -> ", DTypeName(out.dtype),
                                          " (one side must be fp32)"));
  }
  return in.empty() ? absl::OkStatus() : DoConvert(in, out, stream);
}

absl::Status Kernels::Accumulate(BufferView in, BufferView acc, Stream* stream) {
  if (absl::Status s = CheckView("Accumulate", "in", in, device()); !s.ok()) return s;
  if (absl::Status s = CheckView("Accumulate", "acc", acc, device(), true); !s.ok()) return s;
  if (absl::Status s = CheckStream("Accumulate", stream, device()); !s.ok()) return s;
  if (absl::Status s = CheckPair("Accumulate", in, acc); !s.ok()) return s;
  return in.empty() ? absl::OkStatus() : DoAccumulate(in, acc, stream);
}

absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(Device device) {
  if (device.kind == DeviceKind::kCpu) return CreateCpuKernels();
  return CreateCudaKernels(device.index);
}

}  // namespace zerorun
