#include "core/record.hpp"

namespace odigos {

const char* to_string(RecordKind k) {
  switch (k) {
  case RecordKind::kRequest: return "request";
  case RecordKind::kConnection: return "connection";
  case RecordKind::kLoss: return "loss";
  }
  return "unknown";
}

const char* to_string(RecordSide s) {
  switch (s) {
  case RecordSide::kServer: return "server";
  case RecordSide::kClient: return "client";
  case RecordSide::kUnknown: return "unknown";
  }
  return "unknown";
}

} // namespace odigos
