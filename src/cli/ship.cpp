// `cascade ship`: the change log shipped to S3 as gzip JSON Lines (aws/s3_shipper.h).
#include <fmt/format.h>

#include <optional>
#include <stdexcept>

#include "aws/client.h"
#include "aws/s3_objects.h"
#include "aws/s3_shipper.h"
#include "cli/commands.h"
#include "store/store.h"

namespace cascade::cli {

int cmd_ship(const Common& c, const std::string& to) {
  aws::S3Url url;
  std::optional<aws::Client> client;
  try {
    url = aws::parse_s3_url(to);
    client.emplace(aws::AwsConfig::from_environment());
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  auto store = open_for_reading(c);
  if (!store) return 2;
  client->set_stop_flag(stop_flag());
  try {
    aws::S3 s3(*client);
    aws::ChangeLogShipper shipper(store->change_log(), s3, {url.bucket, url.key});
    aws::ShipResult r = shipper.ship(stop_flag());
    if (c.json) {
      fmt::print("{{\"changes\":{},\"objects\":{},\"checkpoint\":{}}}\n", r.changes, r.objects,
                 r.last_seq);
    } else {
      fmt::print(stderr, "{} change{} shipped in {} object{} to {} (checkpoint: seq {})\n",
                 r.changes, r.changes == 1 ? "" : "s", r.objects, r.objects == 1 ? "" : "s", to,
                 r.last_seq);
    }
    return stop_flag()->load() ? 1 : 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: cannot ship the change log to {}: {}\n", to, e.what());
    return 1;
  }
}

}  // namespace cascade::cli
