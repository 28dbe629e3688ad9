// The DeepSpeed vocabulary table (defaults of DeepSpeed 0.19.6, reference sections 12-13).
#include "dsconfig/config_schema.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace zerorun::dsconfig {
namespace {

using K = ValueKind;

const std::vector<KeySpec>& Table() {
  static const auto* table = new std::vector<KeySpec>{
      // Batch, logging, gradients, misc (top level: lenient).
      {"train_batch_size", K::kInt, "null"},
      {"train_micro_batch_size_per_gpu", K::kInt, "null"},
      {"gradient_accumulation_steps", K::kInt, "null"},
      {"steps_per_print", K::kInt, "null"},
      {"wall_clock_breakdown", K::kBool, "false"},
      {"memory_breakdown", K::kBool, "false"},
      {"dump_state", K::kBool, "false"},
      {"log_level", K::kAny, "null"},
      {"gradient_clipping", K::kFloat, "1.0"},
      {"prescale_gradients", K::kBool, "false"},
      {"gradient_predivide_factor", K::kFloat, "1.0"},
      {"gradient_allreduce_op", K::kString, "\"mean\""},
      {"communication_data_type", K::kAny, "null"},
      {"seq_parallel_communication_data_type", K::kAny, "null"},
      {"sparse_gradients", K::kBool, "false"},
      {"disable_allgather", K::kBool, "false"},
      {"zero_allow_untested_optimizer", K::kBool, "false"},
      {"zero_force_ds_cpu_optimizer", K::kBool, "true"},
      {"dataloader_drop_last", K::kBool, "false"},
      {"vocabulary_size", K::kAny, "null"},
      {"allgather_size", K::kInt, "500000000"},
      {"sequence_parallel_size", K::kInt, "1"},
      // Optimizer and scheduler: params go to a constructor, so they are free-form here.
      {"optimizer", K::kBlock, "null"},
      {"optimizer.type", K::kString, "null"},
      {"optimizer.params", K::kAny, "{}"},
      {"optimizer.legacy_fusion", K::kBool, "false"},
      {"scheduler", K::kBlock, "null"},
      {"scheduler.type", K::kString, "null"},
      {"scheduler.params", K::kAny, "{}"},
      // ZeRO (strict).
      {"zero_optimization", K::kBlock, "{}"},
      {"zero_optimization.stage", K::kInt, "0"},
      {"zero_optimization.contiguous_gradients", K::kBool, "true"},
      {"zero_optimization.reduce_scatter", K::kBool, "true"},
      {"zero_optimization.reduce_bucket_size", K::kInt, "500000000"},
      {"zero_optimization.use_multi_rank_bucket_allreduce", K::kBool, "true"},
      {"zero_optimization.allgather_partitions", K::kBool, "true"},
      {"zero_optimization.allgather_bucket_size", K::kInt, "500000000"},
      {"zero_optimization.overlap_comm", K::kBool, "null"},
      {"zero_optimization.load_from_fp32_weights", K::kBool, "true"},
      {"zero_optimization.elastic_checkpoint", K::kBool, "false"},
      {"zero_optimization.offload_param", K::kBlock, "null"},
      {"zero_optimization.offload_param.device", K::kString, "\"none\""},
      {"zero_optimization.offload_param.nvme_path", K::kAny, "null"},
      {"zero_optimization.offload_param.buffer_count", K::kInt, "5"},
      {"zero_optimization.offload_param.buffer_size", K::kInt, "100000000"},
      {"zero_optimization.offload_param.max_in_cpu", K::kInt, "1000000000"},
      {"zero_optimization.offload_param.pin_memory", K::kBool, "true"},
      {"zero_optimization.offload_optimizer", K::kBlock, "null"},
      {"zero_optimization.offload_optimizer.device", K::kString, "\"none\""},
      {"zero_optimization.offload_optimizer.nvme_path", K::kAny, "null"},
      {"zero_optimization.offload_optimizer.buffer_count", K::kInt, "4"},
      {"zero_optimization.offload_optimizer.pin_memory", K::kBool, "true"},
      {"zero_optimization.offload_optimizer.pipeline_read", K::kBool, "false"},
      {"zero_optimization.offload_optimizer.pipeline_write", K::kBool, "false"},
      {"zero_optimization.offload_optimizer.fast_init", K::kBool, "false"},
      {"zero_optimization.offload_optimizer.ratio", K::kFloat, "1.0"},
      {"zero_optimization.offload_optimizer.super_offload", K::kBool, "false"},
      {"zero_optimization.offload_optimizer.cpuadam_cores_perc", K::kFloat, "0.8"},
      {"zero_optimization.sub_group_size", K::kInt, "1000000000"},
      {"zero_optimization.cpu_offload", K::kAny, "null"},
      {"zero_optimization.cpu_offload_param", K::kAny, "null"},
      {"zero_optimization.cpu_offload_use_pin_memory", K::kAny, "null"},
      {"zero_optimization.stage3_prefetch_bucket_size", K::kInt, "50000000"},
      {"zero_optimization.prefetch_bucket_size", K::kInt, "50000000"},
      {"zero_optimization.stage3_param_persistence_threshold", K::kInt, "100000"},
      {"zero_optimization.param_persistence_threshold", K::kInt, "100000"},
      {"zero_optimization.stage3_model_persistence_threshold", K::kInt, "9223372036854775807"},
      {"zero_optimization.model_persistence_threshold", K::kInt, "9223372036854775807"},
      {"zero_optimization.stage3_max_live_parameters", K::kInt, "1000000000"},
      {"zero_optimization.max_live_parameters", K::kInt, "1000000000"},
      {"zero_optimization.stage3_max_reuse_distance", K::kInt, "1000000000"},
      {"zero_optimization.max_reuse_distance", K::kInt, "1000000000"},
      {"zero_optimization.stage3_gather_16bit_weights_on_model_save", K::kBool, "false"},
      {"zero_optimization.gather_16bit_weights_on_model_save", K::kBool, "false"},
      {"zero_optimization.stage3_gather_fp16_weights_on_model_save", K::kBool, "false"},
      {"zero_optimization.stage3_module_granularity_threshold", K::kInt, "0"},
      {"zero_optimization.module_granularity_threshold", K::kInt, "0"},
      {"zero_optimization.stage3_use_all_reduce_for_fetch_params", K::kBool, "false"},
      {"zero_optimization.use_all_reduce_for_fetch_params", K::kBool, "false"},
      {"zero_optimization.stage3_allgather_sequential", K::kBool, "false"},
      {"zero_optimization.allgather_sequential", K::kBool, "false"},
      {"zero_optimization.ignore_unused_parameters", K::kBool, "true"},
      {"zero_optimization.legacy_stage1", K::kBool, "false"},
      {"zero_optimization.round_robin_gradients", K::kBool, "false"},
      {"zero_optimization.zero_hpz_partition_size", K::kInt, "1"},
      {"zero_optimization.zero_quantized_weights", K::kBool, "false"},
      {"zero_optimization.zero_quantized_nontrainable_weights", K::kBool, "false"},
      {"zero_optimization.zero_quantized_gradients", K::kBool, "false"},
      {"zero_optimization.zeropp_loco_param", K::kAny, "null"},
      {"zero_optimization.mics_shard_size", K::kInt, "-1"},
      {"zero_optimization.mics_hierarchical_params_gather", K::kBool, "false"},
      {"zero_optimization.memory_efficient_linear", K::kBool, "true"},
      {"zero_optimization.override_module_apply", K::kBool, "true"},
      {"zero_optimization.pipeline_loading_checkpoint", K::kBool, "false"},
      {"zero_optimization.log_trace_cache_warnings", K::kBool, "false"},
      {"zero_optimization.enable_sanity_checks", K::kBool, "false"},
      {"zero_optimization.save_muon_momentum_buffer_in_memory", K::kBool, "false"},
      {"zero_optimization.zenflow", K::kAny, "null"},
      {"zero_optimization.leaf_module", K::kAny, "{}"},
      // Precision (strict since DeepSpeed 0.17.1).
      {"fp16", K::kBlock, "{}"},
      {"fp16.enabled", K::kBool, "false"},
      {"fp16.auto_cast", K::kBool, "false"},
      {"fp16.loss_scale", K::kFloat, "0"},
      {"fp16.initial_scale_power", K::kInt, "16"},
      {"fp16.loss_scale_window", K::kInt, "1000"},
      {"fp16.hysteresis", K::kInt, "2"},
      {"fp16.consecutive_hysteresis", K::kBool, "false"},
      {"fp16.min_loss_scale", K::kFloat, "1"},
      {"fp16.fp16_master_weights_and_grads", K::kBool, "false"},
      {"bf16", K::kBlock, "{}"},
      {"bf16.enabled", K::kBool, "false"},
      {"bf16.immediate_grad_update", K::kBool, "false"},
      {"bf16.check_grad_overflow", K::kBool, "true"},
      {"bf16.bf16_master_weights_and_grads", K::kBool, "false"},
      {"bf16.bf16_optimizer_states", K::kBool, "false"},
      {"bfloat16", K::kBlock, "null"},
      {"bfloat16.enabled", K::kBool, "false"},
      {"bfloat16.immediate_grad_update", K::kBool, "false"},
      {"bfloat16.check_grad_overflow", K::kBool, "true"},
      {"bfloat16.bf16_master_weights_and_grads", K::kBool, "false"},
      {"bfloat16.bf16_optimizer_states", K::kBool, "false"},
      {"amp", K::kAny, "null"},
      {"torch_autocast", K::kAny, "null"},
      // Async I/O (top level, lenient).
      {"aio", K::kBlock, "null"},
      {"aio.block_size", K::kInt, "1048576"},
      {"aio.queue_depth", K::kInt, "8"},
      {"aio.intra_op_parallelism", K::kInt, "1"},
      {"aio.single_submit", K::kBool, "false"},
      {"aio.overlap_events", K::kBool, "true"},
      {"aio.use_gds", K::kBool, "false"},
      // Checkpointing and data types (lenient).
      {"checkpoint", K::kBlock, "null"},
      {"checkpoint.tag_validation", K::kString, "\"Warn\""},
      {"checkpoint.load_universal", K::kBool, "false"},
      {"checkpoint.use_node_local_storage", K::kBool, "false"},
      {"checkpoint.parallel_write", K::kAny, "null"},
      {"data_types", K::kBlock, "null"},
      {"data_types.grad_accum_dtype", K::kAny, "null"},
      {"data_types.param_dtype", K::kAny, "null"},
      {"data_types.buffer_dtype", K::kAny, "null"},
      // Monitors (strict).
      {"tensorboard", K::kBlock, "null"},
      {"tensorboard.enabled", K::kBool, "false"},
      {"tensorboard.output_path", K::kString, "\"\""},
      {"tensorboard.job_name", K::kString, "\"DeepSpeedJobName\""},
      {"csv_monitor", K::kBlock, "null"},
      {"csv_monitor.enabled", K::kBool, "false"},
      {"csv_monitor.output_path", K::kString, "\"\""},
      {"csv_monitor.job_name", K::kString, "\"DeepSpeedJobName\""},
      {"wandb", K::kBlock, "null"},
      {"wandb.enabled", K::kBool, "false"},
      {"wandb.group", K::kAny, "null"},
      {"wandb.team", K::kAny, "null"},
      {"wandb.project", K::kString, "\"deepspeed\""},
      {"comms_logger", K::kBlock, "null"},
      {"comms_logger.enabled", K::kBool, "false"},
      {"comms_logger.verbose", K::kBool, "false"},
      {"comms_logger.prof_all", K::kBool, "true"},
      {"comms_logger.debug", K::kBool, "false"},
      {"comms_logger.prof_ops", K::kAny, "[]"},
      // Other known blocks, read leniently by DeepSpeed: accepted as written.
      {"comet", K::kAny, "null"},
      {"activation_checkpointing", K::kAny, "null"},
      {"flops_profiler", K::kAny, "null"},
      {"autotuning", K::kAny, "null"},
      {"elasticity", K::kAny, "null"},
      {"pipeline", K::kAny, "null"},
      {"sparse_attention", K::kAny, "null"},
      {"progressive_layer_drop", K::kAny, "null"},
      {"eigenvalue", K::kAny, "null"},
      {"compression_training", K::kAny, "null"},
      {"data_efficiency", K::kAny, "null"},
      {"curriculum_learning", K::kAny, "null"},
      {"nebula", K::kAny, "null"},
      {"hybrid_engine", K::kAny, "null"},
      {"tensor_parallel", K::kAny, "null"},
      {"timers", K::kAny, "null"},
      {"compile", K::kAny, "null"},
      {"weight_quantization", K::kAny, "null"},
      {"quantize_training", K::kAny, "null"},
      {"zenflow", K::kAny, "null"},
  };
  return *table;
}

}  // namespace

const std::vector<KeySpec>& ConfigSchema() { return Table(); }

const KeySpec* FindKey(absl::string_view path) {
  for (const KeySpec& spec : Table()) {
    if (path == spec.path) return &spec;
  }
  return nullptr;
}

std::vector<std::string> ChildKeys(absl::string_view block) {
  std::vector<std::string> keys;
  const std::string prefix = block.empty() ? "" : absl::StrCat(block, ".");
  for (const KeySpec& spec : Table()) {
    absl::string_view path = spec.path;
    if (!absl::StartsWith(path, prefix)) continue;
    path.remove_prefix(prefix.size());
    if (!path.empty() && path.find('.') == absl::string_view::npos) keys.emplace_back(path);
  }
  return keys;
}

bool IsStrictBlock(absl::string_view block) {
  static const char* const kStrict[] = {"zero_optimization",
                                        "zero_optimization.offload_param",
                                        "zero_optimization.offload_optimizer",
                                        "fp16",
                                        "bf16",
                                        "bfloat16",
                                        "tensorboard",
                                        "csv_monitor",
                                        "wandb",
                                        "comms_logger"};
  return std::find(std::begin(kStrict), std::end(kStrict), block) != std::end(kStrict);
}

}  // namespace zerorun::dsconfig
