// Device parsing and printing.
#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace thunder {

Device Device::parse(std::string_view s) {
  Device d;
  std::string_view type = s.substr(0, s.find(':'));
  if (type == "cpu") {
    d.type = DeviceType::kCPU;
  } else if (type == "cuda") {
    d.type = DeviceType::kCUDA;
    d.index = 0;
  } else if (type == "meta") {
    d.type = DeviceType::kMeta;
  } else {
    throw ValueError("unknown device '" + std::string(s) + "'");
  }
  if (auto colon = s.find(':'); colon != std::string_view::npos) {
    int idx = 0;
    auto rest = s.substr(colon + 1);
    auto r = std::from_chars(rest.data(), rest.data() + rest.size(), idx);
    if (r.ec != std::errc() || r.ptr != rest.data() + rest.size()) {
      throw ValueError("bad device index in '" + std::string(s) + "'");
    }
    d.index = static_cast<int16_t>(idx);
  }
  return d;
}

std::string Device::str() const {
  switch (type) {
    case DeviceType::kCPU: return "cpu";
    case DeviceType::kMeta: return "meta";
    case DeviceType::kCUDA: return "cuda:" + std::to_string(index < 0 ? 0 : index);
  }
  return "?";
}

}  // namespace thunder
