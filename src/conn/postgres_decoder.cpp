// PostgreSQL as a connection decoder: pg::Session plus its records
// (OpenTelemetry database conventions, db.system.name "postgresql").
#include "conn/session_decoder.hpp"
#include "conn/record_common.hpp"
#include "protocols/postgres/postgres.hpp"
#include "protocols/sql/sanitize.hpp"

namespace odigos {

namespace {

bool returns_rows(std::string_view op) {
  return op == "SELECT" || op == "FETCH" || op == "SHOW" || op == "COPY" || op == "WITH" ||
         op == "VALUES" || op == "TABLE" || op == "EXPLAIN";
}

class PostgresDecoder final : public SessionDecoder<pg::Session, pg::Exchange> {
 public:
  explicit PostgresDecoder(proto::Side side) : SessionDecoder(pg::Session(side)) {}
  Protocol protocol() const override { return Protocol::kPostgres; }
  bool encrypted() const override { return session_.verdict() == pg::Verdict::kEncrypted; }
  bool rejected() const override { return session_.verdict() == pg::Verdict::kNotPostgres; }

 private:
  bool fill(RecordOut& out, const pg::Exchange& ex, uint64_t end_hint) override {
    using K = pg::Exchange::Kind;
    // Connection set-up is a record only when it failed (bad password,
    // unknown database); after an accepted SSLRequest the connection is
    // decoded from its TLS plaintext, or gets an "encrypted (TLS), not
    // decoded" record (ConnTracker, encrypted()); a cancel request has no
    // answer to time.
    if (ex.kind == K::kStartup && ex.sqlstate.empty() && ex.error_type.empty()) return false;
    if (ex.kind == K::kSslRequest || ex.kind == K::kGssEncRequest || ex.kind == K::kCancel)
      return false;
    Record& r = out.scratch;
    const bool answered = ex.first_response_ts_ns != 0;
    fill_request_basics(r, "postgresql", session_.side(), out.id, out.clock, ex.first_ts_ns,
                        answered || ex.complete ? ex.last_ts_ns : 0, ex.first_response_ts_ns,
                        std::max(end_hint, ex.last_ts_ns));
    r.complete = ex.complete && (ex.error_type.empty() || ex.error_type == "skipped");
    r.set("db.system.name", std::string("postgresql"));
    if (!ex.database.empty()) r.set("db.namespace", ex.database);
    std::string op = ex.operation;
    if (op.empty() && ex.kind == pg::Exchange::Kind::kStartup) op = "STARTUP";
    if (!op.empty()) r.set("db.operation.name", op);
    if (ex.text_known && !ex.text.empty())
      r.set("db.query.text", out.opt.redact ? sql::sanitize(ex.text, sql::Dialect::kPostgres)
                                            : ex.text);
    else if (ex.kind == pg::Exchange::Kind::kExecute)
      r.set("db.stored_procedure.name", ex.statement_name.empty() ? std::string("(unnamed)")
                                                                  : ex.statement_name);
    if (ex.kind == pg::Exchange::Kind::kPrepare) r.set("odigos.db.prepare", true);
    if (ex.rows >= 0) {
      if (returns_rows(op)) r.set("db.response.returned_rows", ex.rows);
      else r.set("odigos.db.affected_rows", ex.rows);
    }
    set_connection_attrs(r, out.id);
    std::string error = ex.error_type == "skipped" ? std::string() : ex.error_type;
    if (!ex.sqlstate.empty()) {
      r.set("db.response.status_code", ex.sqlstate);
      if (error.empty()) error = ex.sqlstate;
      if (!ex.error_message.empty()) r.set("odigos.db.error.message", ex.error_message);
    }
    if (ex.error_type == "skipped") r.set("odigos.db.skipped", true);
    if (!error.empty()) r.set("error.type", error);
    if (out.id.retransmits) r.set("odigos.tcp.retransmits", int64_t(out.id.retransmits));
    if (ex.truncated || ex.text_truncated) r.set("odigos.capture.truncated", true);
    return true;
  }
};

} // namespace

std::unique_ptr<Decoder> make_postgres_decoder(proto::Side side) {
  return std::make_unique<PostgresDecoder>(side);
}

} // namespace odigos
