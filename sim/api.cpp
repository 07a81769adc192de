#include "sim/api.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <iterator>
#include <optional>
#include <thread>

#include "core/json.h"
#include "sim/faults.h"
#include "sim/truth.h"

namespace cascade::sim {
namespace {

void error(HttpResponse& res, int status, std::string_view msg) {
  res.status = status;
  res.body.clear();
  res.body += "{\"error\":";
  append_json_string(msg, res.body);
  res.body += '}';
}

// A non-negative decimal id, nullopt if missing or malformed.
std::optional<int64_t> id_param(const HttpRequest& req, std::string_view name) {
  const std::string* v = req.param(name);
  if (!v || v->empty() || (*v)[0] < '0' || (*v)[0] > '9') return std::nullopt;
  int64_t id = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), id);
  if (ec != std::errc() || p != v->data() + v->size()) return std::nullopt;
  return id;
}

constexpr std::string_view kBadSince =
    "updated_since must be a UTC time such as 2024-01-01T00:00:00Z or 2024-01-01 00:00:00";

}  // namespace

std::string summary_json(const AdvanceSummary& s, int64_t tick) {
  return fmt::format(
      "{{\"tick\":{},\"ticks\":{},\"new_sales\":{},\"late_sales\":{},\"corrections\":{},"
      "\"transfers\":{},\"departures\":{},\"hires\":{},\"promotions\":{}}}",
      tick, s.ticks, s.new_sales, s.late_sales, s.corrections, s.transfers, s.departures, s.hires,
      s.promotions);
}

ApiService::ApiService(SimConfig cfg, std::shared_ptr<FaultPlan> faults, PagingConfig paging)
    : company_(cfg),
      faults_(faults ? std::move(faults)
                     : std::make_shared<Faults>(FaultConfig{}, cfg.seed, SystemClock::instance())),
      paging_(paging) {}

AdvanceSummary ApiService::advance(int64_t ticks) {
  std::unique_lock lock(mu_);
  return company_.advance(ticks);
}

void ApiService::count(const std::string& path, int status) {
  std::lock_guard lock(stats_mu_);
  ++stats_[path][status];
}

std::string ApiService::stats_json() const {
  std::lock_guard lock(stats_mu_);
  std::string out = "{\"requests\":{";
  uint64_t total = 0;
  bool first_path = true;
  for (const auto& [path, by_status] : stats_) {
    if (!first_path) out += ',';
    first_path = false;
    append_json_string(path, out);
    out += ":{";
    bool first = true;
    for (const auto& [status, n] : by_status) {
      fmt::format_to(std::back_inserter(out), "{}\"{}\":{}", first ? "" : ",", status, n);
      first = false;
      total += n;
    }
    out += '}';
  }
  fmt::format_to(std::back_inserter(out), "}},\"total\":{},\"faults\":{},\"auth\":{}}}", total,
                 faults_->stats_json(), auth_ ? auth_->stats_json() : std::string("{}"));
  return out;
}

void ApiService::handle(const HttpRequest& req, HttpResponse& res) {
  const std::string& p = req.path;
  const bool vendor =
      p == "/branches" || p == "/employees" || p == "/sales" || p == "/sales/search";
  if (vendor) {
    if (!auth_ || auth_->admit(req, res)) serve_api(req, res);
  } else if (p == "/oauth/token") {
    if (auth_)
      auth_->token_endpoint(req, res);
    else
      error(res, 404, "this simulator issues no tokens: start it with --auth oauth2:ID:SECRET");
  } else if (p == "/healthz") {
    res.body = R"({"ok":true})";
  } else if (p == "/admin/advance") {
    if (req.method != "POST") {
      error(res, 405, "use POST /admin/advance?ticks=N");
    } else if (auto t = id_param(req, "ticks"); !t || *t > 1'000'000) {
      error(res, 400, "ticks must be an integer in 0..1000000");
    } else {
      // try_lock: a truth stream on this very worker thread holds the shared lock until this
      // thread writes it out, so blocking here could never end.
      std::unique_lock lock(mu_, std::defer_lock);
      for (int i = 0; i < 5000 && !lock.try_lock(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (!lock.owns_lock()) {
        error(res, 503, "busy: a /admin/truth stream is still open; retry");
      } else {
        const AdvanceSummary s = company_.advance(*t);
        res.body = summary_json(s, company_.tick());
      }
    }
  } else if (p == "/admin/truth") {
    // The shared lock is held until the stream ends so the document is one consistent tick.
    auto lock = std::make_shared<std::shared_lock<std::shared_mutex>>(mu_);
    auto writer = std::make_shared<TruthWriter>(company_);
    res.stream = [writer, lock](std::string& out) { return writer->next(out); };
    res.on_done = [lock] {
      if (lock->owns_lock()) lock->unlock();
    };
  } else if (p == "/admin/faults") {
    if (!faults_->admin(req, res)) error(res, 404, "this simulator has no fault plan");
  } else if (p == "/admin/stats") {
    res.body = stats_json();
  } else {
    error(res, 404, "no such path");
  }
  count(vendor || p == "/healthz" || p == "/oauth/token" || p.rfind("/admin/", 0) == 0
            ? (res.status == 404 ? std::string("other") : p)
            : std::string("other"),
        res.status);
}

void ApiService::serve_api(const HttpRequest& req, HttpResponse& res) {
  faults_->serve(req, res, [this, &req](HttpResponse& r) { serve_true(req, r); });
}

void ApiService::serve_true(const HttpRequest& req, HttpResponse& res) {
  if (req.path == "/sales/search") {
    if (req.method != "POST") return error(res, 405, "use POST /sales/search");
    Value body;
    try {
      body = parse_json(req.body);
    } catch (const std::exception&) {
      return error(res, 400, "the body must be JSON such as {\"employee_id\": 42}");
    }
    const Value* id = body.is_object() ? body.find("employee_id") : nullptr;
    if (!id || !id->is_int() || id->as_int() < 0)
      return error(res, 400, "employee_id must be a non-negative JSON integer");
    // In the body or, as an incremental pipeline sends it, in the query.
    std::optional<int64_t> since;
    if (const Value* u = body.find("updated_since")) {
      since = u->is_string() ? parse_timestamp(u->as_string()) : std::nullopt;
      if (!since) return error(res, 400, kBadSince);
    } else if (const std::string* q = req.param("updated_since")) {
      since = parse_timestamp(*q);
      if (!since) return error(res, 400, kBadSince);
    }
    std::shared_lock lock(mu_);
    company_.write_sales_response(id->as_int(), res.body, since);
    return;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    error(res, 405, "use GET");
  } else if (paging_.mode != PageMode::none) {
    serve_paged(req, res);
  } else if (req.path == "/branches") {
    const std::string* name = req.param("branch");
    if (!name) {
      error(res, 400, "missing parameter: branch");
    } else {
      std::shared_lock lock(mu_);
      company_.write_branches_response(*name, res.body);
    }
  } else if (req.path == "/employees") {
    if (auto id = id_param(req, "branch_id")) {
      res.body.reserve(256 * 64);
      std::shared_lock lock(mu_);
      const std::string* embed = req.param("embed");
      if (embed && *embed != "sales") return error(res, 400, "embed must be sales");
      company_.write_employees_response(*id, res.body, embed != nullptr);
    } else {
      error(res, 400, "branch_id must be a non-negative integer");
    }
  } else {
    if (auto id = id_param(req, "employee_id")) {
      std::optional<int64_t> since;
      if (const std::string* u = req.param("updated_since")) {
        since = parse_timestamp(*u);
        if (!since) return error(res, 400, kBadSince);
      }
      std::shared_lock lock(mu_);
      company_.write_sales_response(*id, res.body, since);
    } else {
      error(res, 400, "employee_id must be a non-negative integer");
    }
  }
}

void ApiService::serve_paged(const HttpRequest& req, HttpResponse& res) {
  // The same records as the unpaged responses, in the same order, one page at a time.
  std::vector<std::string> records;
  auto add = [&records](auto write) {
    records.emplace_back();
    write(records.back());
  };
  if (req.path == "/branches") {
    const std::string* name = req.param("branch");
    if (!name) return error(res, 400, "missing parameter: branch");
    std::shared_lock lock(mu_);
    if (auto b = company_.branch_by_name(*name))
      add([&](std::string& out) { Company::write_branch(*b, out); });
  } else if (req.path == "/employees") {
    auto id = id_param(req, "branch_id");
    if (!id) return error(res, 400, "branch_id must be a non-negative integer");
    std::shared_lock lock(mu_);
    company_.for_each_employee(*id, [&](const Employee& e) {
      add([&](std::string& out) { Company::write_employee(e, false, out); });
    });
  } else {
    auto id = id_param(req, "employee_id");
    if (!id) return error(res, 400, "employee_id must be a non-negative integer");
    std::shared_lock lock(mu_);
    company_.for_each_sale(*id, [&](const Sale& s) {
      add([&](std::string& out) { Company::write_sale(s, false, out); });
    });
  }
  write_page(paging_, req, records, res);
}

}  // namespace cascade::sim
