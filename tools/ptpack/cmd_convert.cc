#include <cctype>

#include "commands.h"
#include "progress.h"
#include "ptpack/convert.h"
#include "ptpack/error.h"

namespace ptpack::cli {

namespace {

// "5GB", "500MB", "2GiB", "1000": sizes as Hugging Face's max_shard_size accepts them.
uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  double number = 0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (auto& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  const std::pair<const char*, double> units[] = {
      {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
      {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  for (const auto& [name, scale] : units) {
    if (used && unit == name && number > 0) return uint64_t(number * scale);
  }
  throw Error(ErrorCode::kInvalidArgument, "usage.size", "--max-shard-size '" + text + "' is not a size like 5GB or 500MiB");
}

std::optional<DType> parse_dtype(const std::string& text) {
  if (text == "bf16" || text == "bfloat16") return DType::kBFloat16;
  if (text == "fp16" || text == "float16" || text == "half") return DType::kFloat16;
  if (text == "fp32" || text == "float32" || text == "float") return DType::kFloat32;
  if (text == "fp64" || text == "float64" || text == "double") return DType::kFloat64;
  throw Error(ErrorCode::kInvalidArgument, "usage.dtype", "--dtype '" + text + "': use bf16, fp16, fp32 or fp64");
}

}  // namespace

void add_convert_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "convert", "Write any readable checkpoint as a torch.save .pt or a safetensors file, optionally "
                 "selecting, renaming, dropping and casting; the output appears whole or not at all");
  struct Args {
    std::string source, destination, to, select, strip, dtype, max_shard;
    std::vector<std::string> renames, drops, keeps, strips;
    bool select_given = false, compact = false, json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("SRC", args->source, "Checkpoint to read (any format ptpack reads)")->required();
  cmd->add_option("DST", args->destination, "File to write (*.pt or *.safetensors)")->required();
  cmd->add_option("--to", args->to, "Output format when DST's extension does not say it")
      ->check(CLI::IsMember({"pt", "safetensors"}));
  auto* select = cmd->add_option("--select", args->select,
                                 "Write only the sub-object at PATH (e.g. model_state); '' for everything");
  cmd->add_option("--strip-prefix", args->strips,
                  "Remove this prefix from keys; 'auto' removes module. and _orig_mod. when every key has it")
      ->take_all();
  cmd->add_option("--rename", args->renames, "REGEX=REPLACEMENT on names ($1 for groups); repeatable, in order");
  cmd->add_option("--drop", args->drops, "Leave out values whose name matches REGEX (searched); repeatable");
  cmd->add_option("--keep", args->keeps, "Keep only values whose name matches one REGEX; repeatable");
  cmd->add_option("--dtype", args->dtype, "Cast floating tensors: bf16, fp16, fp32 or fp64 (round to nearest even)");
  cmd->add_flag("--compact", args->compact, "Write only the storage bytes the tensors view (slices lose their base)");
  cmd->add_option("--max-shard-size", args->max_shard, "safetensors: split into shards (e.g. 5GB) with an index");
  cmd->add_flag("--json", args->json, "Machine-readable report (schema in docs/cli.md)");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress line");
  cmd->callback([=, &exit_code] {
    ConvertOptions o;
    if (args->to == "pt") o.target = ConvertOptions::Target::kTorchSave;
    if (args->to == "safetensors") o.target = ConvertOptions::Target::kSafetensors;
    if (select->count()) o.select = args->select;
    o.strip_prefixes = args->strips;
    for (const std::string& r : args->renames) {
      const size_t eq = r.find('=');
      if (eq == std::string::npos) {
        throw Error(ErrorCode::kInvalidArgument, "usage.rename", "--rename '" + r + "' needs the form REGEX=REPLACEMENT");
      }
      o.renames.emplace_back(r.substr(0, eq), r.substr(eq + 1));
    }
    o.drops = args->drops;
    o.keeps = args->keeps;
    if (!args->dtype.empty()) o.dtype = parse_dtype(args->dtype);
    o.compact = args->compact;
    if (!args->max_shard.empty()) o.max_shard_size = parse_size(args->max_shard);
    ProgressLine progress("convert", !args->quiet && !args->json);
    o.progress = [&](uint64_t done, uint64_t total) { progress.update(done, total); };
    ConvertReport report;
    for_file(args->source, [&] { report = convert(args->source, args->destination, o); });
    print(args->json ? convert_report_json(report) : convert_report_text(report));
    exit_code = 0;
  });
}

void add_diff_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("diff", "Compare two checkpoints by name, across formats: names only in one, "
                                         "shape/dtype changes, value differences; exit 1 when they differ");
  struct Args {
    std::string a, b, select_a, select_b;
    std::vector<std::string> strips;
    double atol = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("A", args->a, "First checkpoint")->required();
  cmd->add_option("B", args->b, "Second checkpoint")->required();
  auto* sa = cmd->add_option("--select-a", args->select_a, "Compare only the sub-object at PATH of A");
  auto* sb = cmd->add_option("--select-b", args->select_b, "Compare only the sub-object at PATH of B");
  cmd->add_option("--strip-prefix", args->strips, "Remove this prefix from keys on both sides ('auto' as in convert)")
      ->take_all();
  cmd->add_option("--atol", args->atol, "Values differing by at most this much count as equal (default 0: exact)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args->json, "Machine-readable report (schema in docs/cli.md)");
  cmd->callback([=, &exit_code] {
    DiffOptions o;
    if (sa->count()) o.select_a = args->select_a;
    if (sb->count()) o.select_b = args->select_b;
    o.atol = args->atol;
    o.strip_prefixes = args->strips;
    const DiffReport r = diff(args->a, args->b, o);
    print(args->json ? diff_report_json(r) : diff_report_text(r));
    exit_code = r.same() ? 0 : 1;
  });
}

}  // namespace ptpack::cli
