// libFuzzer target for the PostgreSQL wire codec (protocol/pg/). Arbitrary bytes go to:
//  1. read_message in both phases, and MessageDecoder fed one byte at a time, which must agree
//     with one-shot framing message for message;
//  2. every message decoder, with the input as the body (libFuzzer's buffer is exactly the input's
//     size, so AddressSanitizer sees any read past it);
//  3. re-encoding: whatever a decoder accepts, the matching encoder must reproduce byte for byte;
//  4. the SCRAM client and server state machines, the verifier parser and base64.
// Any mismatch aborts, so libFuzzer reports it like a crash.
//
//   cmake -S . -B build-fuzz -DBINDS_FUZZ=ON (with CC=clang CXX=clang++)
//   cmake --build build-fuzz --target binds_pgwire_fuzz
//   build-fuzz/tests/fuzz/binds_pgwire_fuzz -max_total_time=60 corpus/

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pg/pgwire.hpp"

using namespace binds::pgwire;
using std::string_view;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// The body re-encoded by `encode` must equal the input body.
template <class Encode>
void same_bytes(const Message& m, Encode encode) {
  std::string out;
  encode(out);
  Message back;
  const Phase phase = m.type == '\0' ? Phase::startup : Phase::typed;
  ReadResult r = read_message(out, phase, kDefaultMaxMessage, back);
  check(r.status == ReadStatus::message && back.raw.size() == out.size());
  check(back.type == m.type && back.body == m.body);
}

void decode_all(string_view body) {
  auto as = [&](char type) { return Message{type, body, body}; };
  // Wrong types must be refused by every decoder before it looks at the body.
  check(decode_query(as('q')).error() == Error::wrong_type);

  if (auto m = as('\0'); auto p = decode_startup_packet(m)) {
    same_bytes(m, [&](std::string& out) {
      switch (p->kind) {
        case StartupKind::ssl_request:
          encode_ssl_request(out);
          break;
        case StartupKind::gssenc_request:
          encode_gssenc_request(out);
          break;
        case StartupKind::cancel_request:
          encode_cancel_request(out, p->cancel.process_id, p->cancel.secret_key);
          break;
        case StartupKind::startup: {
          std::vector<StartupParam> params(p->startup.params.begin(), p->startup.params.end());
          check(params.size() == p->startup.params.size());
          // An empty value is fine, an empty name ends the list: the decoder cannot yield one.
          for (auto& sp : params) check(!sp.name.empty());
          check(encode_startup_message(out, params, p->startup.minor) == Error::ok);
          break;
        }
      }
    });
  }

  // Frontend.
  if (auto m = as('p'); auto pw = decode_password_message(m)) {
    same_bytes(m, [&](std::string& out) {
      check(encode_password_message(out, pw->password) == Error::ok);
    });
  }
  if (auto m = as('p'); auto s = decode_sasl_initial_response(m)) {
    same_bytes(m, [&](std::string& out) {
      check(encode_sasl_initial_response(out, s->mechanism, s->data) == Error::ok);
    });
  }
  if (auto m = as('p'); auto s = decode_sasl_response(m)) {
    same_bytes(m,
               [&](std::string& out) { check(encode_sasl_response(out, s->data) == Error::ok); });
  }
  if (auto m = as('Q'); auto q = decode_query(m)) {
    same_bytes(m, [&](std::string& out) { check(encode_query(out, q->sql) == Error::ok); });
  }
  if (auto m = as('P'); auto p = decode_parse(m)) {
    std::vector<std::uint32_t> oids(p->param_types.begin(), p->param_types.end());
    check(oids.size() == p->param_types.size());
    same_bytes(m, [&](std::string& out) {
      check(encode_parse(out, p->statement, p->sql, oids) == Error::ok);
    });
  }
  if (auto m = as('B'); auto b = decode_bind(m)) {
    std::vector<std::int16_t> pf(b->param_formats.begin(), b->param_formats.end());
    std::vector<std::optional<string_view>> params(b->params.begin(), b->params.end());
    std::vector<std::int16_t> rf(b->result_formats.begin(), b->result_formats.end());
    check(params.size() == b->params.size());
    same_bytes(m, [&](std::string& out) {
      check(encode_bind(out, b->portal, b->statement, pf, params, rf) == Error::ok);
    });
  }
  if (auto m = as('D'); auto d = decode_describe(m)) {
    same_bytes(
        m, [&](std::string& out) { check(encode_describe(out, d->kind, d->name) == Error::ok); });
  }
  if (auto m = as('E'); auto x = decode_execute(m)) {
    same_bytes(m, [&](std::string& out) {
      check(encode_execute(out, x->portal, x->max_rows) == Error::ok);
    });
  }
  if (auto m = as('C'); auto c = decode_close(m)) {
    same_bytes(m,
               [&](std::string& out) { check(encode_close(out, c->kind, c->name) == Error::ok); });
  }
  if (auto m = as('d'); auto c = decode_copy_data(m)) {
    same_bytes(m, [&](std::string& out) { check(encode_copy_data(out, c->data) == Error::ok); });
  }
  if (auto m = as('f'); auto c = decode_copy_fail(m)) {
    same_bytes(m, [&](std::string& out) { check(encode_copy_fail(out, c->message) == Error::ok); });
  }
  for (char t : {'S', 'H', 'X', 'c', '1', '2', '3', 'n', 'I', 's'}) {
    check((decode_empty(as(t), t) == Error::ok) == body.empty());
  }

  // Backend.
  if (auto m = as('R'); auto a = decode_authentication(m)) {
    switch (a->kind) {
      case AuthKind::ok:
        same_bytes(m, [](std::string& out) { encode_authentication_ok(out); });
        break;
      case AuthKind::cleartext_password:
        same_bytes(m, [](std::string& out) { encode_authentication_cleartext_password(out); });
        break;
      case AuthKind::md5_password:
        same_bytes(m,
                   [&](std::string& out) { encode_authentication_md5_password(out, a->md5_salt); });
        break;
      case AuthKind::sasl: {
        std::vector<string_view> mechs(a->sasl_mechanisms.begin(), a->sasl_mechanisms.end());
        check(!mechs.empty() && mechs.size() == a->sasl_mechanisms.size());
        same_bytes(m, [&](std::string& out) {
          check(encode_authentication_sasl(out, mechs) == Error::ok);
        });
        break;
      }
      case AuthKind::sasl_continue:
        same_bytes(m, [&](std::string& out) {
          check(encode_authentication_sasl_continue(out, a->data) == Error::ok);
        });
        break;
      case AuthKind::sasl_final:
        same_bytes(m, [&](std::string& out) {
          check(encode_authentication_sasl_final(out, a->data) == Error::ok);
        });
        break;
      default:
        break;  // no encoders for Kerberos, GSS and SSPI requests
    }
  }
  if (auto m = as('S'); auto p = decode_parameter_status(m)) {
    same_bytes(m, [&](std::string& out) {
      check(encode_parameter_status(out, p->name, p->value) == Error::ok);
    });
  }
  if (auto m = as('K'); auto k = decode_backend_key_data(m)) {
    same_bytes(
        m, [&](std::string& out) { encode_backend_key_data(out, k->process_id, k->secret_key); });
  }
  if (auto m = as('Z'); auto r = decode_ready_for_query(m)) {
    same_bytes(m, [&](std::string& out) { encode_ready_for_query(out, r->status); });
  }
  if (auto m = as('A'); auto n = decode_notification_response(m)) {
    same_bytes(m, [&](std::string& out) {
      check(encode_notification_response(out, n->process_id, n->channel, n->payload) == Error::ok);
    });
  }
  if (auto m = as('v'); auto v = decode_negotiate_protocol_version(m)) {
    std::vector<string_view> opts(v->unrecognized_options.begin(), v->unrecognized_options.end());
    check(opts.size() == v->unrecognized_options.size());
    same_bytes(m, [&](std::string& out) {
      check(encode_negotiate_protocol_version(out, v->newest_minor, opts) == Error::ok);
    });
  }
  if (auto m = as('T'); auto rd = decode_row_description(m)) {
    std::vector<ColumnDescription> cols(rd->columns.begin(), rd->columns.end());
    check(cols.size() == rd->columns.size());
    same_bytes(m, [&](std::string& out) { check(encode_row_description(out, cols) == Error::ok); });
  }
  if (auto m = as('D'); auto row = decode_data_row(m)) {
    std::vector<std::optional<string_view>> values(row->values.begin(), row->values.end());
    check(values.size() == row->values.size());
    same_bytes(m, [&](std::string& out) { check(encode_data_row(out, values) == Error::ok); });
  }
  if (auto m = as('t'); auto pd = decode_parameter_description(m)) {
    std::vector<std::uint32_t> types(pd->types.begin(), pd->types.end());
    same_bytes(
        m, [&](std::string& out) { check(encode_parameter_description(out, types) == Error::ok); });
  }
  if (auto m = as('C'); auto cc = decode_command_complete(m)) {
    (void)command_tag_rows(cc->tag);
    same_bytes(
        m, [&](std::string& out) { check(encode_command_complete(out, cc->tag) == Error::ok); });
  }
  for (char t : {'G', 'H', 'W'}) {
    if (auto m = as(t); auto cr = decode_copy_response(m)) {
      std::vector<std::int16_t> formats(cr->column_formats.begin(), cr->column_formats.end());
      same_bytes(m, [&](std::string& out) {
        check(encode_copy_response(out, t, cr->format, formats) == Error::ok);
      });
    }
  }
  for (char t : {'E', 'N'}) {
    auto m = as(t);
    auto n = t == 'E' ? decode_error_response(m) : decode_notice_response(m);
    if (!n) continue;
    std::vector<NoticeField> fields(n->fields.begin(), n->fields.end());
    for (auto& f : fields) {
      check(f.code != '\0');
      check(n->fields.get(f.code).data() != nullptr);
    }
    same_bytes(m, [&](std::string& out) {
      check((t == 'E' ? encode_error_response(out, fields) : encode_notice_response(out, fields)) ==
            Error::ok);
    });
  }
}

struct Framed {
  char type;
  std::string body;
  bool operator==(const Framed&) const = default;
};

// Frames everything in one pass, switching to the typed phase after a StartupMessage, the way a
// server would.
std::vector<Framed> frame_all(string_view in, Phase phase, Error& error) {
  std::vector<Framed> out;
  error = Error::ok;
  for (;;) {
    Message m;
    const std::uint32_t limit = phase == Phase::typed ? 4096 : kMaxStartupPacket;
    ReadResult r = read_message(in, phase, limit, m);
    if (r.status == ReadStatus::need_more) {
      check(r.needed > in.size());
      return out;
    }
    if (r.status == ReadStatus::error) {
      error = r.error;
      return out;
    }
    check(m.raw.size() >= header_size(phase) && m.raw.size() <= in.size());
    check(m.raw.data() == in.data());
    out.push_back({m.type, std::string(m.body)});
    in.remove_prefix(m.raw.size());
    if (phase == Phase::startup) {
      auto p = decode_startup_packet(m);
      if (p && p->kind == StartupKind::startup) phase = Phase::typed;
    }
  }
}

void fuzz_framing(string_view in) {
  for (Phase start : {Phase::startup, Phase::typed}) {
    Error one_shot_error;
    std::vector<Framed> expected = frame_all(in, start, one_shot_error);

    // The same stream fed one byte at a time must yield the same messages and the same error.
    MessageDecoder dec(start, 4096, kMaxStartupPacket);
    std::vector<Framed> got;
    ReadStatus last = ReadStatus::need_more;
    for (std::size_t i = 0; i < in.size() && last != ReadStatus::error; ++i) {
      dec.feed(in.substr(i, 1));
      Message m;
      while ((last = dec.next(m)) == ReadStatus::message) {
        got.push_back({m.type, std::string(m.body)});
        if (dec.phase() == Phase::startup) {
          auto p = decode_startup_packet(m);
          if (p && p->kind == StartupKind::startup) dec.set_phase(Phase::typed);
        }
      }
    }
    check(got == expected);
    check(dec.error() == one_shot_error);

    for (const auto& f : expected) decode_all(f.body);
  }
}

void fuzz_scram(string_view in) {
  (void)parse_scram_verifier(in);
  if (auto raw = detail::base64_decode(in)) check(detail::base64_encode(*raw).size() == in.size());

  // Server: client-first and client-final separated by the first '\n'.
  const auto nl = in.find('\n');
  static const ScramVerifier verifier = *make_scram_verifier("pw", 1, "salt");
  {
    ScramServer server(verifier, {.server_nonce = "S"});
    std::string out;
    if (server.handle_client_first(in.substr(0, nl), out) == ScramError::ok &&
        nl != string_view::npos) {
      out.clear();
      (void)server.handle_client_final(in.substr(nl + 1), out);
    }
  }
  // Client: server-first and server-final. PBKDF2 runs the server's iteration count, up to ten
  // million by design, which would stall the fuzzer: counts of five digits or more are skipped.
  {
    const auto i = in.find(",i=");
    if (i != string_view::npos) {
      string_view digits = in.substr(i + 3, 5);
      if (digits.size() == 5 && digits.find_first_not_of("0123456789") == string_view::npos) return;
    }
    ScramClient client("pw", {.client_nonce = "C"});
    std::string out;
    check(client.client_first(out) == ScramError::ok);
    out.clear();
    if (client.handle_server_first(in.substr(0, nl), out) == ScramError::ok &&
        nl != string_view::npos) {
      (void)client.handle_server_final(in.substr(nl + 1));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const string_view in(reinterpret_cast<const char*>(data), size);
  fuzz_framing(in);
  // The input as a bare body for every decoder, without any framing in the way.
  decode_all(in);
  fuzz_scram(in);
  return 0;
}
