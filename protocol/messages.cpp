#include "protocol/messages.hpp"

#include <array>
#include <cstring>
#include <limits>
#include <msgpack.hpp>

#include "protocol/utf8.hpp"

namespace binds::protocol {

namespace {

// msgpack's packer writes to anything with write(const char*, size_t).
struct StringSink {
  std::string& s;
  void write(const char* p, std::size_t n) { s.append(p, n); }
};
using Packer = msgpack::packer<StringSink>;

// Starts a frame: reserves the header, to be filled by finish_frame once the body length is known.
// Room for a typical small frame is reserved up front: grown from the string's inline 15 bytes,
// a 60-byte COMPLETE went through three allocations and copies (seen in the per-request profile).
std::string start_frame(std::size_t capacity = 128) {
  std::string f;
  f.reserve(capacity);
  f.assign(kHeaderSize, '\0');
  return f;
}

std::string finish_frame(std::string frame, FrameType type, std::uint32_t id) {
  FrameHeader h;
  h.length = static_cast<std::uint32_t>(frame.size() - kHeaderSize);
  h.type = static_cast<std::uint8_t>(type);
  h.request_id = id;
  encode_header(h, reinterpret_cast<unsigned char*>(frame.data()));
  return frame;
}

void pack_str(Packer& pk, std::string_view s) {
  if (!is_valid_utf8(s)) [[unlikely]] {
    const std::string fixed = repair_utf8(s);
    pk.pack_str(static_cast<std::uint32_t>(fixed.size()));
    pk.pack_str_body(fixed.data(), static_cast<std::uint32_t>(fixed.size()));
    return;
  }
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// msgpack-c's pack_double writes an integral double as an integer (1.0 becomes fixint 1, -0.0
// becomes 0, 1e19 a uint64): a float64 column must carry float 64 values (PROTOCOL.md §5).
void pack_float64(Packer& pk, double d) {
  char buf[9];
  write_float64(d, buf);
  pk.pack_bin_body(buf, sizeof buf);  // appends raw bytes: the header is write_float64's
}

void pack_value(Packer& pk, const Value& v) {
  struct Visitor {
    Packer& pk;
    void operator()(const Null&) { pk.pack_nil(); }
    void operator()(bool b) { b ? pk.pack_true() : pk.pack_false(); }
    void operator()(std::int64_t i) { pk.pack_int64(i); }
    void operator()(double d) { pack_float64(pk, d); }
    void operator()(const std::string& s) { pack_str(pk, s); }
    void operator()(const Bytes& b) {
      pk.pack_bin(static_cast<std::uint32_t>(b.data.size()));
      pk.pack_bin_body(b.data.data(), static_cast<std::uint32_t>(b.data.size()));
    }
    void operator()(const Tagged& t) {
      // Ext codes 1..7 follow the Type order from decimal on (PROTOCOL.md §5).
      auto code = static_cast<std::int8_t>(static_cast<int>(t.type) - static_cast<int>(Type::decimal) + 1);
      pk.pack_ext(t.text.size(), code);
      pk.pack_ext_body(t.text.data(), static_cast<std::uint32_t>(t.text.size()));
    }
    void operator()(const Array& a) {
      pk.pack_array(static_cast<std::uint32_t>(a.items.size()));
      for (const auto& item : a.items) std::visit(*this, item);
    }
  };
  std::visit(Visitor{pk}, v);
}

// Unpacks a body into an object; limits keep a hostile length field from making msgpack allocate
// more than the body could possibly hold (every element costs at least one byte).
bool unpack_map(const std::string& body, msgpack::object_handle& oh, std::string& error) {
  if (body.empty()) {
    // An empty body reads as an empty map (PROTOCOL.md §2).
    static const char kEmptyMap = '\x80';
    oh = msgpack::unpack(&kEmptyMap, 1);
    return true;
  }
  try {
    std::size_t n = body.size();
    std::size_t off = 0;
    msgpack::unpack_limit limit(n, n, n, n, n, 32);
    oh = msgpack::unpack(body.data(), body.size(), off, nullptr, nullptr, limit);
    if (off != body.size()) {
      error = "trailing bytes after the MessagePack body";
      return false;
    }
  } catch (const std::exception& e) {
    error = std::string("invalid MessagePack: ") + e.what();
    return false;
  }
  if (oh.get().type != msgpack::type::MAP) {
    error = "frame body is not a MessagePack map";
    return false;
  }
  return true;
}

using Obj = msgpack::object;

const Obj* find(const Obj& map, std::string_view key) {
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

bool get_str(const Obj& map, std::string_view key, std::string& out, bool required,
             std::string& error) {
  const Obj* o = find(map, key);
  if (!o || o->type == msgpack::type::NIL) {
    if (required) error = "missing \"" + std::string(key) + "\"";
    return !required;
  }
  if (o->type != msgpack::type::STR) {
    error = "\"" + std::string(key) + "\" must be a string";
    return false;
  }
  out.assign(o->via.str.ptr, o->via.str.size);
  if (!is_valid_utf8(out)) {
    error = "\"" + std::string(key) + "\" is not valid UTF-8";
    return false;
  }
  return true;
}

bool as_int(const Obj& o, std::int64_t& out) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    out = static_cast<std::int64_t>(o.via.u64);
    return true;
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    out = o.via.i64;
    return true;
  }
  return false;
}

bool get_int(const Obj& map, std::string_view key, std::int64_t& out, bool required,
             std::string& error) {
  const Obj* o = find(map, key);
  if (!o || o->type == msgpack::type::NIL) {
    if (required) error = "missing \"" + std::string(key) + "\"";
    return !required;
  }
  if (!as_int(*o, out)) {
    error = "\"" + std::string(key) + "\" must be an integer";
    return false;
  }
  return true;
}

bool get_bool(const Obj& map, std::string_view key, bool& out) {
  const Obj* o = find(map, key);
  if (o && o->type == msgpack::type::BOOLEAN) out = o->via.boolean;
  return true;
}

bool decode_value(const Obj& o, Value& out, std::string& error, int depth = 0) {
  switch (o.type) {
    case msgpack::type::NIL: out = Null{}; return true;
    case msgpack::type::BOOLEAN: out = o.via.boolean; return true;
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: {
      std::int64_t i;
      if (!as_int(o, i)) {
        error = "integer does not fit a signed 64-bit value";
        return false;
      }
      out = i;
      return true;
    }
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: out = o.via.f64; return true;
    case msgpack::type::STR:
      // A str is UTF-8 by the msgpack spec and by ours; bytes that are not go as bin.
      if (!is_valid_utf8(std::string_view(o.via.str.ptr, o.via.str.size))) {
        error = "text is not valid UTF-8 (send bytes as bin)";
        return false;
      }
      out = std::string(o.via.str.ptr, o.via.str.size);
      return true;
    case msgpack::type::BIN: out = Bytes{std::string(o.via.bin.ptr, o.via.bin.size)}; return true;
    case msgpack::type::EXT: {
      int code = o.via.ext.type();
      if (code < 1 || code > 7) {
        error = "unsupported ext type " + std::to_string(code);
        return false;
      }
      out = Tagged{static_cast<Type>(static_cast<int>(Type::decimal) + code - 1),
                   std::string(o.via.ext.data(), o.via.ext.size)};
      return true;
    }
    case msgpack::type::ARRAY: {
      if (depth >= kMaxArrayDepth) {
        error = "arrays nest deeper than " + std::to_string(kMaxArrayDepth) + " dimensions";
        return false;
      }
      Array a;
      a.items.resize(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        if (!decode_value(o.via.array.ptr[i], a.items[i], error, depth + 1)) {
          error = "array element " + std::to_string(i + 1) + ": " + error;
          return false;
        }
      }
      out = std::move(a);
      return true;
    }
    case msgpack::type::MAP: error = "maps are not a supported value type"; return false;
    default: error = "unsupported value type"; return false;
  }
}

}  // namespace

std::string encode_hello(const Hello& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(3);
  pack_str(pk, "magic");
  pack_str(pk, "binds");
  pack_str(pk, "versions");
  pk.pack_array(static_cast<std::uint32_t>(m.versions.size()));
  for (auto v : m.versions) pk.pack_int64(v);
  pack_str(pk, "client");
  pack_str(pk, m.client);
  return finish_frame(std::move(f), FrameType::hello, 0);
}

std::string encode_hello_ok(const HelloOk& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(m.features.empty() ? 5 : 6);
  pack_str(pk, "version");
  pk.pack_int(m.version);
  pack_str(pk, "server");
  pack_str(pk, m.server);
  pack_str(pk, "max_frame");
  pk.pack_uint32(m.max_frame);
  pack_str(pk, "batch_rows");
  pk.pack_uint32(m.batch_rows);
  pack_str(pk, "default_bind");
  pack_str(pk, m.default_bind);
  if (!m.features.empty()) {
    pack_str(pk, "features");
    pk.pack_array(static_cast<std::uint32_t>(m.features.size()));
    for (const auto& f : m.features) pack_str(pk, f);
  }
  return finish_frame(std::move(f), FrameType::hello_ok, 0);
}

std::string encode_query(std::uint32_t id, const QueryRequest& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map((m.bind ? 3 : 2) + (m.timeout_ms ? 1 : 0) + (m.in_tx ? 1 : 0));
  if (m.in_tx) {
    pack_str(pk, "in_tx");
    pk.pack_true();
  }
  if (m.bind) {
    pack_str(pk, "bind");
    pack_str(pk, *m.bind);
  }
  if (m.timeout_ms) {
    pack_str(pk, "timeout_ms");
    pk.pack_uint32(m.timeout_ms);
  }
  pack_str(pk, "sql");
  pack_str(pk, m.sql);
  pack_str(pk, "params");
  pk.pack_array(static_cast<std::uint32_t>(m.params.size()));
  for (const auto& v : m.params) pack_value(pk, v);
  return finish_frame(std::move(f), FrameType::query, id);
}

namespace {
constexpr std::array<std::string_view, 5> kIsolationNames = {
    "", "read_uncommitted", "read_committed", "repeatable_read", "serializable"};
}

std::string encode_begin(std::uint32_t id, const BeginRequest& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  bool iso = m.isolation != Isolation::backend_default;
  pk.pack_map((m.bind ? 1 : 0) + (iso ? 1 : 0) + 1);
  if (m.bind) {
    pack_str(pk, "bind");
    pack_str(pk, *m.bind);
  }
  if (iso) {
    pack_str(pk, "isolation");
    pack_str(pk, kIsolationNames[static_cast<std::size_t>(m.isolation)]);
  }
  pack_str(pk, "read_only");
  m.read_only ? pk.pack_true() : pk.pack_false();
  return finish_frame(std::move(f), FrameType::begin, id);
}

std::string encode_end(FrameType type, std::uint32_t id, const std::optional<std::string>& bind) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(bind ? 1 : 0);
  if (bind) {
    pack_str(pk, "bind");
    pack_str(pk, *bind);
  }
  return finish_frame(std::move(f), type, id);
}

std::string encode_cancel(std::uint32_t id, std::uint32_t target) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(1);
  pack_str(pk, "target");
  pk.pack_uint32(target);
  return finish_frame(std::move(f), FrameType::cancel, id);
}

std::string encode_admin(std::uint32_t id, const AdminRequest& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(1 + (m.bind ? 1 : 0) + (m.args.empty() ? 0 : 1));
  pack_str(pk, "command");
  pack_str(pk, m.command);
  if (m.bind) {
    pack_str(pk, "bind");
    pack_str(pk, *m.bind);
  }
  if (!m.args.empty()) {
    pack_str(pk, "args");
    pk.pack_array(static_cast<std::uint32_t>(m.args.size()));
    for (const auto& a : m.args) pack_str(pk, a);
  }
  return finish_frame(std::move(f), FrameType::admin, id);
}

std::string encode_table(std::uint32_t id, const Table& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(3);
  pack_str(pk, "columns");
  pk.pack_array(static_cast<std::uint32_t>(m.columns.size()));
  for (const auto& c : m.columns) pack_str(pk, c);
  pack_str(pk, "rows");
  pk.pack_array(static_cast<std::uint32_t>(m.rows.size()));
  for (const auto& r : m.rows) {
    pk.pack_array(static_cast<std::uint32_t>(r.size()));
    for (const auto& v : r) pack_value(pk, v);
  }
  pack_str(pk, "message");
  pack_str(pk, m.message);
  return finish_frame(std::move(f), FrameType::table, id);
}

std::string encode_empty(FrameType type, std::uint32_t id) {
  std::string f = start_frame();
  f.push_back('\x80');  // fixmap of size 0
  return finish_frame(std::move(f), type, id);
}

std::string encode_columns(std::uint32_t id, std::span<const Column> columns) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(1);
  pack_str(pk, "columns");
  pk.pack_array(static_cast<std::uint32_t>(columns.size()));
  for (const auto& c : columns) {
    pk.pack_map(3);
    pack_str(pk, "name");
    pack_str(pk, c.name);
    pack_str(pk, "type");
    pack_str(pk, type_name(c.type));
    pack_str(pk, "db_type");
    pack_str(pk, c.db_type);
  }
  return finish_frame(std::move(f), FrameType::columns, id);
}

std::string encode_complete(std::uint32_t id, const Complete& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(4);
  pack_str(pk, "affected");
  pk.pack_int64(m.affected);
  pack_str(pk, "row_count");
  pk.pack_int64(m.row_count);
  pack_str(pk, "last_insert_id");
  if (m.last_insert_id) pk.pack_int64(*m.last_insert_id); else pk.pack_nil();
  pack_str(pk, "in_transaction");
  m.in_transaction ? pk.pack_true() : pk.pack_false();
  return finish_frame(std::move(f), FrameType::complete, id);
}

std::string encode_error(std::uint32_t id, const ErrorInfo& m) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(m.may_have_executed ? 6 : 5);
  if (m.may_have_executed) {
    pack_str(pk, "may_have_executed");
    *m.may_have_executed ? pk.pack_true() : pk.pack_false();
  }
  pack_str(pk, "code");
  pack_str(pk, error_code_name(m.code));
  pack_str(pk, "message");
  pack_str(pk, m.message);
  pack_str(pk, "bind");
  if (m.bind) pack_str(pk, *m.bind); else pk.pack_nil();
  pack_str(pk, "sqlstate");
  if (!m.sqlstate.empty()) pack_str(pk, m.sqlstate); else pk.pack_nil();
  pack_str(pk, "errno");
  if (m.number) pk.pack_int64(*m.number); else pk.pack_nil();
  return finish_frame(std::move(f), FrameType::error, id);
}

std::string encode_binds(std::uint32_t id, const std::vector<BindInfo>& binds) {
  std::string f = start_frame();
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(1);
  pack_str(pk, "binds");
  pk.pack_array(static_cast<std::uint32_t>(binds.size()));
  for (const auto& b : binds) {
    pk.pack_map(4);
    pack_str(pk, "key");
    pack_str(pk, b.key);
    pack_str(pk, "backend");
    pack_str(pk, b.backend);
    pack_str(pk, "database");
    pack_str(pk, b.database);
    pack_str(pk, "default");
    b.is_default ? pk.pack_true() : pk.pack_false();
  }
  return finish_frame(std::move(f), FrameType::binds, id);
}

void RowBatchWriter::add(const Row& row) {
  StringSink sink{buf_};
  Packer pk(sink);
  pk.pack_array(static_cast<std::uint32_t>(row.size()));
  for (const auto& v : row) pack_value(pk, v);
  ++rows_;
}

void RowBatchWriter::add(std::span<const ValueView> row) {
  StringSink sink{buf_};
  Packer pk(sink);
  pk.pack_array(static_cast<std::uint32_t>(row.size()));
  for (const auto& v : row) {
    switch (v.type) {
      case Type::null: pk.pack_nil(); break;
      case Type::boolean: v.b ? pk.pack_true() : pk.pack_false(); break;
      case Type::int64: pk.pack_int64(v.i); break;
      case Type::float64: pack_float64(pk, v.f); break;
      case Type::text: pack_str(pk, v.s); break;
      case Type::bytes:
        pk.pack_bin(static_cast<std::uint32_t>(v.s.size()));
        pk.pack_bin_body(v.s.data(), static_cast<std::uint32_t>(v.s.size()));
        break;
      case Type::array:
        // Encoded by the backend already (and its strings checked there): appended as is.
        pk.pack_bin_body(v.s.data(), static_cast<std::uint32_t>(v.s.size()));
        break;
      default: {
        auto code = static_cast<std::int8_t>(static_cast<int>(v.type) - static_cast<int>(Type::decimal) + 1);
        pk.pack_ext(v.s.size(), code);
        pk.pack_ext_body(v.s.data(), static_cast<std::uint32_t>(v.s.size()));
      }
    }
  }
  ++rows_;
}

std::string RowBatchWriter::finish(std::uint32_t id) {
  std::string f = start_frame(kHeaderSize + 16 + buf_.size());
  StringSink sink{f};
  Packer pk(sink);
  pk.pack_map(1);
  pack_str(pk, "rows");
  pk.pack_array(static_cast<std::uint32_t>(rows_));
  f.append(buf_);
  buf_.clear();
  rows_ = 0;
  return finish_frame(std::move(f), FrameType::rows, id);
}

std::string RowBatchWriter::finish_all_but_last(std::uint32_t id, std::size_t last_row_start) {
  std::string last = buf_.substr(last_row_start);
  buf_.resize(last_row_start);
  --rows_;
  std::string frame = finish(id);
  buf_ = std::move(last);
  rows_ = 1;
  return frame;
}

void write_float64(double d, char out[9]) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  out[0] = static_cast<char>(0xcb);
  for (int k = 0; k < 8; ++k) out[1 + k] = static_cast<char>(bits >> (56 - 8 * k));
}

bool decode_packed_value(std::string_view packed, Value& out, std::string& error) {
  try {
    msgpack::object_handle oh = msgpack::unpack(packed.data(), packed.size());
    return decode_value(oh.get(), out, error);
  } catch (const std::exception& e) {
    error = std::string("not MessagePack: ") + e.what();
    return false;
  }
}

std::string encode_error_within(std::uint32_t id, ErrorInfo info, std::size_t max_frame) {
  std::string frame = encode_error(id, info);
  if (frame.size() - kHeaderSize <= max_frame) return frame;
  constexpr std::string_view kCut = " [message truncated: too long for max_frame]";
  // An unknown bind's name is echoed from the request, which may itself be near max_frame.
  const auto cut_at_char = [](std::string& text, std::size_t keep) {
    keep = std::min(keep, text.size());
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
    text.resize(keep);
  };
  if (info.bind && info.bind->size() > 1024) cut_at_char(*info.bind, 1024);
  frame = encode_error(id, info);
  if (frame.size() - kHeaderSize <= max_frame) return frame;
  const std::size_t overhead = frame.size() - kHeaderSize - info.message.size() + kCut.size() + 16;
  // Cut at the start of a UTF-8 sequence so no partial character is left.
  cut_at_char(info.message, max_frame > overhead ? max_frame - overhead : 0);
  info.message.append(kCut);
  return encode_error(id, info);
}

bool decode_hello(const std::string& body, Hello& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  std::string magic;
  if (!get_str(m, "magic", magic, true, error)) return false;
  if (magic != "binds") {
    error = "bad magic (not a binds client?)";
    return false;
  }
  const Obj* v = find(m, "versions");
  if (!v || v->type != msgpack::type::ARRAY) {
    error = "\"versions\" must be an array of integers";
    return false;
  }
  out.versions.clear();
  for (std::uint32_t i = 0; i < v->via.array.size; ++i) {
    std::int64_t n;
    if (!as_int(v->via.array.ptr[i], n)) {
      error = "\"versions\" must be an array of integers";
      return false;
    }
    out.versions.push_back(n);
  }
  return get_str(m, "client", out.client, false, error);
}

bool decode_hello_ok(const std::string& body, HelloOk& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  std::int64_t version = 0, max_frame = 0, batch_rows = 0;
  if (!get_int(m, "version", version, true, error) ||
      !get_int(m, "max_frame", max_frame, true, error) ||
      !get_int(m, "batch_rows", batch_rows, false, error) ||
      !get_str(m, "server", out.server, false, error) ||
      !get_str(m, "default_bind", out.default_bind, false, error))
    return false;
  out.version = static_cast<int>(version);
  out.max_frame = static_cast<std::uint32_t>(max_frame);
  out.batch_rows = static_cast<std::uint32_t>(batch_rows);
  out.features.clear();
  // Unknown entries are kept (a newer server's); anything but strings is skipped.
  if (const Obj* f = find(m, "features"); f && f->type == msgpack::type::ARRAY) {
    for (std::uint32_t i = 0; i < f->via.array.size; ++i) {
      const Obj& e = f->via.array.ptr[i];
      if (e.type == msgpack::type::STR) out.features.emplace_back(e.via.str.ptr, e.via.str.size);
    }
  }
  return true;
}

bool decode_query(const std::string& body, QueryRequest& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  std::string bind;
  const Obj* b = find(m, "bind");
  if (b && b->type != msgpack::type::NIL) {
    if (!get_str(m, "bind", bind, true, error)) return false;
    out.bind = std::move(bind);
  }
  if (!get_str(m, "sql", out.sql, true, error)) return false;
  // Backends that read SQL as a C string would stop at the NUL and run only what precedes it.
  if (out.sql.find('\0') != std::string::npos) {
    error = "the SQL text contains a NUL byte";
    return false;
  }
  std::int64_t timeout = 0;
  if (!get_int(m, "timeout_ms", timeout, false, error)) return false;
  if (timeout < 0 || timeout > 0xFFFFFFFFLL) {
    error = "\"timeout_ms\" must be between 0 and 4294967295";
    return false;
  }
  out.timeout_ms = static_cast<std::uint32_t>(timeout);
  out.in_tx = false;
  if (const Obj* t = find(m, "in_tx"); t && t->type != msgpack::type::NIL) {
    if (t->type != msgpack::type::BOOLEAN) {
      error = "\"in_tx\" must be a boolean";
      return false;
    }
    out.in_tx = t->via.boolean;
  }
  out.params.clear();
  const Obj* p = find(m, "params");
  if (p && p->type != msgpack::type::NIL) {
    if (p->type != msgpack::type::ARRAY) {
      error = "\"params\" must be an array";
      return false;
    }
    out.params.reserve(p->via.array.size);
    for (std::uint32_t i = 0; i < p->via.array.size; ++i) {
      Value v;
      std::string why;
      if (!decode_value(p->via.array.ptr[i], v, why)) {
        error = "parameter " + std::to_string(i + 1) + ": " + why;
        return false;
      }
      out.params.push_back(std::move(v));
    }
  }
  return true;
}

namespace {
bool get_bind(const Obj& m, std::optional<std::string>& bind, std::string& error) {
  const Obj* b = find(m, "bind");
  if (!b || b->type == msgpack::type::NIL) return true;
  std::string key;
  if (!get_str(m, "bind", key, true, error)) return false;
  bind = std::move(key);
  return true;
}
}  // namespace

bool decode_begin(const std::string& body, BeginRequest& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  if (!get_bind(m, out.bind, error)) return false;
  std::string iso;
  if (!get_str(m, "isolation", iso, false, error)) return false;
  out.isolation = Isolation::backend_default;
  if (!iso.empty()) {
    bool found = false;
    for (std::size_t i = 1; i < kIsolationNames.size(); ++i) {
      if (kIsolationNames[i] == iso) {
        out.isolation = static_cast<Isolation>(i);
        found = true;
      }
    }
    if (!found) {
      error = "unknown isolation \"" + iso +
              "\" (use read_uncommitted, read_committed, repeatable_read or serializable)";
      return false;
    }
  }
  const Obj* ro = find(m, "read_only");
  if (ro && ro->type != msgpack::type::NIL) {
    if (ro->type != msgpack::type::BOOLEAN) {
      error = "\"read_only\" must be a boolean";
      return false;
    }
    out.read_only = ro->via.boolean;
  }
  return true;
}

bool decode_end(const std::string& body, std::optional<std::string>& bind, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  return get_bind(oh.get(), bind, error);
}

bool decode_cancel(const std::string& body, std::uint32_t& target, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  std::int64_t t = 0;
  if (!get_int(oh.get(), "target", t, true, error)) return false;
  if (t < 0 || t > 0xFFFFFFFFLL) {
    error = "\"target\" must be a request id";
    return false;
  }
  target = static_cast<std::uint32_t>(t);
  return true;
}

bool decode_admin(const std::string& body, AdminRequest& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  if (!get_str(oh.get(), "command", out.command, true, error) || !get_bind(oh.get(), out.bind, error)) return false;
  out.args.clear();
  const Obj* a = find(oh.get(), "args");
  if (!a || a->type == msgpack::type::NIL) return true;
  if (a->type != msgpack::type::ARRAY) {
    error = "\"args\" must be an array of strings";
    return false;
  }
  for (std::uint32_t i = 0; i < a->via.array.size; ++i) {
    const Obj& x = a->via.array.ptr[i];
    if (x.type != msgpack::type::STR) {
      error = "\"args\" must be an array of strings";
      return false;
    }
    out.args.emplace_back(x.via.str.ptr, x.via.str.size);
    if (!is_valid_utf8(out.args.back())) {
      error = "\"args\" " + std::to_string(i + 1) + " is not valid UTF-8";
      return false;
    }
  }
  return true;
}

bool decode_table(const std::string& body, Table& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  const Obj* cols = find(m, "columns");
  if (!cols || cols->type != msgpack::type::ARRAY) {
    error = "\"columns\" must be an array";
    return false;
  }
  out.columns.clear();
  for (std::uint32_t i = 0; i < cols->via.array.size; ++i) {
    const Obj& c = cols->via.array.ptr[i];
    if (c.type != msgpack::type::STR) {
      error = "column names must be strings";
      return false;
    }
    out.columns.emplace_back(c.via.str.ptr, c.via.str.size);
  }
  out.rows.clear();
  if (!decode_rows(body, out.rows, error)) return false;
  return get_str(m, "message", out.message, false, error);
}

bool decode_columns(const std::string& body, std::vector<Column>& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj* cols = find(oh.get(), "columns");
  if (!cols || cols->type != msgpack::type::ARRAY) {
    error = "\"columns\" must be an array";
    return false;
  }
  out.clear();
  for (std::uint32_t i = 0; i < cols->via.array.size; ++i) {
    const Obj& c = cols->via.array.ptr[i];
    if (c.type != msgpack::type::MAP) {
      error = "column entry is not a map";
      return false;
    }
    Column col;
    std::string type;
    if (!get_str(c, "name", col.name, true, error) || !get_str(c, "type", type, true, error) ||
        !get_str(c, "db_type", col.db_type, false, error))
      return false;
    if (!type_from_name(type, col.type)) col.type = Type::text;  // newer server: degrade to text
    out.push_back(std::move(col));
  }
  return true;
}

bool decode_rows(const std::string& body, std::vector<Row>& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj* rows = find(oh.get(), "rows");
  if (!rows || rows->type != msgpack::type::ARRAY) {
    error = "\"rows\" must be an array";
    return false;
  }
  for (std::uint32_t i = 0; i < rows->via.array.size; ++i) {
    const Obj& r = rows->via.array.ptr[i];
    if (r.type != msgpack::type::ARRAY) {
      error = "row is not an array";
      return false;
    }
    Row row;
    row.reserve(r.via.array.size);
    for (std::uint32_t j = 0; j < r.via.array.size; ++j) {
      Value v;
      if (!decode_value(r.via.array.ptr[j], v, error)) return false;
      row.push_back(std::move(v));
    }
    out.push_back(std::move(row));
  }
  return true;
}

bool decode_complete(const std::string& body, Complete& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  if (!get_int(m, "affected", out.affected, false, error) ||
      !get_int(m, "row_count", out.row_count, false, error))
    return false;
  std::int64_t id = 0;
  const Obj* l = find(m, "last_insert_id");
  if (l && l->type != msgpack::type::NIL) {
    if (!get_int(m, "last_insert_id", id, true, error)) return false;
    out.last_insert_id = id;
  } else {
    out.last_insert_id.reset();
  }
  return get_bool(m, "in_transaction", out.in_transaction);
}

bool decode_error(const std::string& body, ErrorInfo& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj& m = oh.get();
  std::string code, bind;
  if (!get_str(m, "code", code, true, error) || !get_str(m, "message", out.message, false, error) ||
      !get_str(m, "sqlstate", out.sqlstate, false, error))
    return false;
  if (!error_code_from_name(code, out.code)) out.code = ErrorCode::internal;
  const Obj* b = find(m, "bind");
  if (b && b->type == msgpack::type::STR) out.bind = std::string(b->via.str.ptr, b->via.str.size);
  std::int64_t n = 0;
  const Obj* e = find(m, "errno");
  if (e && as_int(*e, n)) out.number = n;
  const Obj* x = find(m, "may_have_executed");
  if (x && x->type == msgpack::type::BOOLEAN) out.may_have_executed = x->via.boolean;
  return true;
}

bool decode_binds(const std::string& body, std::vector<BindInfo>& out, std::string& error) {
  msgpack::object_handle oh;
  if (!unpack_map(body, oh, error)) return false;
  const Obj* arr = find(oh.get(), "binds");
  if (!arr || arr->type != msgpack::type::ARRAY) {
    error = "\"binds\" must be an array";
    return false;
  }
  out.clear();
  for (std::uint32_t i = 0; i < arr->via.array.size; ++i) {
    const Obj& b = arr->via.array.ptr[i];
    if (b.type != msgpack::type::MAP) {
      error = "bind entry is not a map";
      return false;
    }
    BindInfo info;
    if (!get_str(b, "key", info.key, true, error) ||
        !get_str(b, "backend", info.backend, false, error) ||
        !get_str(b, "database", info.database, false, error))
      return false;
    get_bool(b, "default", info.is_default);
    out.push_back(std::move(info));
  }
  return true;
}

bool decode_empty(const std::string& body, std::string& error) {
  msgpack::object_handle oh;
  return unpack_map(body, oh, error);
}

}  // namespace binds::protocol
