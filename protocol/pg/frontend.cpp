#include "protocol/pg/frontend.hpp"

#include "protocol/pg/detail/bytes.hpp"

namespace binds::pgwire {

using detail::Reader;
using detail::Writer;

namespace {

bool valid_kind(std::uint8_t c) { return c == 'S' || c == 'P'; }

// Shared by the Int16List fields of Bind: a count, then that many 16-bit codes.
Int16List read_int16_list(Reader& r) {
  std::uint16_t n = r.u16();
  std::string_view v = r.bytes(std::size_t{n} * 2);
  return r.failed() ? Int16List{} : Int16List(v.data(), n);
}

void write_int16_list(Writer& w, std::span<const std::int16_t> list) {
  w.count16(list.size());
  for (auto v : list) w.i16(v);
}

}  // namespace

// ---------------------------------------------------------------------------- startup phase

StartupParams::iterator& StartupParams::iterator::operator++() {
  std::size_t name = std::strlen(p_);
  p_ += name + 1;
  p_ += std::strlen(p_) + 1;
  return *this;
}

std::optional<std::string_view> StartupParams::find(std::string_view name) const {
  std::optional<std::string_view> found;
  for (auto p : *this) {
    if (p.name == name) found = p.value;
  }
  return found;
}

Result<StartupPacket> decode_startup_packet(const Message& m) {
  if (m.type != '\0') return Error::wrong_type;
  Reader r(m.body);
  const std::uint32_t code = r.u32();
  if (r.failed()) return r.error();

  StartupPacket p;
  switch (code) {
    case kSslRequestCode:
      p.kind = StartupKind::ssl_request;
      break;
    case kGssEncRequestCode:
      p.kind = StartupKind::gssenc_request;
      break;
    case kCancelRequestCode:
      p.kind = StartupKind::cancel_request;
      p.cancel.process_id = r.i32();
      p.cancel.secret_key = r.u32();
      break;
    default: {
      if ((code >> 16) != 3) return Error::unsupported_protocol;
      p.kind = StartupKind::startup;
      p.startup.major = 3;
      p.startup.minor = static_cast<std::uint16_t>(code & 0xFFFF);
      const char* begin = r.position();
      std::size_t count = 0;
      for (;;) {
        std::string_view name = r.cstr();
        if (r.failed()) return r.error();
        if (name.empty()) break;
        r.cstr();
        if (r.failed()) return r.error();
        ++count;
      }
      // The region stops before the terminator, which the loop above consumed.
      std::size_t size = static_cast<std::size_t>(r.position() - begin) - 1;
      p.startup.params = StartupParams(std::string_view(begin, size), count);
      break;
    }
  }
  if (Error e = r.finish(); e != Error::ok) return e;
  return p;
}

Error encode_startup_message(std::string& out, std::span<const StartupParam> params,
                             std::uint16_t minor_version) {
  Writer w(out, '\0');
  w.u32(kProtocolVersion3 | minor_version);
  for (const auto& p : params) {
    if (p.name.empty()) w.fail(Error::bad_value);
    w.cstr(p.name);
    w.cstr(p.value);
  }
  w.u8(0);
  return w.finish();
}

Error encode_startup_message(std::string& out, std::string_view user, std::string_view database,
                             std::span<const StartupParam> extra) {
  Writer w(out, '\0');
  w.u32(kProtocolVersion3);
  w.cstr("user");
  w.cstr(user);
  if (!database.empty()) {
    w.cstr("database");
    w.cstr(database);
  }
  for (const auto& p : extra) {
    if (p.name.empty()) w.fail(Error::bad_value);
    w.cstr(p.name);
    w.cstr(p.value);
  }
  w.u8(0);
  return w.finish();
}

void encode_ssl_request(std::string& out) {
  Writer w(out, '\0');
  w.u32(kSslRequestCode);
  (void)w.finish();
}

void encode_gssenc_request(std::string& out) {
  Writer w(out, '\0');
  w.u32(kGssEncRequestCode);
  (void)w.finish();
}

void encode_cancel_request(std::string& out, std::int32_t process_id, std::uint32_t secret_key) {
  Writer w(out, '\0');
  w.u32(kCancelRequestCode);
  w.i32(process_id);
  w.u32(secret_key);
  (void)w.finish();
}

// ---------------------------------------------------------------------------- authentication

Result<PasswordMessage> decode_password_message(const Message& m) {
  if (m.type != frontend::password) return Error::wrong_type;
  Reader r(m.body);
  PasswordMessage p{r.cstr()};
  if (Error e = r.finish(); e != Error::ok) return e;
  return p;
}

Result<SaslInitialResponse> decode_sasl_initial_response(const Message& m) {
  if (m.type != frontend::password) return Error::wrong_type;
  Reader r(m.body);
  SaslInitialResponse s;
  s.mechanism = r.cstr();
  std::int32_t n = r.i32();
  if (r.failed()) return r.error();
  if (n < -1) return Error::bad_length;
  if (n >= 0) s.data = r.bytes(static_cast<std::size_t>(n));
  if (Error e = r.finish(); e != Error::ok) return e;
  return s;
}

Result<SaslResponse> decode_sasl_response(const Message& m) {
  if (m.type != frontend::password) return Error::wrong_type;
  return SaslResponse{m.body};
}

Error encode_password_message(std::string& out, std::string_view password) {
  Writer w(out, frontend::password);
  w.cstr(password);
  return w.finish();
}

Error encode_sasl_initial_response(std::string& out, std::string_view mechanism,
                                   std::optional<std::string_view> data) {
  Writer w(out, frontend::password);
  w.cstr(mechanism);
  if (data) {
    if (data->size() > 0x7FFFFFFF) w.fail(Error::too_large);
    w.i32(static_cast<std::int32_t>(data->size()));
    w.bytes(*data);
  } else {
    w.i32(-1);
  }
  return w.finish();
}

Error encode_sasl_response(std::string& out, std::string_view data) {
  Writer w(out, frontend::password);
  w.bytes(data);
  return w.finish();
}

// ---------------------------------------------------------------------------- queries

Result<Query> decode_query(const Message& m) {
  if (m.type != frontend::query) return Error::wrong_type;
  Reader r(m.body);
  Query q{r.cstr()};
  if (Error e = r.finish(); e != Error::ok) return e;
  return q;
}

Result<Parse> decode_parse(const Message& m) {
  if (m.type != frontend::parse) return Error::wrong_type;
  Reader r(m.body);
  Parse p;
  p.statement = r.cstr();
  p.sql = r.cstr();
  std::uint16_t n = r.u16();
  std::string_view oids = r.bytes(std::size_t{n} * 4);
  if (Error e = r.finish(); e != Error::ok) return e;
  p.param_types = OidList(oids.data(), n);
  return p;
}

Result<Bind> decode_bind(const Message& m) {
  if (m.type != frontend::bind) return Error::wrong_type;
  Reader r(m.body);
  Bind b;
  b.portal = r.cstr();
  b.statement = r.cstr();
  b.param_formats = read_int16_list(r);
  std::uint16_t n = r.u16();
  const char* values = r.position();
  for (std::uint16_t i = 0; i < n && !r.failed(); ++i) {
    std::int32_t len = r.i32();
    if (len < -1) r.fail(Error::bad_length);
    if (len > 0) r.bytes(static_cast<std::size_t>(len));
  }
  if (r.failed()) return r.error();
  b.params =
      ValueList(std::string_view(values, static_cast<std::size_t>(r.position() - values)), n);
  b.result_formats = read_int16_list(r);
  if (Error e = r.finish(); e != Error::ok) return e;
  return b;
}

namespace {
template <class T>
Result<T> decode_kind_and_name(const Message& m, char type) {
  if (m.type != type) return Error::wrong_type;
  Reader r(m.body);
  std::uint8_t kind = r.u8();
  std::string_view name = r.cstr();
  if (Error e = r.finish(); e != Error::ok) return e;
  if (!valid_kind(kind)) return Error::bad_value;
  return T{static_cast<ObjectKind>(kind), name};
}
}  // namespace

Result<Describe> decode_describe(const Message& m) {
  return decode_kind_and_name<Describe>(m, frontend::describe);
}

Result<Close> decode_close(const Message& m) {
  return decode_kind_and_name<Close>(m, frontend::close);
}

Result<Execute> decode_execute(const Message& m) {
  if (m.type != frontend::execute) return Error::wrong_type;
  Reader r(m.body);
  Execute x;
  x.portal = r.cstr();
  x.max_rows = r.i32();
  if (Error e = r.finish(); e != Error::ok) return e;
  return x;
}

Result<CopyData> decode_copy_data(const Message& m) {
  if (m.type != frontend::copy_data) return Error::wrong_type;
  return CopyData{m.body};
}

Result<CopyFail> decode_copy_fail(const Message& m) {
  if (m.type != frontend::copy_fail) return Error::wrong_type;
  Reader r(m.body);
  CopyFail f{r.cstr()};
  if (Error e = r.finish(); e != Error::ok) return e;
  return f;
}

Error decode_empty(const Message& m, char type) {
  if (m.type != type) return Error::wrong_type;
  return m.body.empty() ? Error::ok : Error::trailing_bytes;
}

Error encode_query(std::string& out, std::string_view sql) {
  Writer w(out, frontend::query);
  w.cstr(sql);
  return w.finish();
}

Error encode_parse(std::string& out, std::string_view statement, std::string_view sql,
                   std::span<const std::uint32_t> param_types) {
  Writer w(out, frontend::parse);
  w.cstr(statement);
  w.cstr(sql);
  w.count16(param_types.size());
  for (auto oid : param_types) w.u32(oid);
  return w.finish();
}

Error encode_bind(std::string& out, std::string_view portal, std::string_view statement,
                  std::span<const std::int16_t> param_formats,
                  std::span<const std::optional<std::string_view>> params,
                  std::span<const std::int16_t> result_formats) {
  Writer w(out, frontend::bind);
  w.cstr(portal);
  w.cstr(statement);
  write_int16_list(w, param_formats);
  w.count16(params.size());
  for (const auto& p : params) {
    if (!p) {
      w.i32(-1);
      continue;
    }
    if (p->size() > 0x7FFFFFFF) w.fail(Error::too_large);
    w.i32(static_cast<std::int32_t>(p->size()));
    w.bytes(*p);
  }
  write_int16_list(w, result_formats);
  return w.finish();
}

namespace {
Error encode_kind_and_name(std::string& out, char type, ObjectKind kind, std::string_view name) {
  Writer w(out, type);
  if (!valid_kind(static_cast<std::uint8_t>(kind))) w.fail(Error::bad_value);
  w.u8(static_cast<std::uint8_t>(kind));
  w.cstr(name);
  return w.finish();
}
}  // namespace

Error encode_describe(std::string& out, ObjectKind kind, std::string_view name) {
  return encode_kind_and_name(out, frontend::describe, kind, name);
}

Error encode_close(std::string& out, ObjectKind kind, std::string_view name) {
  return encode_kind_and_name(out, frontend::close, kind, name);
}

Error encode_execute(std::string& out, std::string_view portal, std::int32_t max_rows) {
  Writer w(out, frontend::execute);
  w.cstr(portal);
  w.i32(max_rows);
  return w.finish();
}

void encode_sync(std::string& out) { detail::append_empty(out, frontend::sync); }
void encode_flush(std::string& out) { detail::append_empty(out, frontend::flush); }
void encode_terminate(std::string& out) { detail::append_empty(out, frontend::terminate); }
void encode_copy_done(std::string& out) { detail::append_empty(out, frontend::copy_done); }

Error encode_copy_data(std::string& out, std::string_view data) {
  Writer w(out, frontend::copy_data);
  w.bytes(data);
  return w.finish();
}

Error encode_copy_fail(std::string& out, std::string_view message) {
  Writer w(out, frontend::copy_fail);
  w.cstr(message);
  return w.finish();
}

}  // namespace binds::pgwire
