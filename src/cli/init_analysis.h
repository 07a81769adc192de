// What `cascade init` reads from one sample response: where the records are, which field is
// their key, how the listing is paged, and the pipeline file written from that. Pure functions
// of their arguments (no I/O); thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/value.h"

namespace cascade::cli {

// A URL taken apart as `init` needs it. Query names and values are percent-decoded.
struct SampleUrl {
  std::string scheme;  // http or https, lower-case
  std::string origin;  // scheme://host[:port], without userinfo
  std::string host;    // lower-case, without port
  std::string path;    // as written (still encoded), "/" when absent
  std::vector<std::pair<std::string, std::string>> query;
  bool has_userinfo = false;  // user:password@ was given (never kept)
};

// Parses an http(s) URL; nullopt (with `why` set) when it is not one.
std::optional<SampleUrl> parse_sample_url(std::string_view url, std::string* why);

// Where the records of a response are.
struct RecordsGuess {
  bool found = false;    // false: no list of objects anywhere (the root object is one record)
  std::string path;      // dotted path from the root; empty: the root itself
  size_t count = 0;      // records in the sample
  std::string evidence;  // why, for the comment beside `records:`
};

// The root when it is an array; otherwise the largest array of objects under the root (through
// objects only, a few levels deep; ties go to the shallower, then the earlier one). An object
// with no such array is itself the one record.
RecordsGuess find_records(const Value& body);

struct KeyGuess {
  std::vector<std::string> fields;  // top-level record fields; empty: no candidate at all
  bool certain = false;             // false: the file asks the user to confirm it
  std::string evidence;
};

// Proposes the key of `records` (the objects of a sample): a field named `id`; else a field named
// `<something>_id` (the stage's own singular name first, e.g. `sale_id` in `sales`); else the
// first field whose values are unique and non-null; each only if its values are unique, non-null
// strings or integers in every record. Failing those, the first unique pair (not certain).
KeyGuess choose_key(const Array& records, std::string_view stage_name);

struct PaginationGuess {
  // json_link, header_link, offset, page_number, cursor or single_page (the names of `paginate:`)
  std::string type = "single_page";
  // The kind's parameters, as YAML scalars ready to write (`next_url_path` -> `links.next`).
  std::vector<std::pair<std::string, std::string>> params;
  std::string evidence;  // what in the response said so
  std::string question;  // non-empty: what the user must confirm (asked in the file)
  // Query parameters of the sample URL the paginator sets itself (offset, page, cursor...).
  std::vector<std::string> paginator_query;
};

// Recognises the paging of a listing from its first response, in dlt's order: a Link header
// with rel="next" (or any RFC 8288 Link header) -> header_link; a field outside the records
// holding the next page's URL (`next`, `links.next`, `_links.next.href`...) -> json_link; a
// cursor field (`cursor`, `next_cursor`, `next_page_token`...) -> cursor; page number fields
// (`page` with `total_pages`...) or a `page` query parameter -> page_number; `total` with
// `offset`/`limit` fields or parameters -> offset; else single_page. `headers` have lower-case
// names.
PaginationGuess detect_pagination(const Value& body, const RecordsGuess& records,
                                  const std::vector<std::pair<std::string, std::string>>& headers,
                                  const SampleUrl& url);

// How a credential given to `init` (`--header 'Name: value'`, or userinfo / an API key in the
// URL) is written: as a reference to an environment variable, never its value.
struct CredentialPlan {
  // The `source.auth` flow map (without the value), e.g. `{ type: bearer, token:
  // "${EXAMPLE_TOKEN}" }`; empty: no auth.
  std::string auth_yaml;
  // Environment variables the file reads, each with what it must hold.
  std::vector<std::pair<std::string, std::string>> env;
  // `source.headers` entries as YAML `Name: value` pairs (values are env references, or literal
  // for harmless headers such as Accept).
  std::vector<std::pair<std::string, std::string>> headers;
  // Query parameters of the sample URL that carry the credential (left out of `params:`).
  std::vector<std::string> secret_query;
};

// `headers`: the --header values as (name, value). `env_prefix`: e.g. EXAMPLE.
CredentialPlan plan_credentials(const std::vector<std::pair<std::string, std::string>>& headers,
                                const SampleUrl& url, const std::string& env_prefix);

// Everything the pipeline file is written from.
struct InitPlan {
  std::string url;  // the sample URL as given, without userinfo (for the header comment)
  SampleUrl parsed;
  int status = 0;
  std::string name;   // pipeline name
  std::string stage;  // stage (and table) name
  RecordsGuess records;
  std::vector<std::string> record_fields;  // of the first record, for a comment
  KeyGuess key;
  PaginationGuess paginate;
  CredentialPlan credentials;
  // When set, `paginate:` is written commented out with this reason (the loader refused it).
  std::string paginate_refused;
};

// The names init derives from a URL: pipeline `name` from the host (`api.example.com` ->
// `example`), stage from the last meaningful path segment (`/v2/sales.json` -> `sales`).
std::string pipeline_name_for(const SampleUrl& url);
std::string stage_name_for(const SampleUrl& url);
// EXAMPLE for `example`: upper-case, a valid environment variable name.
std::string env_prefix_for(const std::string& pipeline_name);

// Analyses a sample response into a plan (names, records, key, paging, credentials).
InitPlan analyse_sample(const std::string& url, const SampleUrl& parsed, int status,
                        const std::vector<std::pair<std::string, std::string>>& response_headers,
                        const Value& body,
                        const std::vector<std::pair<std::string, std::string>>& request_headers);

// The commented pipeline YAML of a plan; each point the user must settle is marked for them.
std::string render_pipeline(const InitPlan& plan);

// A YAML scalar for `s` as written in a flow map: plain when safe, else double-quoted; `${` is
// written `$${` so the loader's interpolation leaves it alone.
std::string yaml_scalar(std::string_view s);

}  // namespace cascade::cli
