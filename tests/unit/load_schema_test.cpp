// The loader's layout of nested records against a real SQLite warehouse: flattened objects by
// depth, child tables for lists of objects, catalog paths, type conflicts and contracts.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "load/loader.h"
#include "store/store.h"

using namespace cascade;

namespace {

class LoadSchema : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cascade_schema_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = open_store("sqlite:" + dir_ + "/store.db", clock_);
    loader_ = std::make_unique<Loader>(store_->warehouse());
    spec_.name = "emps";
    spec_.key = {"id"};
  }
  void TearDown() override {
    loader_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Warehouse& wh() { return store_->warehouse(); }
  size_t upsert(const std::vector<const char*>& rows) {
    std::vector<Value> values;
    for (const char* r : rows) values.push_back(parse_json(r));
    std::vector<const Value*> ptrs;
    for (const auto& v : values) ptrs.push_back(&v);
    return loader_->upsert(spec_, ptrs, WriteStamp{1, "2026-01-01T00:00:00.000Z"});
  }
  std::vector<std::string> names(std::string_view table) {
    std::vector<std::string> out;
    for (const auto& c : wh().columns(table)) out.push_back(c.name);
    return out;
  }
  // Every cell of the result as its text, rows joined by '|', cells by ','.
  std::string text(const std::string& sql) {
    std::string out;
    for (const auto& row : wh().query(sql).rows) {
      if (!out.empty()) out += '|';
      for (size_t i = 0; i < row.size(); ++i) {
        if (i) out += ',';
        out += row[i].is_null() ? "~" : row[i].is_string() ? row[i].as_string() : row[i].to_text();
      }
    }
    return out;
  }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Loader> loader_;
  TableSpec spec_;
};

TEST_F(LoadSchema, DepthOneFlattensOneLevelAndKeepsDeeperObjectsAsJson) {
  upsert({R"({"id":1,"manager":{"name":"Michael","address":{"city":"Scranton"}}})"});
  EXPECT_EQ(names("emps"), (std::vector<std::string>{"id", "manager__name", "manager__address"}));
  EXPECT_EQ(text("SELECT manager__name, manager__address FROM emps"),
            R"(Michael,{"city":"Scranton"})");
  EXPECT_EQ(text("SELECT field, field_json FROM cascade_columns WHERE table_name='emps' "
                 "ORDER BY position"),
            R"(id,"id"|manager.name,["manager","name"]|manager.address,["manager","address"])");
}

TEST_F(LoadSchema, DepthTwoFlattensTwoLevelsAndDepthZeroKeepsJson) {
  spec_.flatten_depth = 2;
  upsert({R"({"id":1,"manager":{"address":{"city":"Scranton","geo":{"lat":1}}}})"});
  EXPECT_EQ(names("emps"),
            (std::vector<std::string>{"id", "manager__address__city", "manager__address__geo"}));
  spec_.name = "flat";
  spec_.flatten_depth = 0;
  upsert({R"({"id":1,"manager":{"name":"M"},"lines":[{"a":1}]})"});
  EXPECT_EQ(names("flat"), (std::vector<std::string>{"id", "manager", "lines"}));
  EXPECT_EQ(text("SELECT count(*) FROM cascade_tables WHERE parent_table='flat'"), "0");
}

TEST_F(LoadSchema, ADottedFieldAndANestedPathAreTwoColumns) {
  upsert({R"({"id":1,"a.b":"top","a":{"b":"nested"}})"});
  EXPECT_EQ(text("SELECT field, field_json, column_name FROM cascade_columns WHERE "
                 "table_name='emps' AND field='a.b' ORDER BY position"),
            R"(a.b,"a.b",a.b|a.b,["a","b"],a__b)");
  // A field spelled like the joined path takes the next free name.
  upsert({R"({"id":2,"a__b":"clash"})"});
  EXPECT_EQ(text("SELECT column_name FROM cascade_columns WHERE field='a__b'"), "a__b__2");
  // The mapping survives a restart (a fresh loader reads the catalog).
  loader_ = std::make_unique<Loader>(wh());
  upsert({R"({"id":3,"a.b":"t3","a":{"b":"n3"},"a__b":"c3"})"});
  EXPECT_EQ(text("SELECT \"a.b\", a__b, a__b__2 FROM emps WHERE id=3"), "t3,n3,c3");
}

TEST_F(LoadSchema, ObjectTurningScalarAndBackLosesNothing) {
  upsert({R"({"id":1,"manager":{"name":"Michael"}})"});
  upsert({R"({"id":1,"manager":"Michael Scott"})"});
  EXPECT_EQ(text("SELECT manager, manager__name FROM emps"), "Michael Scott,~");
  upsert({R"({"id":1,"manager":{"name":"Jan"}})"});
  EXPECT_EQ(text("SELECT manager, manager__name FROM emps"), "~,Jan");
  EXPECT_EQ(text("SELECT count(*) FROM cascade_type_conflicts"), "0");
}

TEST_F(LoadSchema, ListsOfObjectsBecomeChildTablesReplacedWithTheirParent) {
  upsert({R"({"id":1,"skills":[{"name":"sales","level":{"n":3}},{"name":"paper"}],"tags":["a"]})",
          R"({"id":2,"skills":[]})"});
  EXPECT_EQ(names("emps"), (std::vector<std::string>{"id", "tags"}));
  EXPECT_EQ(names("emps__skills"), (std::vector<std::string>{"id", "_index", "name", "level__n"}));
  EXPECT_EQ(text("SELECT id, _index, name, level__n FROM emps__skills ORDER BY id, _index"),
            "1,0,sales,3|1,1,paper,~");
  EXPECT_EQ(text("SELECT parent_table, field, field_json FROM cascade_tables WHERE "
                 "table_name='emps__skills'"),
            R"(emps,skills,["skills"])");
  EXPECT_EQ(text("SELECT field, field_json FROM cascade_columns WHERE table_name='emps__skills' "
                 "AND column_name='level__n'"),
            R"(skills.level.n,["skills","level","n"])");
  // A shorter list: the item past its end is deleted; a row without the list has no items.
  upsert({R"({"id":1,"skills":[{"name":"golf"}]})"});
  EXPECT_EQ(text("SELECT _index, name, _deleted_at IS NULL FROM emps__skills ORDER BY _index"),
            "0,golf,1|1,paper,0");
  upsert({R"({"id":1})"});
  EXPECT_EQ(text("SELECT count(*) FROM emps__skills WHERE _deleted_at IS NULL"), "0");
  // Back again, and deleted with its parent.
  upsert({R"({"id":1,"skills":[{"name":"a"},{"name":"b"}]})"});
  EXPECT_EQ(text("SELECT count(*) FROM emps__skills WHERE _deleted_at IS NULL"), "2");
  Value key = parse_json(R"({"id":1})");
  const Value* keys[] = {&key};
  loader_ = std::make_unique<Loader>(wh());  // the child table is found from the catalog
  loader_->mark_deleted(spec_, keys, WriteStamp{2, "2026-01-02T00:00:00.000Z"});
  EXPECT_EQ(text("SELECT count(*) FROM emps__skills WHERE _deleted_at IS NULL"), "0");
  EXPECT_EQ(text("SELECT count(*) FROM emps__skills_history WHERE _valid_to IS NULL"), "0");
}

TEST_F(LoadSchema, TypeConflictsAreStoredExactlyAndCounted) {
  upsert({R"({"id":1,"ref":10,"note":"x"})"});
  upsert({R"({"id":1,"ref":"A-10","note":"y"})", R"({"id":2,"ref":"B-2","note":7})"});
  upsert({R"({"id":3,"ref":"C","note":"z"})"});
  EXPECT_EQ(text("SELECT id, quote(ref), quote(note) FROM emps ORDER BY id"),
            "1,'A-10','y'|2,'B-2','7'|3,'C','z'");
  EXPECT_EQ(text("SELECT column_name, field, expected_type, seen_type, count, first_seen FROM "
                 "cascade_type_conflicts ORDER BY column_name"),
            "note,note,TEXT,INTEGER,1,2026-01-01T00:00:00.000Z|"
            "ref,ref,INTEGER,TEXT,3,2026-01-01T00:00:00.000Z");
}

TEST_F(LoadSchema, FreezeRefusesUnknownFieldsOnceTheTableExists) {
  spec_.contract = Contract::Freeze;
  Value first = parse_json(R"({"id":1,"a":1,"o":{"x":1}})");
  EXPECT_EQ(loader_->check_row(spec_, first), "");  // no table yet: anything goes
  upsert({R"({"id":1,"a":1,"o":{"x":1}})"});
  EXPECT_EQ(loader_->check_row(spec_, parse_json(R"({"id":2,"a":2,"o":{"x":2}})")), "");
  EXPECT_EQ(loader_->check_row(spec_, parse_json(R"({"id":2,"a":2,"b":null})")), "");
  EXPECT_EQ(loader_->check_row(spec_, parse_json(R"({"id":2,"b":1})")),
            "field 'b' is not a column of table 'emps' (contract: freeze)");
  EXPECT_EQ(loader_->check_row(spec_, parse_json(R"({"id":2,"o":{"y":1}})")),
            "field 'o.y' is not a column of table 'emps' (contract: freeze)");
  EXPECT_EQ(loader_->check_row(spec_, parse_json(R"({"id":2,"l":[{"q":1}]})")),
            "field 'l' is not a column of table 'emps' (contract: freeze)");
}

TEST_F(LoadSchema, DiscardDropsAndCountsUnknownFields) {
  spec_.contract = Contract::Discard;
  EXPECT_EQ(upsert({R"({"id":1,"a":1,"l":[{"q":1}]})"}), 0u);
  EXPECT_EQ(upsert({R"({"id":1,"a":2,"b":3,"o":{"x":1},"l":[{"q":2,"r":1}],"m":[{"z":1}]})"}), 4u);
  EXPECT_EQ(names("emps"), (std::vector<std::string>{"id", "a"}));
  EXPECT_EQ(names("emps__l"), (std::vector<std::string>{"id", "_index", "q"}));
  EXPECT_EQ(text("SELECT a FROM emps"), "2");
  EXPECT_EQ(text("SELECT q FROM emps__l"), "2");
  EXPECT_EQ(text("SELECT count(*) FROM sqlite_schema WHERE name='emps__m'"), "0");
}

TEST_F(LoadSchema, PlainRowsKeepTheFastPathAndStillRecordConflicts) {
  upsert({R"({"id":1,"n":1})"});
  upsert({R"({"id":2,"n":2})", R"({"id":3,"n":"three"})"});
  EXPECT_EQ(text("SELECT column_name, seen_type, count FROM cascade_type_conflicts"), "n,TEXT,1");
}

}  // namespace

namespace {

TEST_F(LoadSchema, AnOldCatalogIsKeyedByFieldJsonOnOpen) {
  upsert({R"({"id":1,"a":1})"});
  wh().query(
      "CREATE TABLE old_catalog(table_name TEXT NOT NULL, field TEXT NOT NULL, field_json TEXT "
      "NOT NULL, column_name TEXT NOT NULL, type TEXT NOT NULL, position INTEGER NOT NULL, "
      "added_at TEXT NOT NULL, PRIMARY KEY(table_name, field)) WITHOUT ROWID; INSERT INTO "
      "old_catalog SELECT * FROM cascade_columns; DROP TABLE cascade_columns; ALTER TABLE "
      "old_catalog RENAME TO cascade_columns");
  EXPECT_EQ(text("SELECT pk FROM pragma_table_info('cascade_columns') WHERE name='field_json'"),
            "0");
  loader_.reset();
  store_.reset();
  store_ = open_store("sqlite:" + dir_ + "/store.db", clock_);
  loader_ = std::make_unique<Loader>(store_->warehouse());
  EXPECT_EQ(text("SELECT pk FROM pragma_table_info('cascade_columns') WHERE name='field_json'"),
            "2");
  upsert({R"({"id":2,"a.b":1,"a":{"b":2}})"});
  EXPECT_EQ(text("SELECT count(*) FROM cascade_columns WHERE table_name='emps'"), "4");
  EXPECT_EQ(text("SELECT \"a.b\", a__b FROM emps WHERE id=2"), "1,2");
}

}  // namespace
