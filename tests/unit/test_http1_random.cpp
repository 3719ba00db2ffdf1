// Generated traffic: random segmentation must not change what is decoded,
// and damaged or random input must never crash or produce invalid messages.
#include <catch2/catch.hpp>

#include "protocols/http1/http1.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using namespace odigos::http1;

namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

struct Expect {
  std::string method, target;
  int status;
  uint64_t req_body, resp_body;
  size_t informational;
};

std::string chunked_body(Rng& r, const std::string& payload) {
  std::string out;
  size_t pos = 0;
  while (pos < payload.size()) {
    const size_t n = std::min(payload.size() - pos, 1 + r.below(40));
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx", n);
    out += hex;
    if (r.below(3) == 0) out += ";ext=\"v\"";
    out += "\r\n" + payload.substr(pos, n) + "\r\n";
    pos += n;
  }
  out += "0\r\n";
  if (r.below(2)) out += "X-Checksum: abc\r\n";
  return out + "\r\n";
}

std::string payload(Rng& r, size_t n) {
  std::string p;
  // Body bytes that resemble HTTP must never be parsed as heads.
  static const std::string kAlphabet = "GET / HTTP/1.1\r\n0123456789abcdef:;";
  for (size_t i = 0; i < n; ++i) p += kAlphabet[r.below(kAlphabet.size())];
  return p;
}

// A pipelined conversation: all requests, then all responses.
void generate(Rng& r, size_t count, std::string& reqs, std::string& resps,
              std::vector<Expect>& model) {
  static const char* kMethods[] = {"GET", "POST", "HEAD", "PUT", "DELETE"};
  static const int kStatus[] = {200, 201, 204, 304, 404, 500};
  for (size_t i = 0; i < count; ++i) {
    Expect e;
    e.method = kMethods[r.below(5)];
    e.target = "/r" + std::to_string(i);
    e.req_body = 0;
    reqs += e.method + " " + e.target + " HTTP/1.1\r\nHost: h\r\n";
    if (e.method == "POST" || e.method == "PUT") {
      const std::string body = payload(r, r.below(200));
      e.req_body = body.size();
      if (r.below(2)) reqs += "Transfer-Encoding: chunked\r\n\r\n" + chunked_body(r, body);
      else reqs += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    } else {
      reqs += "\r\n";
    }

    e.informational = r.below(4) == 0 ? 1 : 0;
    if (e.informational) resps += "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
    e.status = kStatus[r.below(6)];
    const bool no_body = e.method == "HEAD" || e.status == 204 || e.status == 304;
    const std::string body = payload(r, r.below(300));
    e.resp_body = no_body ? 0 : body.size();
    resps += "HTTP/1.1 " + std::to_string(e.status) + " X\r\n";
    if (r.below(2) && e.status != 304 && e.status != 204) {
      resps += "Transfer-Encoding: chunked\r\n\r\n";
      if (!no_body) resps += chunked_body(r, body);
    } else {
      resps += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
      if (!no_body) resps += body;
    }
    model.push_back(e);
  }
}

std::vector<std::string_view> split(Rng& r, std::string_view s, size_t max_piece) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const size_t n = std::min(s.size(), 1 + r.below(max_piece));
    out.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

std::vector<Exchange> feed(Side side, const std::vector<std::string_view>& reqs,
                           const std::vector<std::string_view>& resps) {
  Session s(side);
  const bool req_in = side == Side::kServer;
  for (auto p : reqs) {
    Segment g;
    g.ts_ns = 1;
    g.data = p;
    g.len = p.size();
    s.on_data(req_in, g);
  }
  for (auto p : resps) {
    Segment g;
    g.ts_ns = 2;
    g.data = p;
    g.len = p.size();
    s.on_data(!req_in, g);
  }
  CHECK(s.desyncs() == 0);
  return s.take_exchanges();
}

bool same(const Message& a, const Message& b) {
  if (a.headers.size() != b.headers.size()) return false;
  for (size_t i = 0; i < a.headers.size(); ++i)
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value)
      return false;
  return a.method == b.method && a.target == b.target && a.status == b.status &&
         a.reason == b.reason && a.head_size == b.head_size && a.body_size == b.body_size &&
         a.body == b.body && a.chunked == b.chunked && a.complete == b.complete &&
         a.first_ts_ns == b.first_ts_ns && a.last_ts_ns == b.last_ts_ns;
}

void check_valid(const Message& m, bool request) {
  if (request) {
    REQUIRE(!m.method.empty());
    for (char c : m.method) REQUIRE((c >= 'A' && c <= 'Z'));
    REQUIRE(!m.target.empty());
  } else {
    REQUIRE(m.status >= 100);
    REQUIRE(m.status <= 599);
  }
  REQUIRE(m.body.size() <= 4096);
  REQUIRE(m.body.size() <= m.body_size);
  for (const Header& h : m.headers) {
    REQUIRE(!h.name.empty());
    for (char c : h.name) REQUIRE(!(c >= 'A' && c <= 'Z'));
  }
}

} // namespace

TEST_CASE("http1 random segmentation decodes like the whole stream", "[http1][random]") {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Rng r{seed * 0x9e3779b97f4a7c15ull};
    std::string reqs, resps;
    std::vector<Expect> model;
    generate(r, 12, reqs, resps, model);
    const Side side = seed % 2 ? Side::kServer : Side::kClient;
    const auto whole = feed(side, {reqs}, {resps});
    INFO("seed " << seed);
    REQUIRE(whole.size() == model.size());
    for (size_t i = 0; i < model.size(); ++i) {
      const Exchange& x = whole[i];
      CHECK(x.request.method == model[i].method);
      CHECK(x.request.target == model[i].target);
      CHECK(x.request.body_size == model[i].req_body);
      REQUIRE(x.response);
      CHECK(x.response->status == model[i].status);
      CHECK(x.response->body_size == model[i].resp_body);
      CHECK(x.informational.size() == model[i].informational);
      CHECK(x.error_type.empty());
    }
    for (size_t max_piece : {1, 7, 64, 512}) {
      const auto parts = feed(side, split(r, reqs, max_piece), split(r, resps, max_piece));
      INFO("max piece " << max_piece);
      REQUIRE(parts.size() == whole.size());
      for (size_t i = 0; i < whole.size(); ++i) {
        CHECK(same(parts[i].request, whole[i].request));
        CHECK(same(*parts[i].response, *whole[i].response));
        CHECK(parts[i].informational.size() == whole[i].informational.size());
      }
    }
  }
}

TEST_CASE("http1 damaged traffic never yields invalid messages", "[http1][random]") {
  size_t decoded = 0, answered = 0;
  uint64_t desyncs = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Rng r{seed * 0x2545f4914f6cdd1dull};
    std::string reqs, resps;
    std::vector<Expect> model;
    generate(r, 6, reqs, resps, model);
    const Side side = static_cast<Side>(r.below(3));
    Session s(side);
    auto rq = split(r, reqs, 200);
    auto rs = split(r, resps, 200);
    size_t i = 0, j = 0;
    uint64_t ts = 0;
    while (i < rq.size() || j < rs.size()) {
      const bool take_req = j == rs.size() || (i < rq.size() && r.below(2));
      std::string_view piece = take_req ? rq[i++] : rs[j++];
      Segment g;
      g.ts_ns = ++ts;
      g.len = piece.size();
      g.gap_before = r.below(10) == 0;
      // Sometimes capture less than was moved.
      g.data = r.below(8) == 0 ? piece.substr(0, r.below(piece.size() + 1)) : piece;
      const bool req_dir_in = side != Side::kClient;
      s.on_data(take_req ? req_dir_in : !req_dir_in, g);
    }
    s.on_close(ts + 1, "connection_closed");
    desyncs += s.desyncs();
    for (const Exchange& x : s.take_exchanges()) {
      ++decoded;
      answered += x.response && x.response->complete;
      check_valid(x.request, true);
      if (x.response) check_valid(*x.response, false);
      for (const Message& m : x.informational) check_valid(m, false);
    }
  }
  // Damage is frequent, yet most traffic is still decoded (and some lost).
  CHECK(decoded > 300);
  CHECK(answered > 150);
  CHECK(desyncs > 50);
}

TEST_CASE("http1 random bytes never crash and are never decoded", "[http1][random]") {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    Rng r{seed};
    Session s(static_cast<Side>(seed % 3));
    for (int k = 0; k < 20 && !s.done(); ++k) {
      std::string bytes(1 + r.below(300), '\0');
      for (char& c : bytes) c = static_cast<char>(r.next());
      Segment g;
      g.ts_ns = static_cast<uint64_t>(k);
      g.data = bytes;
      g.len = bytes.size() + r.below(3) * 1000;
      s.on_data(r.below(2), g);
    }
    s.on_close(100, "connection_closed");
    CHECK(s.take_exchanges().empty());
    CHECK(s.verdict() != Verdict::kHttp1);
  }
}
