// `cascade aws ...`: the commands of the AWS deployment, one CLI11 subcommand group. A further
// command is one more add_subcommand in the constructor and one more branch in run().
// Not thread-safe.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/commands.h"

namespace cascade::cli {

class AwsCommands {
 public:
  // Registers `aws` and its subcommands on `app`; `common` is the shared options (pipeline).
  AwsCommands(CLI::App& app, Common& common);
  // Whether the command line chose `aws` (call after parsing).
  bool chosen() const { return aws_->parsed(); }
  // Runs the chosen subcommand: its exit code (2 for a bad pipeline file or usage).
  int run();

 private:
  Common& c_;
  CLI::App* aws_ = nullptr;
  CLI::App* template_ = nullptr;
  CLI::App* package_ = nullptr;
  std::string code_uri = "cascade-package";
  int memory_mb = 512;
  std::string out_dir;
  std::string package_pipeline;
};

// `aws template PIPELINE`: prints the SAM template.
int cmd_aws_template(const std::string& pipeline, const std::string& code_uri, int memory_mb);
// `aws package --out DIR [--pipeline FILE]`: writes the function package.
int cmd_aws_package(const std::string& out, const std::string& pipeline);

}  // namespace cascade::cli
