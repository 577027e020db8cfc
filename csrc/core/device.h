// Devices (cpu, cuda:N, meta) as a small value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace thunder {

enum class DeviceType : uint8_t { kCPU, kCUDA, kMeta };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int16_t index = -1;  // -1: no index ("cpu"); cuda tensors always carry one

  static Device cpu() { return {}; }
  // Parses "cpu", "cuda", "cuda:1", "meta". Throws ValueError otherwise.
  static Device parse(std::string_view s);
  std::string str() const;
  bool operator==(const Device&) const = default;
};

}  // namespace thunder
