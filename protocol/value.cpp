#include "protocol/value.hpp"

#include <array>

namespace binds::protocol {

namespace {
constexpr std::array<std::string_view, 14> kTypeNames = {
    "null", "bool", "int64", "float64", "text", "bytes",
    "decimal", "date", "time", "timestamp", "json", "uuid", "interval", "array"};
}

std::string_view type_name(Type t) {
  auto i = static_cast<std::size_t>(t);
  return i < kTypeNames.size() ? kTypeNames[i] : "text";
}

bool type_from_name(std::string_view name, Type& out) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
    if (kTypeNames[i] == name) {
      out = static_cast<Type>(i);
      return true;
    }
  }
  return false;
}

Type value_type(const Value& v) {
  switch (v.index()) {
    case 0: return Type::null;
    case 1: return Type::boolean;
    case 2: return Type::int64;
    case 3: return Type::float64;
    case 4: return Type::text;
    case 5: return Type::bytes;
    case 6: return std::get<Tagged>(v).type;
    default: return Type::array;
  }
}

bool Array::operator==(const Array& other) const { return items == other.items; }

}  // namespace binds::protocol
