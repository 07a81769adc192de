// S3 objects over Client::rest (path-style requests, so one endpoint serves every bucket, moto
// included): put, get, list, bucket creation, and S3Upload, which streams an object of any size
// as a multipart upload. Not thread-safe (one owner thread, like its Client).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client.h"

namespace cascade::aws {

struct S3Url {
  std::string bucket;
  std::string key;  // without the leading '/'; may be empty (the bucket's root)
};

// "s3://BUCKET[/KEY]". Throws std::invalid_argument saying what was expected.
S3Url parse_s3_url(std::string_view url);

class S3 {
 public:
  // `client` must outlive this object.
  explicit S3(Client& client) : client_(client) {}

  // Creates the bucket in the client's region; an existing bucket of this account is fine.
  void create_bucket(const std::string& bucket);
  void put(const std::string& bucket, const std::string& key, std::string_view body,
           std::string_view content_type = "application/octet-stream",
           std::string_view content_encoding = {});
  // The object's bytes, or nullopt when there is no such key.
  std::optional<std::string> get(const std::string& bucket, const std::string& key);
  // Every key under `prefix` (ListObjectsV2, page by page), in S3's order (by key).
  std::vector<std::string> list(const std::string& bucket, const std::string& prefix);

  Client& client() { return client_; }
  // "/bucket/percent-encoded-key".
  static std::string path(const std::string& bucket, const std::string& key);

 private:
  Client& client_;
};

// Writes one object from appended bytes: parts of 8 MiB go up as they fill (multipart upload);
// an object that never fills a part is one PUT. Nothing is visible at the key until finish()
// succeeds; an upload not finished (an error, a destructor) is aborted, leaving any previous
// object at the key as it was.
class S3Upload {
 public:
  static constexpr size_t kPartSize = 8 * 1024 * 1024;  // S3 takes parts of 5 MiB and more

  S3Upload(S3& s3, std::string bucket, std::string key,
           std::string content_type = "application/octet-stream",
           std::string content_encoding = {});
  ~S3Upload();
  S3Upload(const S3Upload&) = delete;
  S3Upload& operator=(const S3Upload&) = delete;

  void append(std::string_view data);
  // Bytes appended but not yet sent.
  size_t buffered() const { return buffer_.size(); }
  // Sends what is left and completes the object. Throws AwsError on failure (aborted then).
  void finish();
  // Bytes written in all.
  uint64_t size() const { return total_; }

 private:
  void send_part();
  void abort() noexcept;

  S3& s3_;
  std::string bucket_, key_, content_type_, content_encoding_;
  std::string buffer_;
  std::string upload_id_;
  std::vector<std::string> etags_;
  uint64_t total_ = 0;
  bool done_ = false;
};

}  // namespace cascade::aws
