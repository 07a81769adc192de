#include "deploy/package.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cascade::deploy {

namespace {

// Runs argv (no shell) and returns its standard output; throws when it cannot be run or fails.
std::string capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format(
        "{} failed (exit status {}){}", argv[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1,
        WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": is it installed?" : ""));
  return out;
}

uint64_t copy_into(const fs::path& from, const fs::path& to, fs::perms mode) {
  fs::create_directories(to.parent_path());
  // Follows symlinks: the package holds the files themselves under the names the binary asks for.
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, mode);
  return fs::file_size(to);
}

}  // namespace

std::vector<std::string> shared_libraries(const std::string& binary) {
  std::string out = capture({"ldd", binary});
  std::vector<std::string> libs;
  std::set<std::string> seen;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    // "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "\t/lib64/ld-linux-x86-64.so.2
    // (0x...)", "\tlinux-vdso.so.1 (0x...)" (in the kernel, nothing to copy).
    if (line.find("not found") != std::string::npos)
      throw std::runtime_error(fmt::format("ldd {}: a library is missing: {}", binary, line));
    size_t arrow = line.find("=>");
    size_t start = line.find('/', arrow == std::string::npos ? 0 : arrow);
    if (start == std::string::npos) continue;
    size_t end = line.find(" (", start);
    std::string path =
        line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (seen.insert(path).second) libs.push_back(path);
  }
  if (libs.empty())
    throw std::runtime_error(fmt::format("ldd {}: no shared library listed", binary));
  return libs;
}

PackageResult write_package(const PackageOptions& o) {
  if (o.out.empty()) throw std::runtime_error("aws package: --out DIR is required");
  fs::path binary = o.binary.empty() ? fs::read_symlink("/proc/self/exe") : fs::path(o.binary);
  fs::path launcher = o.launcher;
  if (launcher.empty()) {
    for (const fs::path& candidate :
         {binary.parent_path() / "cascade-bootstrap",
          binary.parent_path().parent_path() / "lib" / "cascade" / "cascade-bootstrap"})
      if (fs::exists(candidate)) {
        launcher = candidate;
        break;
      }
    if (launcher.empty())
      throw std::runtime_error(fmt::format(
          "aws package: cascade-bootstrap (the static launcher) is neither beside {} nor in "
          "../lib/cascade/",
          binary.string()));
  }
  if (!o.pipeline.empty() && !fs::is_regular_file(o.pipeline))
    throw std::runtime_error(fmt::format("aws package: cannot read pipeline '{}'", o.pipeline));
  const fs::path dir = o.out;
  fs::create_directories(dir / "lib");
  const auto exec = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                    fs::perms::others_read | fs::perms::others_exec;
  const auto data = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                    fs::perms::others_read;
  PackageResult r;
  r.bytes += copy_into(launcher, dir / "bootstrap", exec);
  r.files.push_back("bootstrap");
  copy_into(binary, dir / "cascade", exec);
  // Debug information is most of a RelWithDebInfo binary (~80 of ~90 MB) and no use to Lambda.
  try {
    capture({"strip", "--strip-debug", (dir / "cascade").string()});
  } catch (const std::exception&) {
    // No binutils: the package is larger, not wrong.
  }
  r.bytes += fs::file_size(dir / "cascade");
  r.files.push_back("cascade");
  bool loader = false;
  for (const auto& lib : shared_libraries(binary.string())) {
    fs::path name = fs::path(lib).filename();
    // The bootstrap names the loader by the x86-64 ABI's name, wherever the host keeps it.
    if (name.string().starts_with("ld-linux")) loader = true;
    r.bytes += copy_into(lib, dir / "lib" / name, exec);
    r.files.push_back("lib/" + name.string());
  }
  if (!loader)
    throw std::runtime_error(
        fmt::format("ldd {}: no dynamic loader (ld-linux-x86-64.so.2) listed", binary.string()));
  // Debian's libcurl looks for /etc/ssl/certs/ca-certificates.crt, which Amazon Linux does not
  // have: the package carries this host's bundle and the bootstrap names it (CURL_CA_BUNDLE).
  const fs::path bundle = o.ca_bundle.empty() ? fs::path(kDebianCaBundle) : fs::path(o.ca_bundle);
  if (!fs::is_regular_file(bundle))
    throw std::runtime_error(fmt::format(
        "aws package: no CA bundle at {} (Debian: apt-get install ca-certificates), so the "
        "function could not verify any https vendor",
        bundle.string()));
  r.bytes += copy_into(bundle, dir / "ca-certificates.crt", data);
  r.files.push_back("ca-certificates.crt");
  if (!o.pipeline.empty()) {
    r.bytes += copy_into(o.pipeline, dir / "pipeline.yaml", data);
    r.files.push_back("pipeline.yaml");
  }
  return r;
}

}  // namespace cascade::deploy
