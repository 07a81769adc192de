#include "aws/s3_objects.h"

#include <algorithm>
#include <stdexcept>

namespace cascade::aws {
namespace {

// The text of every <tag>...</tag> in an XML document (S3's answers are flat enough for this).
std::vector<std::string> xml_all(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    pos += open.size();
    size_t end = xml.find(close, pos);
    if (end == std::string_view::npos) break;
    out.emplace_back(xml.substr(pos, end - pos));
    pos = end + close.size();
  }
  return out;
}

// XML character references back to text (keys may hold '&', '<', ...).
std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out += '&';
    else if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "quot")
      out += '"';
    else if (ent == "apos")
      out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                             ? std::stoul(std::string(ent.substr(2)), nullptr, 16)
                             : std::stoul(std::string(ent.substr(1)));
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

}  // namespace

S3Url parse_s3_url(std::string_view url) {
  constexpr std::string_view scheme = "s3://";
  if (!url.starts_with(scheme))
    throw std::invalid_argument("expected an S3 URL s3://BUCKET/KEY, found '" + std::string(url) +
                                "'");
  std::string_view rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  S3Url out;
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) out.key = std::string(rest.substr(slash + 1));
  bool ok = out.bucket.size() >= 3 && out.bucket.size() <= 63;
  for (char c : out.bucket)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
  if (!ok)
    throw std::invalid_argument("S3 URL '" + std::string(url) +
                                "': expected a bucket name of 3 to 63 lower-case letters, digits, "
                                "'-' or '.' after s3://");
  return out;
}

std::string S3::path(const std::string& bucket, const std::string& key) {
  return "/" + bucket + "/" + uri_encode(key, true);
}

void S3::create_bucket(const std::string& bucket) {
  std::string region = client_.config().region;
  // us-east-1 is the one region that takes no location constraint.
  std::string body =
      region == "us-east-1"
          ? std::string()
          : "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<LocationConstraint>" +
                region + "</LocationConstraint></CreateBucketConfiguration>";
  try {
    client_.rest("s3", "PUT", "/" + bucket, {{"Content-Type", "application/xml"}}, body);
  } catch (const AwsError& e) {
    if (e.code != "BucketAlreadyOwnedByYou") throw;
  }
}

void S3::put(const std::string& bucket, const std::string& key, std::string_view body,
             std::string_view content_type, std::string_view content_encoding) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", std::string(content_type)}};
  if (!content_encoding.empty())
    headers.emplace_back("Content-Encoding", std::string(content_encoding));
  client_.rest("s3", "PUT", path(bucket, key), headers, body);
}

std::optional<std::string> S3::get(const std::string& bucket, const std::string& key) {
  try {
    return client_.rest("s3", "GET", path(bucket, key)).body;
  } catch (const AwsError& e) {
    if (e.code == "NoSuchKey") return std::nullopt;
    throw;
  }
}

std::vector<std::string> S3::list(const std::string& bucket, const std::string& prefix) {
  std::vector<std::string> keys;
  std::string token;
  // Every page but the last holds keys, so the loop ends; the bound guards a server that says
  // "truncated" forever.
  for (int page = 0; page < 1'000'000; ++page) {
    std::string q = "/" + bucket + "?list-type=2&prefix=" + uri_encode(prefix, false);
    if (!token.empty()) q += "&continuation-token=" + uri_encode(token, false);
    RestResponse r = client_.rest("s3", "GET", q);
    size_t before = keys.size();
    for (auto& k : xml_all(r.body, "Key")) keys.push_back(xml_unescape(k));
    auto truncated = xml_all(r.body, "IsTruncated");
    auto next = xml_all(r.body, "NextContinuationToken");
    if (truncated.empty() || truncated[0] != "true" || next.empty() || keys.size() == before) break;
    token = xml_unescape(next[0]);
  }
  return keys;
}

S3Upload::S3Upload(S3& s3, std::string bucket, std::string key, std::string content_type,
                   std::string content_encoding)
    : s3_(s3),
      bucket_(std::move(bucket)),
      key_(std::move(key)),
      content_type_(std::move(content_type)),
      content_encoding_(std::move(content_encoding)) {}

S3Upload::~S3Upload() {
  if (!done_) abort();
}

void S3Upload::append(std::string_view data) {
  buffer_.append(data);
  total_ += data.size();
  while (buffer_.size() >= kPartSize) send_part();
}

void S3Upload::send_part() {
  try {
    std::string path = S3::path(bucket_, key_);
    if (upload_id_.empty()) {
      std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", content_type_}};
      if (!content_encoding_.empty()) headers.emplace_back("Content-Encoding", content_encoding_);
      RestResponse r = s3_.client().rest("s3", "POST", path + "?uploads", headers);
      auto id = xml_all(r.body, "UploadId");
      if (id.empty())
        throw AwsError("NoUploadId", "S3 CreateMultipartUpload: no UploadId", 0, false);
      upload_id_ = xml_unescape(id[0]);
    }
    size_t n = std::min(buffer_.size(), kPartSize);
    RestResponse r = s3_.client().rest("s3", "PUT",
                                       path + "?partNumber=" + std::to_string(etags_.size() + 1) +
                                           "&uploadId=" + uri_encode(upload_id_, false),
                                       {}, std::string_view(buffer_).substr(0, n));
    const std::string* etag = r.header("etag");
    if (!etag) throw AwsError("NoETag", "S3 UploadPart: no ETag in the answer", 0, false);
    etags_.push_back(*etag);
    buffer_.erase(0, n);
  } catch (...) {
    abort();
    throw;
  }
}

void S3Upload::finish() {
  if (done_) return;
  try {
    if (upload_id_.empty()) {
      s3_.put(bucket_, key_, buffer_, content_type_, content_encoding_);
    } else {
      if (!buffer_.empty()) send_part();
      std::string xml = "<CompleteMultipartUpload>";
      for (size_t i = 0; i < etags_.size(); ++i) {
        xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + etags_[i] +
               "</ETag></Part>";
      }
      xml += "</CompleteMultipartUpload>";
      RestResponse r = s3_.client().rest(
          "s3", "POST", S3::path(bucket_, key_) + "?uploadId=" + uri_encode(upload_id_, false),
          {{"Content-Type", "application/xml"}}, xml);
      // S3 may answer 200 with an error inside.
      if (r.body.find("<Error>") != std::string::npos) {
        auto code = xml_all(r.body, "Code");
        throw AwsError(code.empty() ? "InternalError" : code[0],
                       "S3 CompleteMultipartUpload of " + key_ + " failed", r.status, false);
      }
    }
    buffer_.clear();
    done_ = true;
  } catch (...) {
    abort();
    throw;
  }
}

void S3Upload::abort() noexcept {
  done_ = true;
  if (upload_id_.empty()) return;
  try {
    s3_.client().rest("s3", "DELETE",
                      S3::path(bucket_, key_) + "?uploadId=" + uri_encode(upload_id_, false));
  } catch (const std::exception&) {
    // A lifecycle rule (AbortIncompleteMultipartUpload) collects what this could not.
  }
  upload_id_.clear();
}

}  // namespace cascade::aws
