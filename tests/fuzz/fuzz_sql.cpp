// libFuzzer target: sql::sanitize and sql::operation.
//
// Byte 0 picks the dialect (bit 0) and the mode (bit 1):
//  - raw: the rest is SQL text as is. Invariants: no crash, the output is
//    never longer than the input, sanitising the output changes nothing,
//    operation() is empty or upper-case letters.
//  - generated: the rest drives a generator of well-formed SQL made of a
//    skeleton (keywords, identifiers, operators: no digit, no '~') and
//    literals and comments whose content is drawn from an alphabet holding
//    '~' and digits besides every quoting character. Invariants: the output
//    contains no '~' and no digit (no literal byte survives), plus the raw
//    invariants.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocols/sql/sanitize.hpp"

using odigos::sql::Dialect;

namespace {

void check_common(std::string_view in, Dialect d) {
  const std::string out = odigos::sql::sanitize(in, d);
  if (out.size() > in.size()) __builtin_trap();
  if (odigos::sql::sanitize(out, d) != out) __builtin_trap();
  const std::string op = odigos::sql::operation(in);
  if (op.size() > 32) __builtin_trap();
  for (char c : op)
    if (c < 'A' || c > 'Z') __builtin_trap();
}

struct Gen {
  const uint8_t* p;
  size_t n;
  size_t i = 0;
  bool more() const { return i < n; }
  uint8_t next() { return i < n ? p[i++] : 0; }
};

constexpr std::string_view kAlphabet = "~~'\"\\$*/-#\n\r 0123456789xe.;()`aZ";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kHex = "0123456789abcdefABCDEF";
constexpr const char* kWords[] = {"SELECT", "FROM", "WHERE", "t", "col_a", "AND", "OR", "=", "(", ")",
                                  ",", "*", "+", "-", "::", ".", ";", "IN", "NULL", "TRUE", "FALSE",
                                  "<>", "||", "x", "e", "b", "n", "u", "U", "?", "@v", "/", "!"};

std::string content(Gen& g) {
  std::string s;
  const size_t len = g.next() % 16;
  for (size_t k = 0; k < len; ++k) s += kAlphabet[g.next() % kAlphabet.size()];
  return s;
}

std::string from(Gen& g, std::string_view set, size_t min_len) {
  std::string s;
  const size_t len = min_len + g.next() % 8;
  for (size_t k = 0; k < len; ++k) s += set[g.next() % set.size()];
  return s;
}

std::string without(std::string s, std::string_view drop) {
  std::string r;
  for (char c : s)
    if (drop.find(c) == std::string_view::npos) r += c;
  return r;
}

// Quotes `c` with `q`: q is doubled or (when `backslash`) escaped, as `bit` says;
// a backslash is escaped when the literal has backslash escapes.
std::string quote(const std::string& c, char q, bool backslash, uint8_t bits) {
  std::string s(1, q);
  for (size_t k = 0; k < c.size(); ++k) {
    if (c[k] == q) s += (backslash && ((bits >> (k % 8)) & 1)) ? std::string{'\\', q} : std::string(2, q);
    else if (c[k] == '\\' && backslash) s += "\\\\";
    else s += c[k];
  }
  return s + q;
}

std::string number(Gen& g) {
  switch (g.next() % 4) {
    case 0: return from(g, kDigits, 1);
    case 1: return from(g, kDigits, 1) + "." + from(g, kDigits, 0);
    case 2: return "." + from(g, kDigits, 1) + "e-" + from(g, kDigits, 1);
    default: return "0x" + from(g, kHex, 1);
  }
}

std::string literal_pg(Gen& g) {
  const uint8_t kind = g.next() % 11;
  const uint8_t bits = g.next();
  switch (kind) {
    case 0: return quote(content(g), '\'', false, bits);
    case 1: return "E" + quote(content(g), '\'', true, bits);
    case 2: return "$$" + without(content(g), "$") + "$$";
    case 3: return "$tg$" + without(content(g), "$") + "$tg$";
    case 4: return "U&" + quote(content(g), '\'', false, bits);
    case 5: return "B'" + from(g, "01", 0) + "'";
    case 6: return "X'" + from(g, kHex, 0) + "'";
    case 7: return number(g);
    case 8: return "/* " + without(content(g), "*/") + " */";
    case 9: return "-- " + without(content(g), "\n\r") + "\n";
    default: return "N" + quote(content(g), '\'', false, bits);
  }
}

std::string literal_my(Gen& g) {
  const uint8_t kind = g.next() % 11;
  const uint8_t bits = g.next();
  switch (kind) {
    case 0: return quote(content(g), '\'', true, bits);
    case 1: return quote(content(g), '"', true, bits);
    case 2: return "x'" + from(g, kHex, 0) + "'";
    case 3: return "b'" + from(g, "01", 0) + "'";
    case 4: return number(g);
    case 5: return "0b" + from(g, "01", 1);
    case 6: return "/* " + without(content(g), "*") + " */";
    case 7: return "-- " + without(content(g), "\n") + "\n";
    case 8: return "#" + without(content(g), "\n") + "\n";
    case 9: return "_binary" + quote(content(g), '\'', true, bits);
    default: return "N" + quote(content(g), '\'', true, bits);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Dialect d = (data[0] & 1) ? Dialect::kMysql : Dialect::kPostgres;
  if (!(data[0] & 2)) {
    check_common(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), d);
    return 0;
  }
  Gen g{data + 1, size - 1};
  std::string sql;
  while (g.more() && sql.size() < 4096) {
    const uint8_t t = g.next();
    if (t & 1) {
      sql += d == Dialect::kMysql ? literal_my(g) : literal_pg(g);
    } else if ((t & 0x0e) == 0x0e) {
      sql += d == Dialect::kMysql ? "`a b`" : "\"A b\"";
    } else {
      sql += kWords[(t >> 1) % (sizeof(kWords) / sizeof(kWords[0]))];
    }
    sql += ' ';
  }
  const std::string out = odigos::sql::sanitize(sql, d);
  for (char c : out)
    if (c == '~' || (c >= '0' && c <= '9')) __builtin_trap();
  check_common(sql, d);
  return 0;
}
