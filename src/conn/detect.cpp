// Which protocol a connection speaks: options first (--protocol, port hints),
// then the first captured bytes.
#include "conn/decoder.hpp"
#include "protocols/mysql/mysql.hpp"
#include "protocols/postgres/postgres.hpp"
#include "protocols/redis/redis.hpp"

namespace odigos {

Protocol detect_protocol(std::string_view first, bool ingress, proto::Side side,
                         uint16_t local_port, uint16_t remote_port, const DetectOptions& opt) {
  if (opt.forced != Protocol::kUnknown) return opt.forced;
  for (auto& [port, p] : opt.port_hints)
    if (port == local_port || port == remote_port) return p;
  // Bytes the client wrote: read by a server, written by a client; either
  // when the side is not known.
  const bool from_client = side == proto::Side::kUnknown ||
                           (side == proto::Side::kServer) == ingress;
  if (http1::looks_like_request(first) || http1::looks_like_response(first) ||
      http1::looks_like_h2_preface(first))
    return opt.enabled_has(Protocol::kHttp1) ? Protocol::kHttp1 : Protocol::kUnknown;
  if (from_client && opt.enabled_has(Protocol::kRedis) && redis::looks_like_redis_command(first))
    return Protocol::kRedis;
  if (opt.enabled_has(Protocol::kPostgres) && pg::looks_like_pg_startup(first))
    return Protocol::kPostgres;
  // MySQL: the server speaks first (its greeting).
  if (opt.enabled_has(Protocol::kMysql) && (!from_client || side == proto::Side::kUnknown) &&
      mysql::looks_like_mysql_handshake(first))
    return Protocol::kMysql;
  // Connections open before tracing started: regular messages of either end.
  if (opt.enabled_has(Protocol::kPostgres) && side != proto::Side::kUnknown &&
      pg::looks_like_pg_midstream(first, from_client))
    return Protocol::kPostgres;
  if (opt.enabled_has(Protocol::kMysql) && side != proto::Side::kUnknown && from_client &&
      mysql::looks_like_mysql_command(first))
    return Protocol::kMysql;
  // HTTP/1 last: its decoder also recognises connections joined mid-stream
  // (a response first, a body part) and rejects what is not HTTP itself.
  if (opt.enabled_has(Protocol::kHttp1)) return Protocol::kHttp1;
  return Protocol::kUnknown;
}

std::unique_ptr<Decoder> make_decoder(Protocol p, proto::Side side, const DecoderLimits& lim) {
  switch (p) {
  case Protocol::kHttp1: return make_http1_decoder(side, lim);
  case Protocol::kRedis: return make_redis_decoder(side);
  case Protocol::kPostgres: return make_postgres_decoder(side);
  case Protocol::kMysql: return make_mysql_decoder(side);
  default: return nullptr;
  }
}

} // namespace odigos
