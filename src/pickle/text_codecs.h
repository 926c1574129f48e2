// Text decodings used by protocol-0 opcodes and by repr(). Inputs come from files: every
// function validates and throws Error(kCorrupt) with the opcode offset it is given.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ptpack::pickle {

// "-123" -> minimal little-endian two's-complement bytes (LONG's text form).
std::string decimal_to_le_bytes(std::string_view text, uint64_t at);

// Little-endian two's-complement bytes -> decimal text (for printing big ints).
std::string le_bytes_to_decimal(std::string_view bytes);

// STRING's argument: a Python 2 repr ('abc' or "a'b") -> the raw bytes it denotes.
std::string unquote_python_string(std::string_view quoted, uint64_t at);

// UNICODE's argument: raw-unicode-escape (latin-1 plus \uXXXX, \UXXXXXXXX) -> UTF-8.
std::string raw_unicode_escape_to_utf8(std::string_view text, uint64_t at);

// Appends the UTF-8 encoding of a code point (surrogates encoded as-is, like Python's
// 'surrogatepass'). Throws for values above U+10FFFF.
void append_utf8(std::string& out, uint32_t code_point, uint64_t at);

}  // namespace ptpack::pickle
