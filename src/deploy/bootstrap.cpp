// cascade-bootstrap: the `bootstrap` of the Lambda package (deploy/package.h). Linked statically,
// so it runs on any Linux whatever its glibc, and needs no shell: it starts the packaged binary
// through the packaged loader, with the packaged libraries only:
//   TASK/lib/ld-linux-x86-64.so.2 --library-path TASK/lib TASK/cascade lambda
// with CURL_CA_BUNDLE naming the packaged TASK/ca-certificates.crt unless it or SSL_CERT_FILE
// is set.
// TASK is $LAMBDA_TASK_ROOT (Lambda sets /var/task), else the directory this file is in.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  std::string task;
  if (const char* root = std::getenv("LAMBDA_TASK_ROOT"); root && *root) {
    task = root;
  } else {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
      task.assign(buf, static_cast<size_t>(n));
    } else if (argc > 0) {
      task = argv[0];
    }
    size_t slash = task.rfind('/');
    task = slash == std::string::npos ? "." : task.substr(0, slash);
  }
  // The packaged CA bundle, unless the function's configuration names another one.
  const std::string bundle = task + "/ca-certificates.crt";
  auto set = [](const char* name) {
    const char* v = std::getenv(name);
    return v && *v;
  };
  if (!set("CURL_CA_BUNDLE") && !set("SSL_CERT_FILE") && access(bundle.c_str(), R_OK) == 0)
    setenv("CURL_CA_BUNDLE", bundle.c_str(), 1);
  const std::string lib = task + "/lib";
  const std::string loader = lib + "/ld-linux-x86-64.so.2";
  const std::string binary = task + "/cascade";
  std::string lambda = "lambda";
  std::string library_path = "--library-path";
  char* args[] = {
      const_cast<char*>(loader.c_str()), library_path.data(), const_cast<char*>(lib.c_str()),
      const_cast<char*>(binary.c_str()), lambda.data(),       nullptr};
  execv(loader.c_str(), args);
  std::fprintf(stderr,
               "{\"level\":\"error\",\"msg\":\"bootstrap: cannot start %s through %s: %s\"}\n",
               binary.c_str(), loader.c_str(), std::strerror(errno));
  return 127;
}
