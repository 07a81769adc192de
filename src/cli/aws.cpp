#include "cli/aws.h"

#include <fmt/format.h>

#include <filesystem>

#include "config/loader.h"
#include "core/error.h"
#include "deploy/package.h"
#include "deploy/sam_template.h"

namespace cascade::cli {

AwsCommands::AwsCommands(CLI::App& app, Common& common) : c_(common) {
  aws_ =
      app.add_subcommand("aws", "Deploy the pipeline on AWS: Lambda, SQS, DynamoDB (docs/aws.md)");
  aws_->require_subcommand(1);
  template_ = aws_->add_subcommand(
      "template",
      "Print the SAM template: a function, queue, dead-letter queue and table per stage, the "
      "schedules, alarms on an SNS topic, least-privilege roles");
  template_->add_option("pipeline", c_.pipeline,
                        "pipeline file (default: $CASCADE_PIPELINE or cascade.yaml)");
  template_->add_option("-p,--pipeline", c_.pipeline, "pipeline file");
  template_->add_option("--code-uri", code_uri, "the package directory (`aws package --out`)")
      ->capture_default_str();
  template_->add_option("--memory", memory_mb, "MemorySize of the functions, in MB")
      ->check(CLI::Range(128, 10240))
      ->capture_default_str();
  package_ = aws_->add_subcommand(
      "package",
      "Write the Lambda function package: bootstrap, cascade, its shared libraries and loader, "
      "the pipeline file");
  package_->add_option("--out", out_dir, "the package directory")->required();
  package_->add_option("-p,--pipeline", package_pipeline,
                       "pipeline file to include as pipeline.yaml (default: $CASCADE_PIPELINE "
                       "or cascade.yaml, when it exists)");
}

int AwsCommands::run() {
  if (template_->parsed()) return cmd_aws_template(c_.pipeline, code_uri, memory_mb);
  if (package_->parsed()) {
    std::string pipeline = package_pipeline;
    if (pipeline.empty() && std::filesystem::exists(c_.pipeline)) pipeline = c_.pipeline;
    return cmd_aws_package(out_dir, pipeline);
  }
  return 2;
}

int cmd_aws_template(const std::string& pipeline, const std::string& code_uri, int memory_mb) {
  PipelineSpec spec;
  try {
    spec = load_pipeline_file(pipeline);
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  deploy::TemplateOptions o;
  o.code_uri = code_uri;
  o.memory_mb = memory_mb;
  fmt::print("{}", deploy::sam_template(spec, o));
  return 0;
}

int cmd_aws_package(const std::string& out, const std::string& pipeline) {
  if (!pipeline.empty()) {
    // A package with a pipeline its functions would refuse is refused here.
    try {
      load_pipeline_file(pipeline);
    } catch (const ConfigError& e) {
      fmt::print(stderr, "error: {}\n", e.what());
      return 2;
    }
  }
  deploy::PackageOptions o;
  o.out = out;
  o.pipeline = pipeline;
  deploy::PackageResult r = deploy::write_package(o);
  fmt::print("{}: {} files, {:.1f} MB{}\n", out, r.files.size(), static_cast<double>(r.bytes) / 1e6,
             pipeline.empty() ? " (no pipeline file: add one as pipeline.yaml)" : "");
  return 0;
}

}  // namespace cascade::cli
