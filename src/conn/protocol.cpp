#include "conn/protocol.hpp"

namespace odigos {

const char* to_string(Protocol p) {
  switch (p) {
  case Protocol::kHttp1: return "http";
  case Protocol::kRedis: return "redis";
  case Protocol::kPostgres: return "postgresql";
  case Protocol::kMysql: return "mysql";
  default: return "unknown";
  }
}

bool parse_protocol(std::string_view n, Protocol& out) {
  if (n == "http" || n == "http1" || n == "http/1.1") out = Protocol::kHttp1;
  else if (n == "redis") out = Protocol::kRedis;
  else if (n == "postgresql" || n == "postgres" || n == "pg") out = Protocol::kPostgres;
  else if (n == "mysql" || n == "mariadb") out = Protocol::kMysql;
  else return false;
  return true;
}

} // namespace odigos
