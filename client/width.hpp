#pragma once
// Terminal display width of UTF-8 text, from a built-in table rather than wcwidth(): the result
// must not depend on the user's locale (LANG is often unset under cron, ssh and tests).

#include <cstddef>
#include <string_view>

namespace binds::client {

// Columns a terminal uses for `s`: East Asian wide and fullwidth characters and emoji count 2,
// combining marks, zero-width joiners/spaces, variation selectors and control characters 0,
// everything else 1. A byte that is not valid UTF-8 counts 1 (terminals show a replacement).
std::size_t display_width(std::string_view s) noexcept;

}  // namespace binds::client
