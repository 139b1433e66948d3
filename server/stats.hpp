#pragma once
// The engine keeps per-bind statistics; the server's admin and metrics views read them.
#include "binds/engine/stats.hpp"

namespace binds::server {
using engine::BindStats;
using engine::Histogram;
using engine::kErrorCodes;
using engine::StatsRegistry;
}  // namespace binds::server
