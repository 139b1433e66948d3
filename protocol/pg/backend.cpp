#include "protocol/pg/backend.hpp"

#include <charconv>
#include <limits>
#include <utility>

#include "protocol/pg/detail/bytes.hpp"

namespace binds::pgwire {

using detail::Reader;
using detail::Writer;

// ---------------------------------------------------------------------------- authentication

Result<Authentication> decode_authentication(const Message& m) {
  if (m.type != backend::authentication) return Error::wrong_type;
  Reader r(m.body);
  const std::int32_t code = r.i32();
  if (r.failed()) return r.error();

  Authentication a;
  switch (code) {
    case static_cast<std::int32_t>(AuthKind::ok):
    case static_cast<std::int32_t>(AuthKind::kerberos_v5):
    case static_cast<std::int32_t>(AuthKind::cleartext_password):
    case static_cast<std::int32_t>(AuthKind::gss):
    case static_cast<std::int32_t>(AuthKind::sspi):
      break;
    case static_cast<std::int32_t>(AuthKind::md5_password): {
      std::string_view salt = r.bytes(4);
      for (std::size_t i = 0; i < salt.size(); ++i) {
        a.md5_salt[i] = static_cast<unsigned char>(salt[i]);
      }
      break;
    }
    case static_cast<std::int32_t>(AuthKind::sasl): {
      const char* begin = r.position();
      std::size_t count = 0;
      for (;;) {
        std::string_view mech = r.cstr();
        if (r.failed()) return r.error();
        if (mech.empty()) break;
        ++count;
      }
      if (count == 0) return Error::bad_value;
      std::size_t size = static_cast<std::size_t>(r.position() - begin) - 1;
      a.sasl_mechanisms = StringList(std::string_view(begin, size), count);
      break;
    }
    case static_cast<std::int32_t>(AuthKind::gss_continue):
    case static_cast<std::int32_t>(AuthKind::sasl_continue):
    case static_cast<std::int32_t>(AuthKind::sasl_final):
      a.data = r.rest();
      break;
    default:
      return Error::bad_value;
  }
  if (Error e = r.finish(); e != Error::ok) return e;
  a.kind = static_cast<AuthKind>(code);
  return a;
}

namespace {
void encode_auth_code(std::string& out, AuthKind kind) {
  Writer w(out, backend::authentication);
  w.i32(static_cast<std::int32_t>(kind));
  (void)w.finish();
}

Error encode_auth_data(std::string& out, AuthKind kind, std::string_view data) {
  Writer w(out, backend::authentication);
  w.i32(static_cast<std::int32_t>(kind));
  w.bytes(data);
  return w.finish();
}
}  // namespace

void encode_authentication_ok(std::string& out) { encode_auth_code(out, AuthKind::ok); }

void encode_authentication_cleartext_password(std::string& out) {
  encode_auth_code(out, AuthKind::cleartext_password);
}

void encode_authentication_md5_password(std::string& out, const Md5Salt& salt) {
  Writer w(out, backend::authentication);
  w.i32(static_cast<std::int32_t>(AuthKind::md5_password));
  w.bytes(std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
  (void)w.finish();
}

Error encode_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms) {
  Writer w(out, backend::authentication);
  w.i32(static_cast<std::int32_t>(AuthKind::sasl));
  if (mechanisms.empty()) w.fail(Error::bad_value);
  for (auto mech : mechanisms) {
    if (mech.empty()) w.fail(Error::bad_value);
    w.cstr(mech);
  }
  w.u8(0);
  return w.finish();
}

Error encode_authentication_sasl_continue(std::string& out, std::string_view data) {
  return encode_auth_data(out, AuthKind::sasl_continue, data);
}

Error encode_authentication_sasl_final(std::string& out, std::string_view data) {
  return encode_auth_data(out, AuthKind::sasl_final, data);
}

// ---------------------------------------------------------------------------- session

Result<ParameterStatus> decode_parameter_status(const Message& m) {
  if (m.type != backend::parameter_status) return Error::wrong_type;
  Reader r(m.body);
  ParameterStatus p;
  p.name = r.cstr();
  p.value = r.cstr();
  if (Error e = r.finish(); e != Error::ok) return e;
  return p;
}

Result<BackendKeyData> decode_backend_key_data(const Message& m) {
  if (m.type != backend::backend_key_data) return Error::wrong_type;
  Reader r(m.body);
  BackendKeyData k;
  k.process_id = r.i32();
  k.secret_key = r.u32();
  if (Error e = r.finish(); e != Error::ok) return e;
  return k;
}

Result<ReadyForQuery> decode_ready_for_query(const Message& m) {
  if (m.type != backend::ready_for_query) return Error::wrong_type;
  Reader r(m.body);
  std::uint8_t s = r.u8();
  if (Error e = r.finish(); e != Error::ok) return e;
  if (s != 'I' && s != 'T' && s != 'E') return Error::bad_value;
  return ReadyForQuery{static_cast<TransactionStatus>(s)};
}

Result<NotificationResponse> decode_notification_response(const Message& m) {
  if (m.type != backend::notification_response) return Error::wrong_type;
  Reader r(m.body);
  NotificationResponse n;
  n.process_id = r.i32();
  n.channel = r.cstr();
  n.payload = r.cstr();
  if (Error e = r.finish(); e != Error::ok) return e;
  return n;
}

Result<NegotiateProtocolVersion> decode_negotiate_protocol_version(const Message& m) {
  if (m.type != backend::negotiate_protocol_version) return Error::wrong_type;
  Reader r(m.body);
  NegotiateProtocolVersion v;
  v.newest_minor = r.i32();
  std::int32_t n = r.i32();
  if (r.failed()) return r.error();
  if (n < 0) return Error::bad_length;
  const char* begin = r.position();
  // Each name takes at least its NUL, so a count larger than the body is caught on the way.
  for (std::int32_t i = 0; i < n; ++i) {
    r.cstr();
    if (r.failed()) return r.error();
  }
  if (Error e = r.finish(); e != Error::ok) return e;
  v.unrecognized_options =
      StringList(std::string_view(begin, static_cast<std::size_t>(r.position() - begin)),
                 static_cast<std::size_t>(n));
  return v;
}

Error encode_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  Writer w(out, backend::parameter_status);
  w.cstr(name);
  w.cstr(value);
  return w.finish();
}

void encode_backend_key_data(std::string& out, std::int32_t process_id, std::uint32_t secret_key) {
  Writer w(out, backend::backend_key_data);
  w.i32(process_id);
  w.u32(secret_key);
  (void)w.finish();
}

void encode_ready_for_query(std::string& out, TransactionStatus status) {
  const char m[6] = {backend::ready_for_query, 0, 0, 0, 5, static_cast<char>(status)};
  out.append(m, sizeof m);
}

Error encode_notification_response(std::string& out, std::int32_t process_id,
                                   std::string_view channel, std::string_view payload) {
  Writer w(out, backend::notification_response);
  w.i32(process_id);
  w.cstr(channel);
  w.cstr(payload);
  return w.finish();
}

Error encode_negotiate_protocol_version(std::string& out, std::int32_t newest_minor,
                                        std::span<const std::string_view> unrecognized_options) {
  Writer w(out, backend::negotiate_protocol_version);
  w.i32(newest_minor);
  if (unrecognized_options.size() >
      static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    w.fail(Error::too_many);
  }
  w.i32(static_cast<std::int32_t>(unrecognized_options.size()));
  for (auto o : unrecognized_options) w.cstr(o);
  return w.finish();
}

// ---------------------------------------------------------------------------- results

void ColumnList::iterator::load() {
  if (p_ == end_) return;
  // The region was validated by decode_row_description; the Reader only keeps this honest.
  Reader r(std::string_view(p_, static_cast<std::size_t>(end_ - p_)));
  current_.name = r.cstr();
  current_.table_oid = r.u32();
  current_.column_attr = r.i16();
  current_.type_oid = r.u32();
  current_.type_size = r.i16();
  current_.type_modifier = r.i32();
  current_.format = r.i16();
  next_ = r.failed() ? end_ : r.position();
}

Result<RowDescription> decode_row_description(const Message& m) {
  if (m.type != backend::row_description) return Error::wrong_type;
  Reader r(m.body);
  const std::uint16_t n = r.u16();
  const char* begin = r.position();
  for (std::uint16_t i = 0; i < n && !r.failed(); ++i) {
    r.cstr();
    // table oid, attr, type oid, typlen, typmod, format
    r.bytes(4 + 2 + 4 + 2 + 4 + 2);
  }
  if (Error e = r.finish(); e != Error::ok) return e;
  return RowDescription{
      ColumnList(std::string_view(begin, static_cast<std::size_t>(r.position() - begin)), n)};
}

Result<DataRow> decode_data_row(const Message& m) {
  if (m.type != backend::data_row) return Error::wrong_type;
  Reader r(m.body);
  const std::uint16_t n = r.u16();
  const char* begin = r.position();
  for (std::uint16_t i = 0; i < n && !r.failed(); ++i) {
    std::int32_t len = r.i32();
    if (len < -1) r.fail(Error::bad_length);
    if (len > 0) r.bytes(static_cast<std::size_t>(len));
  }
  if (Error e = r.finish(); e != Error::ok) return e;
  return DataRow{
      ValueList(std::string_view(begin, static_cast<std::size_t>(r.position() - begin)), n)};
}

Result<ParameterDescription> decode_parameter_description(const Message& m) {
  if (m.type != backend::parameter_description) return Error::wrong_type;
  Reader r(m.body);
  const std::uint16_t n = r.u16();
  std::string_view oids = r.bytes(std::size_t{n} * 4);
  if (Error e = r.finish(); e != Error::ok) return e;
  return ParameterDescription{OidList(oids.data(), n)};
}

Result<CommandComplete> decode_command_complete(const Message& m) {
  if (m.type != backend::command_complete) return Error::wrong_type;
  Reader r(m.body);
  CommandComplete c{r.cstr()};
  if (Error e = r.finish(); e != Error::ok) return e;
  return c;
}

std::optional<std::uint64_t> command_tag_rows(std::string_view tag) {
  const auto space = tag.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view verb = tag.substr(0, space);
  std::string_view rest = tag.substr(space + 1);
  if (verb == "INSERT") {
    // "INSERT oid rows": the OID is always 0 since PostgreSQL 12 but still present.
    const auto second = rest.find(' ');
    if (second == std::string_view::npos) return std::nullopt;
    rest = rest.substr(second + 1);
  } else if (verb != "UPDATE" && verb != "DELETE" && verb != "SELECT" && verb != "MERGE" &&
             verb != "MOVE" && verb != "FETCH" && verb != "COPY") {
    return std::nullopt;
  }
  std::uint64_t rows = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), rows);
  if (ec != std::errc{} || end != rest.data() + rest.size() || rest.empty()) return std::nullopt;
  return rows;
}

Result<CopyResponse> decode_copy_response(const Message& m) {
  if (m.type != backend::copy_in_response && m.type != backend::copy_out_response &&
      m.type != backend::copy_both_response) {
    return Error::wrong_type;
  }
  Reader r(m.body);
  CopyResponse c;
  const std::uint8_t format = r.u8();
  const std::uint16_t n = r.u16();
  std::string_view formats = r.bytes(std::size_t{n} * 2);
  if (Error e = r.finish(); e != Error::ok) return e;
  if (format > 1) return Error::bad_value;
  c.format = static_cast<std::int8_t>(format);
  c.column_formats = Int16List(formats.data(), n);
  return c;
}

Error encode_row_description(std::string& out, std::span<const ColumnDescription> columns) {
  Writer w(out, backend::row_description);
  w.count16(columns.size());
  for (const auto& c : columns) {
    w.cstr(c.name);
    w.u32(c.table_oid);
    w.i16(c.column_attr);
    w.u32(c.type_oid);
    w.i16(c.type_size);
    w.i32(c.type_modifier);
    w.i16(c.format);
  }
  return w.finish();
}

Error encode_data_row(std::string& out, std::span<const std::optional<std::string_view>> values) {
  DataRowWriter row(out);
  for (const auto& v : values) row.add_nullable(v);
  return row.finish();
}

Error encode_parameter_description(std::string& out, std::span<const std::uint32_t> types) {
  Writer w(out, backend::parameter_description);
  w.count16(types.size());
  for (auto t : types) w.u32(t);
  return w.finish();
}

Error encode_command_complete(std::string& out, std::string_view tag) {
  Writer w(out, backend::command_complete);
  w.cstr(tag);
  return w.finish();
}

Error encode_copy_response(std::string& out, char type, std::int8_t format,
                           std::span<const std::int16_t> column_formats) {
  Writer w(out, type);
  if (type != backend::copy_in_response && type != backend::copy_out_response &&
      type != backend::copy_both_response) {
    w.fail(Error::bad_value);
  }
  if (format != 0 && format != 1) w.fail(Error::bad_value);
  w.u8(static_cast<std::uint8_t>(format));
  w.count16(column_formats.size());
  for (auto f : column_formats) w.i16(f);
  return w.finish();
}

void encode_parse_complete(std::string& out) { detail::append_empty(out, backend::parse_complete); }
void encode_bind_complete(std::string& out) { detail::append_empty(out, backend::bind_complete); }
void encode_close_complete(std::string& out) { detail::append_empty(out, backend::close_complete); }
void encode_no_data(std::string& out) { detail::append_empty(out, backend::no_data); }
void encode_empty_query_response(std::string& out) {
  detail::append_empty(out, backend::empty_query_response);
}
void encode_portal_suspended(std::string& out) {
  detail::append_empty(out, backend::portal_suspended);
}

DataRowWriter::DataRowWriter(std::string& out)
    : w_(out, backend::data_row), count_at_(w_.reserve_u16()) {}

void DataRowWriter::add(std::string_view value) {
  ++count_;
  if (value.size() > 0x7FFFFFFF) w_.fail(Error::too_large);
  w_.i32(static_cast<std::int32_t>(value.size()));
  w_.bytes(value);
}

void DataRowWriter::add_null() {
  ++count_;
  w_.i32(-1);
}

Error DataRowWriter::finish() {
  if (count_ > std::numeric_limits<std::uint16_t>::max()) w_.fail(Error::too_many);
  w_.patch_u16(count_at_, static_cast<std::uint16_t>(count_));
  return w_.finish();
}

// ---------------------------------------------------------------------------- errors and notices

std::string_view NoticeFields::get(char code) const {
  for (auto f : *this) {
    if (f.code == code) return f.value;
  }
  return {};
}

namespace {
constexpr std::pair<char, std::string_view Notice::*> kNoticeSlots[] = {
    {'S', &Notice::severity},
    {'V', &Notice::severity_nonlocalized},
    {'C', &Notice::sqlstate},
    {'M', &Notice::message},
    {'D', &Notice::detail},
    {'H', &Notice::hint},
    {'P', &Notice::position},
    {'p', &Notice::internal_position},
    {'q', &Notice::internal_query},
    {'W', &Notice::where},
    {'s', &Notice::schema_name},
    {'t', &Notice::table_name},
    {'c', &Notice::column_name},
    {'d', &Notice::data_type_name},
    {'n', &Notice::constraint_name},
    {'F', &Notice::file},
    {'L', &Notice::line},
    {'R', &Notice::routine},
};

Result<Notice> decode_notice(const Message& m, char type) {
  if (m.type != type) return Error::wrong_type;
  Reader r(m.body);
  Notice n;
  for (;;) {
    const char code = static_cast<char>(r.u8());
    if (r.failed()) return r.error();
    if (code == '\0') break;
    std::string_view value = r.cstr();
    if (r.failed()) return r.error();
    std::string_view* slot = nullptr;
    for (const auto& [c, member] : kNoticeSlots) {
      if (c == code) slot = &(n.*member);
    }
    // Unknown codes are left to `fields` (the protocol tells clients to ignore them); the first
    // occurrence of a code wins, as in NoticeFields::get.
    if (slot != nullptr && slot->data() == nullptr) *slot = value;
  }
  if (Error e = r.finish(); e != Error::ok) return e;
  // Everything but the final terminator.
  n.fields = NoticeFields(m.body.substr(0, m.body.size() - 1));
  return n;
}

Error encode_notice(std::string& out, char type, std::span<const NoticeField> fields) {
  Writer w(out, type);
  for (const auto& f : fields) {
    if (f.code == '\0') w.fail(Error::bad_value);
    w.u8(static_cast<std::uint8_t>(f.code));
    w.cstr(f.value);
  }
  w.u8(0);
  return w.finish();
}
}  // namespace

Result<Notice> decode_error_response(const Message& m) {
  return decode_notice(m, backend::error_response);
}

Result<Notice> decode_notice_response(const Message& m) {
  return decode_notice(m, backend::notice_response);
}

Error encode_error_response(std::string& out, std::span<const NoticeField> fields) {
  return encode_notice(out, backend::error_response, fields);
}

Error encode_notice_response(std::string& out, std::span<const NoticeField> fields) {
  return encode_notice(out, backend::notice_response, fields);
}

Error encode_error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                            std::string_view message) {
  const NoticeField fields[] = {{'S', severity}, {'V', severity}, {'C', sqlstate}, {'M', message}};
  return encode_error_response(out, fields);
}

}  // namespace binds::pgwire
