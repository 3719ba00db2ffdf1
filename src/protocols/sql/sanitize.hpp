// SQL text sanitisation for db.query.text (OpenTelemetry database semantic
// conventions): literal values are replaced by `?`, everything else is kept
// byte for byte. Shared by the PostgreSQL and MySQL decoders' record builders.
//
// What counts as a literal (each becomes one `?`):
//   - single-quoted strings, '' doubling; MySQL: backslash escapes too;
//     PostgreSQL: E'..' (backslash escapes), U&'..', N'..', B'..', X'..'
//     (the prefix is part of the literal); MySQL: N'..', X'..', B'..';
//     a MySQL charset introducer (_utf8mb4'..') keeps its name: _utf8mb4?
//   - PostgreSQL dollar-quoted strings: $$..$$, $tag$..$tag$
//   - MySQL double-quoted strings (default sql_mode, no ANSI_QUOTES), with ""
//     doubling and backslash escapes. In PostgreSQL "x" is an identifier: kept.
//   - numbers: 42, 3.14, 1e10, .5, 5., 0x1f, 0b01 (and PostgreSQL 16's 0o17
//     and 1_000); digits inside identifiers (t1, col_2) are not numbers, nor
//     PostgreSQL $1 placeholders, nor MySQL identifiers that begin with a
//     digit (1col).
// TRUE, FALSE and NULL are keywords and stay. A sign is an operator: -5 → -?.
//
// Comments are dropped (-- to end of line, /* */ — nested in PostgreSQL —,
// and MySQL #), so nothing written in them can leak. A dropped comment
// leaves one space where it separated two tokens, and nothing where
// whitespace already does. Exceptions: MySQL executable comments /*! ..*/
// and /*M! ..*/ hold SQL that the server runs: their marker and version are
// kept and their content is sanitised like the rest; in MySQL a comment that
// directly follows "--" is kept as "/**/" (dropping it could turn "--" into a
// comment start). Optimizer hints /*+ ..*/ are comments: dropped.
//
// A literal or comment that does not end before the text does (a truncated
// capture) becomes `?` / is dropped up to the end. One pass, linear time, no
// regex; the result is never longer than the input, and sanitising a
// sanitised text changes nothing.
#pragma once

#include <string>
#include <string_view>

namespace odigos::sql {

enum class Dialect { kPostgres, kMysql };

std::string sanitize(std::string_view sql, Dialect dialect);

// The statement's first keyword, upper-cased (SELECT, INSERT, UPDATE, DELETE,
// BEGIN, COMMIT, WITH, CALL, SET, SHOW, ...), after whitespace, comments,
// opening parentheses and semicolons; the content of a MySQL /*! */ comment
// counts as SQL. Empty when the text does not start with a word (or the word
// is longer than 32 letters).
std::string operation(std::string_view sql);

} // namespace odigos::sql
