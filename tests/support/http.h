// Blocking HTTP calls for tests (libcurl easy, 30 s timeout). Thread-safe.
#pragma once

#include <string>

namespace cascade::testing {

// GETs url and returns the body whatever the status; *status gets the HTTP status.
// Throws std::runtime_error (with curl's reason) if no HTTP response arrives.
std::string http_get(const std::string& url, long* status = nullptr);
// As above; *content_type gets the Content-Type header ("" when absent).
std::string http_get(const std::string& url, long* status, std::string* content_type);
// POSTs body (application/json) to url; same contract as http_get.
std::string http_post(const std::string& url, const std::string& body = "", long* status = nullptr);

}  // namespace cascade::testing
