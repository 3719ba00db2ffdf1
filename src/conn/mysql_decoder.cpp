// MySQL/MariaDB as a connection decoder: mysql::Session plus its records
// (OpenTelemetry database conventions, db.system.name "mysql" or "mariadb").
#include "conn/session_decoder.hpp"
#include "conn/record_common.hpp"
#include "protocols/mysql/mysql.hpp"
#include "protocols/sql/sanitize.hpp"

namespace odigos {

namespace {

class MysqlDecoder final : public SessionDecoder<mysql::Session, mysql::Exchange> {
 public:
  explicit MysqlDecoder(proto::Side side) : SessionDecoder(mysql::Session(side)) {}
  Protocol protocol() const override { return Protocol::kMysql; }
  const char* done_protocol() const override { return system_; }
  bool encrypted() const override { return session_.verdict() == mysql::Verdict::kEncrypted; }
  bool rejected() const override { return session_.verdict() == mysql::Verdict::kNotMysql; }

 private:
  bool fill(RecordOut& out, const mysql::Exchange& ex, uint64_t end_hint) override {
    using K = mysql::Exchange::Kind;
    if (ex.kind == K::kHandshake) {
      if (ex.server_version.find("MariaDB") != std::string::npos) system_ = "mariadb";
      // A successful login is set-up, not a request; a refused one is worth a record.
      if (ex.error_code == 0 && ex.error_type.empty()) return false;
    }
    if (ex.kind == K::kQuit || ex.kind == K::kClose) return false; // no response to time
    Record& r = out.scratch;
    const bool answered = ex.response_bytes > 0;
    fill_request_basics(r, system_, session_.side(), out.id, out.clock, ex.first_ts_ns,
                        answered ? ex.last_ts_ns : 0, 0, std::max(end_hint, ex.last_ts_ns));
    r.complete = ex.complete && ex.error_type.empty();
    r.set("db.system.name", std::string(system_));
    if (!ex.database.empty()) r.set("db.namespace", ex.database);
    std::string op;
    if (ex.text_known && !ex.text.empty()) op = sql::operation(ex.text);
    if (op.empty()) {
      switch (ex.kind) {
      case K::kPing: op = "PING"; break;
      case K::kInitDb: op = "USE"; break;
      case K::kExecute: op = "EXECUTE"; break;
      case K::kHandshake: op = "CONNECT"; break;
      default: break;
      }
    }
    if (!op.empty()) r.set("db.operation.name", op);
    if (ex.text_known && !ex.text.empty())
      r.set("db.query.text", out.opt.redact ? sql::sanitize(ex.text, sql::Dialect::kMysql) : ex.text);
    if (ex.kind == K::kPrepare) r.set("odigos.db.prepare", true);
    if (ex.kind == K::kExecute) r.set("odigos.db.statement_id", int64_t(ex.statement_id));
    if (ex.rows >= 0 && ex.result_sets > 0) r.set("db.response.returned_rows", ex.rows);
    if (ex.affected_rows >= 0 && ex.result_sets == 0) r.set("odigos.db.affected_rows", ex.affected_rows);
    set_connection_attrs(r, out.id);
    std::string error = ex.error_type;
    if (ex.error_code) {
      std::string code = std::to_string(ex.error_code);
      r.set("db.response.status_code", code);
      if (error.empty()) error = code;
      if (!ex.error_message.empty()) r.set("odigos.db.error.message", ex.error_message);
    }
    if (!error.empty()) r.set("error.type", error);
    if (out.id.retransmits) r.set("odigos.tcp.retransmits", int64_t(out.id.retransmits));
    if (ex.truncated || ex.text_truncated) r.set("odigos.capture.truncated", true);
    return true;
  }

  const char* system_ = "mysql"; // "mariadb" once the server's greeting says so
};

} // namespace

std::unique_ptr<Decoder> make_mysql_decoder(proto::Side side) {
  return std::make_unique<MysqlDecoder>(side);
}

} // namespace odigos
