// Redis as a connection decoder: redis::Session plus its records
// (OpenTelemetry database conventions, db.system.name "redis").
#include <cctype>
#include <vector>

#include "conn/session_decoder.hpp"
#include "conn/record_common.hpp"
#include "protocols/redis/redis.hpp"

namespace odigos {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Commands whose every argument is a secret (passwords, ACL rules).
bool all_args_secret(std::string_view op) {
  return op == "AUTH" || op == "HELLO" || op == "MIGRATE" || op == "ACL" || op == "CONFIG";
}

// The command as text: its name, then the first argument (usually the key)
// and '?' for every other argument when redacting (values are data); all of
// it, each argument cut at the capture limit, with --no-redact.
// `op`: the command name upper-cased.
std::string redis_query_text(const redis::Command& c, std::string_view op, bool redact) {
  std::string out;
  if (c.args.empty()) return out;
  out = c.args[0];
  bool secret = all_args_secret(op);
  for (uint64_t i = 1; i < c.argc; i++) {
    out.push_back(' ');
    if (redact && (secret || i > 1)) {
      out.push_back('?');
    } else if (i < c.args.size()) {
      const std::string& a = c.args[i];
      bool plain = !a.empty();
      for (char ch : a)
        if (ch == ' ' || ch == '"' || static_cast<unsigned char>(ch) < 0x20) plain = false;
      if (plain) {
        out += a;
      } else { // quoted like redis-cli shows it
        out.push_back('"');
        for (char ch : a) {
          if (ch == '"' || ch == '\\') out.push_back('\\');
          out.push_back(ch);
        }
        out.push_back('"');
      }
    } else {
      out += "...";
      break;
    }
    if (out.size() > 1024) {
      out += " ...";
      break;
    }
  }
  return out;
}

class RedisDecoder final : public SessionDecoder<redis::Session, redis::Exchange> {
 public:
  explicit RedisDecoder(proto::Side side) : SessionDecoder(redis::Session(side)) {}
  Protocol protocol() const override { return Protocol::kRedis; }
  bool rejected() const override { return session_.verdict() == redis::Verdict::kNotRedis; }

 private:
  bool fill(RecordOut& out, const redis::Exchange& ex, uint64_t end_hint) override {
    if (ex.reply_suppressed && !ex.reply) return false; // CLIENT REPLY OFF: nothing to time
    const redis::Command& cmd = ex.command;
    const redis::Reply* rep = ex.reply ? &*ex.reply : nullptr;
    Record& r = out.scratch;
    fill_request_basics(r, "redis", session_.side(), out.id, out.clock, cmd.first_ts_ns,
                        rep ? rep->last_ts_ns : 0, rep ? rep->first_ts_ns : 0,
                        std::max(end_hint, cmd.last_ts_ns));
    r.complete = rep && rep->complete && ex.error_type.empty();
    r.set("db.system.name", std::string("redis"));
    if (!cmd.args.empty()) {
      std::string op = upper(cmd.args[0]);
      r.set("db.query.text", redis_query_text(cmd, op, out.opt.redact));
      r.set("db.operation.name", std::move(op));
    }
    set_connection_attrs(r, out.id);
    std::string error = ex.error_type;
    if (rep && rep->error) {
      std::string code = rep->error_prefix.empty() ? std::string("ERR") : rep->error_prefix;
      r.set("db.response.status_code", code);
      if (error.empty()) error = code;
      if (!rep->error_message.empty()) r.set("odigos.db.error.message", rep->error_message);
    }
    if (rep && (rep->type == '*' || rep->type == '~' || rep->type == '%') && rep->elements >= 0)
      r.set("db.response.returned_rows", rep->elements);
    if (!error.empty()) r.set("error.type", error);
    if (out.id.retransmits) r.set("odigos.tcp.retransmits", int64_t(out.id.retransmits));
    if (cmd.truncated || (rep && rep->truncated)) r.set("odigos.capture.truncated", true);
    return true;
  }
};

} // namespace

std::unique_ptr<Decoder> make_redis_decoder(proto::Side side) {
  return std::make_unique<RedisDecoder>(side);
}

} // namespace odigos
