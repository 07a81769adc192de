// Where TLS clients find the certificate authorities to trust, when not where the build expects
// them: a host without Debian's bundle path (Amazon Linux, in a Lambda package that carries its
// own bundle) names one through CURL_CA_BUNDLE (the variable the curl tool reads) or
// SSL_CERT_FILE (OpenSSL's). Thread-safe.
#pragma once

namespace cascade {

// The bundle file to trust instead of the TLS library's built-in default, or nullptr for the
// default. Read from the environment once, at the first call.
const char* ca_bundle_override();

}  // namespace cascade
