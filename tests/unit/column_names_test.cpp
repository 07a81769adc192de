// Column naming: every field a distinct, valid, stable column, by the documented rule.
#include "load/column_names.h"

#include <gtest/gtest.h>

#include <string>

using namespace cascade;

TEST(ColumnNames, CleanFreeNamesAreKeptAndCaseCollisionsGetSuffixes) {
  ColumnNamer n;
  EXPECT_EQ(n.assign("note"), "note");
  EXPECT_EQ(n.assign("Note"), "Note__2");
  EXPECT_EQ(n.assign("NOTE"), "NOTE__3");
  EXPECT_EQ(n.assign("note__2"), "note__2__2") << "taken by Note's column, ignoring case";
  EXPECT_EQ(n.assign("sp ace \"q\""), "sp ace \"q\"");
  EXPECT_EQ(n.assign("\u00fcn\u00efc\u00f8d\u00e9"), "\u00fcn\u00efc\u00f8d\u00e9");
}

TEST(ColumnNames, EmptyControlAndInvalidBytesAreSpelledOut) {
  ColumnNamer n;
  EXPECT_EQ(n.assign(""), "_empty");
  EXPECT_EQ(n.assign(std::string("a\0b", 3)), "a_x00b");
  EXPECT_EQ(n.assign("tab\there"), "tab_x09here");
  EXPECT_EQ(n.assign("bad\xff"), "bad_xFF");
  EXPECT_EQ(n.assign("_empty"), "_empty__2");
}

TEST(ColumnNames, CascadesOwnColumnsAreNeverGivenToAField) {
  ColumnNamer n;
  EXPECT_EQ(n.assign("_overflow"), "_overflow__2");
  EXPECT_EQ(n.assign("_Deleted_At"), "_Deleted_At__2");
  EXPECT_EQ(n.assign("_cascade_x"), "field_cascade_x");
  EXPECT_EQ(n.assign("_cascade"), "field_cascade");
  EXPECT_EQ(n.assign("_CASCADE_run"), "field_CASCADE_run");
  EXPECT_EQ(n.assign("field_cascade"), "field_cascade__2");
  EXPECT_EQ(n.assign("_cascadex"), "_cascadex");
  std::string long_reserved = "_cascade_" + std::string(80, 'z');
  std::string c = n.assign(long_reserved);
  EXPECT_TRUE(is_clean_column_name(c)) << c;
  EXPECT_FALSE(is_reserved_column(c)) << c;
}

TEST(ColumnNames, LongNamesAreCutOnACharacterAndKeepAHashOfTheWhole) {
  ColumnNamer n;
  std::string a(100, 'a');
  std::string b = a + "b";
  std::string ca = n.assign(a);
  std::string cb = n.assign(b);
  EXPECT_LE(ca.size(), kMaxColumnNameBytes);
  EXPECT_LE(cb.size(), kMaxColumnNameBytes);
  EXPECT_NE(ca, cb);
  EXPECT_EQ(ca.substr(0, 54), std::string(54, 'a'));
  std::string euros;
  for (int i = 0; i < 40; ++i) euros += "\u20ac";  // 3 bytes each
  std::string ce = n.assign(euros);
  EXPECT_TRUE(is_clean_column_name(ce)) << ce;
  // Deterministic: a fresh namer gives the same names in the same order.
  ColumnNamer again;
  EXPECT_EQ(again.assign(a), ca);
  EXPECT_EQ(again.assign(b), cb);
}
