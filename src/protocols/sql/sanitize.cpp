// One left-to-right pass over the text; each construct is recognised at its
// first byte and skipped as a whole, so every byte is looked at a bounded
// number of times (dollar-quote closing tags included, see dollar_close).
#include "protocols/sql/sanitize.hpp"

#include <cstddef>

namespace odigos::sql {
namespace {

bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_bin(unsigned char c) { return c == '0' || c == '1'; }
bool is_oct(unsigned char c) { return c >= '0' && c <= '7'; }
// Bytes of an unquoted identifier (both dialects accept '$' after the first
// byte, MySQL also as the first; bytes >= 0x80 are UTF-8 letters).
bool is_word(unsigned char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '$' || c >= 0x80; }
// A dollar-quote tag: an identifier without '$'.
bool is_tag_start(unsigned char c) { return is_alpha(c) || c == '_' || c >= 0x80; }
bool is_tag_char(unsigned char c) { return is_tag_start(c) || is_digit(c); }
unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

class Sanitizer {
 public:
  Sanitizer(std::string_view s, Dialect d) : s_(s), n_(s.size()), my_(d == Dialect::kMysql) {
    out_.reserve(n_);
  }

  std::string run() {
    size_t i = 0;
    while (i < n_) i = step(i);
    return std::move(out_);
  }

 private:
  std::string_view s_;
  size_t n_;
  bool my_;
  std::string out_;

  unsigned char at(size_t i) const { return i < n_ ? static_cast<unsigned char>(s_[i]) : 0; }
  void copy(size_t from, size_t to) { out_.append(s_.data() + from, to - from); }

  // Index just past the quote that closes the literal opened at `open`, or
  // the end of the text when it is not closed.
  size_t quoted_end(size_t open, char q, bool backslash) const {
    size_t j = open + 1;
    while (j < n_) {
      const char c = s_[j];
      if (backslash && c == '\\') {
        j += 2;
      } else if (c == q) {
        if (at(j + 1) == static_cast<unsigned char>(q)) j += 2;
        else return j + 1;
      } else {
        ++j;
      }
    }
    return n_;
  }

  // PostgreSQL: $$ or $tag$ at i; returns the index after it, or 0.
  size_t dollar_open_end(size_t i) const {
    size_t j = i + 1;
    if (at(j) == '$') return j + 1;
    if (!is_tag_start(at(j))) return 0;
    while (j < n_ && is_tag_char(at(j))) ++j;
    return at(j) == '$' ? j + 1 : 0;
  }

  // Index after the closing delimiter s_[open, open+len) searched from
  // `from`, or the end. Linear: a comparison that starts at a '$' only
  // matches tag bytes, which contain no '$', so it stops at or before the
  // next '$', where the next comparison starts.
  size_t dollar_close(size_t from, size_t open, size_t len) const {
    size_t k = from;
    while (true) {
      k = s_.find('$', k);
      if (k == std::string_view::npos) return n_;
      size_t m = 1;
      while (m < len && k + m < n_ && s_[k + m] == s_[open + m]) ++m;
      if (m == len) return k + len;
      ++k;
    }
  }

  // /* at i: index after the comment (PostgreSQL comments nest).
  size_t block_comment_end(size_t i) const {
    size_t j = i + 2;
    int depth = 1;
    while (j < n_) {
      if (s_[j] == '*' && at(j + 1) == '/') {
        j += 2;
        if (--depth == 0) return j;
      } else if (!my_ && s_[j] == '/' && at(j + 1) == '*') {
        j += 2;
        ++depth;
      } else {
        ++j;
      }
    }
    return n_;
  }

  // End of a line comment: the newline itself is kept. PostgreSQL ends it at
  // CR or LF, MySQL at LF.
  size_t line_end(size_t i) const {
    for (size_t j = i; j < n_; ++j)
      if (s_[j] == '\n' || (!my_ && s_[j] == '\r')) return j;
    return n_;
  }

  // A comment [.., next) is dropped.
  void drop_comment(size_t next, bool line, bool unterminated = false) {
    if (my_ && out_.size() >= 2 && out_[out_.size() - 1] == '-' && out_[out_.size() - 2] == '-') {
      // "--" that was not a comment (no space after it) must not become one.
      // An unterminated block comment (a capture cut inside it) runs to the end of
      // the text: a line comment is the same there, and never longer.
      out_ += (line || unterminated) ? "#" : "/**/";
      return;
    }
    if (!out_.empty() && !is_space(static_cast<unsigned char>(out_.back())) && next < n_ &&
        !is_space(at(next)))
      out_ += ' ';
  }

  // Numeric literal at i: returns its end. word_like: only [0-9A-Za-z_]
  // bytes, so in MySQL it may be the start of an identifier (1col).
  size_t number_end(size_t i, bool& word_like) const {
    word_like = true;
    const unsigned char c = at(i), x = lower(at(i + 1));
    const bool pg = !my_;
    auto run = [&](size_t j, bool (*ok)(unsigned char)) {
      // PostgreSQL 16 accepts '_' between digits.
      while (j < n_ && (ok(at(j)) || (pg && at(j) == '_' && ok(at(j + 1))))) ++j;
      return j;
    };
    if (c == '0' && x == 'x' && is_hex(at(i + 2))) return run(i + 2, is_hex);
    if (c == '0' && x == 'b' && is_bin(at(i + 2))) return run(i + 2, is_bin);
    if (pg && c == '0' && x == 'o' && is_oct(at(i + 2))) return run(i + 2, is_oct);
    size_t j = c == '.' ? i : run(i, is_digit);
    if (at(j) == '.') {
      word_like = false;
      j = run(j + 1, is_digit);
    }
    if (lower(at(j)) == 'e') {
      size_t k = j + 1;
      if (at(k) == '+' || at(k) == '-') ++k;
      if (is_digit(at(k))) {
        if (k != j + 1) word_like = false;
        j = run(k, is_digit);
      }
    }
    return j;
  }

  bool after_identifier() const {
    if (out_.empty()) return false;
    const unsigned char b = static_cast<unsigned char>(out_.back());
    return is_word(b) || b == '"' || b == '`';
  }

  // One-letter string prefixes: X'..' B'..' N'..' in both, E'..' in PostgreSQL.
  bool is_string_prefix(std::string_view w) const {
    if (w.size() != 1) return false;
    const unsigned char c = lower(static_cast<unsigned char>(w[0]));
    return c == 'x' || c == 'b' || c == 'n' || (!my_ && c == 'e');
  }

  size_t step(size_t i) {
    const unsigned char c = at(i);
    if (c == '-' && at(i + 1) == '-' &&
        (!my_ || i + 2 >= n_ || is_space(at(i + 2)) || at(i + 2) < 0x20)) {
      const size_t e = line_end(i + 2);
      drop_comment(e, true);
      return e;
    }
    if (c == '#' && my_) {
      const size_t e = line_end(i + 1);
      drop_comment(e, true);
      return e;
    }
    if (c == '/' && at(i + 1) == '*') {
      if (my_) {
        const size_t m = at(i + 2) == '!' ? 3 : (at(i + 2) == 'M' && at(i + 3) == '!') ? 4 : 0;
        if (m) {
          // Executable comment: keep the marker and version, sanitise the SQL inside.
          size_t e = i + m;
          while (e < n_ && e < i + m + 6 && is_digit(at(e))) ++e;
          copy(i, e);
          return e;
        }
      }
      const size_t e = block_comment_end(i);
      // Unterminated: runs to the end of the text without its "*/" (a cut capture).
      const bool open = e - i < 4 || at(e - 2) != '*' || at(e - 1) != '/';
      drop_comment(e, false, open);
      return e;
    }
    if (c == '\'') {
      out_ += '?';
      return quoted_end(i, '\'', my_);
    }
    if (c == '"') {
      const size_t e = quoted_end(i, '"', my_);
      if (my_) out_ += '?';
      else copy(i, e); // PostgreSQL: a quoted identifier
      return e;
    }
    if (c == '`' && my_) {
      const size_t e = quoted_end(i, '`', false);
      copy(i, e);
      return e;
    }
    if (c == '$' && !my_) {
      if (is_digit(at(i + 1))) { // $1: a placeholder, not a value
        size_t e = i + 1;
        while (is_digit(at(e))) ++e;
        copy(i, e);
        return e;
      }
      if (const size_t o = dollar_open_end(i)) {
        out_ += '?';
        return dollar_close(o, i, o - i);
      }
      out_ += '$';
      return i + 1;
    }
    if (is_digit(c) || (c == '.' && is_digit(at(i + 1)) && !after_identifier())) {
      bool word_like = false;
      size_t e = number_end(i, word_like);
      if (my_ && word_like && is_word(at(e))) {
        // MySQL identifiers may begin with digits: 1col, 0x1fg.
        while (is_word(at(e))) ++e;
        copy(i, e);
        return e;
      }
      out_ += '?';
      return e;
    }
    if (is_word(c) && (c != '$' || my_)) {
      size_t e = i + 1;
      while (e < n_ && is_word(at(e))) ++e;
      const std::string_view w = s_.substr(i, e - i);
      if (at(e) == '\'' && is_string_prefix(w)) {
        out_ += '?';
        // E'..' has backslash escapes; MySQL strings always do.
        return quoted_end(e, '\'', my_ || lower(at(i)) == 'e');
      }
      if (!my_ && w.size() == 1 && lower(at(i)) == 'u' && at(e) == '&' && at(e + 1) == '\'') {
        out_ += '?';
        return quoted_end(e + 1, '\'', false);
      }
      copy(i, e);
      return e;
    }
    out_ += static_cast<char>(c);
    return i + 1;
  }
};

} // namespace

std::string sanitize(std::string_view sql, Dialect dialect) { return Sanitizer(sql, dialect).run(); }

std::string operation(std::string_view sql) {
  const size_t n = sql.size();
  auto at = [&](size_t k) -> unsigned char { return k < n ? static_cast<unsigned char>(sql[k]) : 0; };
  size_t i = 0;
  while (i < n) {
    const unsigned char c = at(i);
    if (is_space(c) || c == '(' || c == ';') {
      ++i;
    } else if ((c == '-' && at(i + 1) == '-') || c == '#') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && at(i + 1) == '*') {
      const size_t m = at(i + 2) == '!' ? 3 : (at(i + 2) == 'M' && at(i + 3) == '!') ? 4 : 0;
      if (m) { // MySQL executable comment: its content is SQL
        i += m;
        while (is_digit(at(i))) ++i;
        continue;
      }
      const size_t e = sql.find("*/", i + 2);
      i = e == std::string_view::npos ? n : e + 2;
    } else {
      break;
    }
  }
  size_t j = i;
  while (j < n && is_alpha(at(j))) ++j;
  if (j == i || j - i > 32 || is_word(at(j))) return {};
  std::string op(sql.substr(i, j - i));
  for (char& ch : op)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
  return op;
}

} // namespace odigos::sql
