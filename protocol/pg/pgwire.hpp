#pragma once
// The whole sans-I/O PostgreSQL v3 codec: framing, both directions of messages, authentication.

#include "protocol/pg/auth.hpp"
#include "protocol/pg/backend.hpp"
#include "protocol/pg/error.hpp"
#include "protocol/pg/framing.hpp"
#include "protocol/pg/frontend.hpp"
#include "protocol/pg/message.hpp"
