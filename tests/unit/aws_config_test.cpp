// AwsConfig::from_environment: credentials, profiles, region and endpoints from the variables and
// the shared files, in the SDKs' order; errors that say what is missing and never print secrets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "aws/client.h"

namespace fs = std::filesystem;
using cascade::aws::AwsConfig;

namespace {

class AwsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cascade-awscfg-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "home" / ".aws");
    env_["HOME"] = (dir_ / "home").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
  fs::path creds() const { return dir_ / "home" / ".aws" / "credentials"; }
  fs::path conf() const { return dir_ / "home" / ".aws" / "config"; }

  AwsConfig load(std::string_view profile = {}) {
    return AwsConfig::from_environment(profile, [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    });
  }
  std::string error_of(std::string_view profile = {}) {
    try {
      load(profile);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(AwsConfigTest, VariablesGiveCredentialsRegionAndEndpoints) {
  env_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  env_["AWS_SESSION_TOKEN"] = "envtoken";
  env_["AWS_REGION"] = "eu-west-1";
  env_["AWS_DEFAULT_REGION"] = "us-east-2";
  env_["AWS_ENDPOINT_URL"] = "http://127.0.0.1:5000/";
  env_["AWS_ENDPOINT_URL_SQS"] = "http://127.0.0.1:6000";
  env_["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = "http://127.0.0.1:7000";
  AwsConfig c = load();
  EXPECT_EQ(c.credentials.access_key_id, "AKIAENV");
  EXPECT_EQ(c.credentials.secret_access_key, "envsecret");
  EXPECT_EQ(c.credentials.session_token, "envtoken");
  EXPECT_EQ(c.region, "eu-west-1");  // AWS_REGION before AWS_DEFAULT_REGION
  EXPECT_EQ(c.endpoint_url, "http://127.0.0.1:5000");
  EXPECT_EQ(c.endpoint_for("sqs"), "http://127.0.0.1:6000");
  EXPECT_EQ(c.endpoint_for("streams.dynamodb"), "http://127.0.0.1:7000");
  EXPECT_EQ(c.endpoint_for("dynamodb"), "http://127.0.0.1:5000");
  EXPECT_EQ(c.max_attempts, 8);
}

TEST_F(AwsConfigTest, DefaultEndpointsAreTheRegionalOnes) {
  env_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  env_["AWS_DEFAULT_REGION"] = "us-east-2";
  AwsConfig c = load();
  EXPECT_EQ(c.region, "us-east-2");
  EXPECT_EQ(c.endpoint_for("sqs"), "https://sqs.us-east-2.amazonaws.com");
  EXPECT_EQ(c.endpoint_for("streams.dynamodb"), "https://streams.dynamodb.us-east-2.amazonaws.com");
  env_["AWS_REGION"] = "cn-north-1";
  EXPECT_EQ(load().endpoint_for("s3"), "https://s3.cn-north-1.amazonaws.com.cn");
}

TEST_F(AwsConfigTest, DefaultProfileFromTheSharedFiles) {
  write(creds(),
        "# comment\n[default]\naws_access_key_id = AKIADEF\naws_secret_access_key=defsecret\n"
        "\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = othersecret\n"
        "aws_session_token = othertoken\n");
  write(conf(),
        "[default]\nregion = ap-south-1\ns3 =\n  addressing_style = path\n"
        "[profile other]\nregion = sa-east-1\nendpoint_url = http://localhost:4566\n");
  AwsConfig c = load();
  EXPECT_EQ(c.credentials.access_key_id, "AKIADEF");
  EXPECT_EQ(c.credentials.secret_access_key, "defsecret");
  EXPECT_TRUE(c.credentials.session_token.empty());
  EXPECT_EQ(c.region, "ap-south-1");
  EXPECT_TRUE(c.endpoint_url.empty());

  env_["AWS_PROFILE"] = "other";
  c = load();
  EXPECT_EQ(c.credentials.access_key_id, "AKIAOTHER");
  EXPECT_EQ(c.credentials.session_token, "othertoken");
  EXPECT_EQ(c.region, "sa-east-1");
  EXPECT_EQ(c.endpoint_url, "http://localhost:4566");
}

TEST_F(AwsConfigTest, PrecedenceVariablesProfileArgumentAndFiles) {
  write(creds(),
        "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = defsecret\n"
        "[p2]\naws_access_key_id = AKIAP2\naws_secret_access_key = p2secret\n");
  write(conf(), "[profile p2]\nregion = eu-north-1\n");
  env_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  env_["AWS_REGION"] = "us-west-2";
  // The variables win over the default profile...
  EXPECT_EQ(load().credentials.access_key_id, "AKIAENV");
  // ...and over AWS_PROFILE, as in the SDKs' default chain.
  env_["AWS_PROFILE"] = "p2";
  EXPECT_EQ(load().credentials.access_key_id, "AKIAENV");
  // A profile the caller names wins over the variables; the region variable still wins.
  AwsConfig c = load("p2");
  EXPECT_EQ(c.credentials.access_key_id, "AKIAP2");
  EXPECT_EQ(c.region, "us-west-2");
  env_.erase("AWS_REGION");
  EXPECT_EQ(load("p2").region, "eu-north-1");
}

TEST_F(AwsConfigTest, FileLocationsFromVariablesAndCredentialsInConfig) {
  write(dir_ / "c2",
        "[profile x]\nregion = us-east-1\naws_access_key_id = AKIACONF\n"
        "aws_secret_access_key = confsecret\n");
  env_["AWS_CONFIG_FILE"] = (dir_ / "c2").string();
  env_["AWS_SHARED_CREDENTIALS_FILE"] = (dir_ / "missing").string();
  AwsConfig c = load("x");
  EXPECT_EQ(c.credentials.access_key_id, "AKIACONF");
  EXPECT_EQ(c.region, "us-east-1");
}

TEST_F(AwsConfigTest, MissingPiecesAreNamed) {
  std::string e = error_of();
  EXPECT_NE(e.find("AWS credentials not found"), std::string::npos) << e;
  EXPECT_NE(e.find(creds().string()), std::string::npos) << e;

  e = error_of("nosuch");
  EXPECT_NE(e.find("profile 'nosuch' not found"), std::string::npos) << e;

  env_["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  e = error_of();
  EXPECT_NE(e.find("AWS_SECRET_ACCESS_KEY is not"), std::string::npos) << e;

  env_["AWS_SECRET_ACCESS_KEY"] = "sekrit-value-1";
  e = error_of();
  EXPECT_NE(e.find("AWS region not set"), std::string::npos) << e;
  EXPECT_EQ(e.find("sekrit-value-1"), std::string::npos) << e;

  env_["AWS_REGION"] = "us-east-1";
  env_["AWS_MAX_ATTEMPTS"] = "lots";
  e = error_of();
  EXPECT_NE(e.find("AWS_MAX_ATTEMPTS"), std::string::npos) << e;
  env_["AWS_MAX_ATTEMPTS"] = "3";
  EXPECT_EQ(load().max_attempts, 3);
}

TEST_F(AwsConfigTest, HalfAKeyPairInAProfileIsRefusedWithoutTheSecret) {
  write(creds(), "[default]\naws_secret_access_key = only-the-secret-9\n");
  env_["AWS_REGION"] = "us-east-1";
  std::string e = error_of();
  EXPECT_NE(e.find("no aws_access_key_id"), std::string::npos) << e;
  EXPECT_EQ(e.find("only-the-secret-9"), std::string::npos) << e;
}

TEST_F(AwsConfigTest, MalformedFileGivesPlaceNotContent) {
  write(creds(), "[default]\naws_access_key_id = AKIADEF\n  wJalrXUtnFEMI-secret-line\n");
  env_["AWS_REGION"] = "us-east-1";
  std::string e = error_of();
  EXPECT_NE(e.find(creds().string() + ":3:3: expected `[section]` or `key = value`"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("wJalrXUtnFEMI"), std::string::npos) << e;

  write(creds(), "aws_access_key_id = AKIADEF\n");
  e = error_of();
  EXPECT_NE(e.find(":1:1: expected a `[section]`"), std::string::npos) << e;

  write(creds(), "[default\n");
  e = error_of();
  EXPECT_NE(e.find(":1:1: expected a section name closed by ']'"), std::string::npos) << e;
}

TEST(AwsHelpers, ErrorCodesAndEncoding) {
  using cascade::aws::json_error_code;
  EXPECT_EQ(
      json_error_code(R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"x"})", ""),
      "QueueDoesNotExist");
  EXPECT_EQ(json_error_code("", "ResourceNotFoundException:http://internal.amazon.com/"),
            "ResourceNotFoundException");
  EXPECT_EQ(json_error_code("<html>", ""), "");
  EXPECT_EQ(cascade::aws::uri_encode("a b/c~d+é", false), "a%20b%2Fc~d%2B%C3%A9");
  EXPECT_EQ(cascade::aws::uri_encode("table=t/x y", true), "table%3Dt/x%20y");
}

}  // namespace
