// The Lambda function package: what `cascade aws package --out DIR` writes, the CodeUri of the
// template's functions. Amazon Linux 2023's glibc is older than the one cascade is built against,
// so the package carries the loader and every shared library the binary was linked with, and a
// statically linked `bootstrap` that starts the binary through that loader:
//   DIR/bootstrap                 cascade-bootstrap (static, no shell needed)
//   DIR/cascade                   this binary (its debug information stripped, when `strip` is
//                                 installed)
//   DIR/lib/*.so*                 its shared libraries, from ldd, the loader among them
//   DIR/pipeline.yaml             the pipeline file as written (its ${VARS} unresolved)
// Not thread-safe (runs ldd, writes files).
#pragma once

#include <string>
#include <vector>

namespace cascade::deploy {

struct PackageOptions {
  std::string out;        // DIR; created when missing; files in it are replaced
  std::string pipeline;   // copied as DIR/pipeline.yaml; empty: none
  std::string binary;     // the binary to package; empty: this process's (/proc/self/exe)
  std::string launcher;   // cascade-bootstrap; empty: beside the binary, or ../lib/cascade/
  std::string ca_bundle;  // copied as DIR/ca-certificates.crt; empty: kDebianCaBundle
};

// Where Debian keeps the certificate authorities every TLS client here trusts.
inline constexpr const char* kDebianCaBundle = "/etc/ssl/certs/ca-certificates.crt";

struct PackageResult {
  std::vector<std::string> files;  // written, relative to DIR
  uint64_t bytes = 0;
};

// Writes the package. Throws std::runtime_error naming what is missing (no launcher, ldd
// failing, a library ldd could not find, an unwritable DIR).
PackageResult write_package(const PackageOptions& options);

// The shared libraries ldd lists for `binary` (absolute paths, the loader included). Throws
// std::runtime_error when ldd cannot be run or reports a library "not found".
std::vector<std::string> shared_libraries(const std::string& binary);

}  // namespace cascade::deploy
