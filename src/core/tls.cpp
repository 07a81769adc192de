#include "core/tls.h"

#include <cstdlib>
#include <string>

namespace cascade {

const char* ca_bundle_override() {
  static const std::string path = [] {
    for (const char* name : {"CURL_CA_BUNDLE", "SSL_CERT_FILE"})
      if (const char* v = std::getenv(name); v && *v) return std::string(v);
    return std::string();
  }();
  return path.empty() ? nullptr : path.c_str();
}

}  // namespace cascade
