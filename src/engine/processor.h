// Processor: turns one response into rows (key, hash, image) and child messages for one stage.
// Pure CPU work with no I/O; thread-safe (runs on the worker pool).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/value.h"
#include "engine/plan.h"

namespace cascade {

struct Row {
  std::string key;    // canonical JSON array of key values
  uint64_t hash = 0;  // hash of the image's canonical JSON
  Value image;        // object: key columns, attached columns, then record fields
};

struct Processed {
  std::vector<Row> rows;  // unique by key (an identical repeat is dropped, a differing one refused)
  // Child message bodies (canonical JSON), per emit in plan order.
  std::vector<std::pair<size_t, std::vector<std::string>>> children;
  uint64_t records_seen = 0;
  uint64_t filtered_out = 0;
  uint64_t duplicates = 0;
};

// Identity of the request a message makes: staging groups rows by it to see what is gone.
uint64_t scope_of(const CompiledStage& stage, const std::string& rendered_request);

// Builds rows and children from a response body (which it may pad in place). Throws DataError
// with a reason when the body or a record cannot be used.
Processed process_response(const Plan& plan, const CompiledStage& stage, const Value& message,
                           std::string& body);

// Joins the pages of one listing, in page order, into one Processed (the pages are consumed): a
// record on two pages (an overlap while the listing shifted) is kept once, a key on two pages
// with other content is refused with DataError, as within one page.
Processed merge_pages(std::vector<Processed>& pages);

// Canonical JSON array of key values: the staging key.
std::string key_string(const CompiledStage& stage, const Value& image);

}  // namespace cascade
