#include "store/warehouse.h"

namespace cascade {
namespace {

class Collect final : public RowSink {
 public:
  QueryResult result;
  void columns(std::span<const std::string> names) override {
    result = QueryResult{};
    result.columns.assign(names.begin(), names.end());
  }
  bool row(std::span<const Cell> cells) override {
    std::vector<Value> row;
    row.reserve(cells.size());
    for (const Cell& c : cells) {
      switch (c.kind) {
        case Cell::Kind::Null:
          row.emplace_back();
          break;
        case Cell::Kind::Integer:
          row.emplace_back(c.integer);
          break;
        case Cell::Kind::Real:
          row.emplace_back(c.real);
          break;
        case Cell::Kind::Text:
        case Cell::Kind::Blob:
          row.emplace_back(std::string(c.bytes));
          break;
      }
    }
    result.rows.push_back(std::move(row));
    return true;
  }
};

}  // namespace

QueryResult Warehouse::query(std::string_view sql) {
  Collect c;
  query_rows(sql, c);
  return std::move(c.result);
}

}  // namespace cascade
