// Bridge from simdjson on-demand values to Value, for code that walks a document itself
// (record selection) and materialises only the parts it keeps. Thread-safe (no shared state).
#pragma once

#include <simdjson.h>

#include "core/value.h"

namespace cascade {

// Materialises an on-demand value (and everything below it). Throws simdjson_error on bad input
// and DEPTH_ERROR for containers nested more than 1000 levels deep (the stack is the limit).
Value from_ondemand(simdjson::ondemand::value v);

}  // namespace cascade
