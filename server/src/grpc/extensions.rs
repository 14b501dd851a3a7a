//! Triton's repository and statistics extensions as their gRPC messages, from the same answers
//! the REST routes send.

use super::proto::{
    repository_index_response::ModelIndex, InferBatchStatistics, InferStatistics, ModelStatistics,
    ModelStatisticsResponse, RepositoryIndexResponse, StatisticDuration,
};
use crate::types::protocol as rest;

pub fn index(models: Vec<rest::RepositoryModel>) -> RepositoryIndexResponse {
    let models = models
        .into_iter()
        .map(|m| ModelIndex { name: m.name, version: m.version, state: m.state.into(), reason: m.reason })
        .collect();
    RepositoryIndexResponse { models }
}

pub fn statistics(report: rest::ModelStatsResponse) -> ModelStatisticsResponse {
    ModelStatisticsResponse { model_stats: report.model_stats.into_iter().map(model).collect() }
}

fn model(stats: rest::ModelStatistics) -> ModelStatistics {
    let s = stats.inference_stats;
    ModelStatistics {
        name: stats.name,
        version: stats.version,
        last_inference: stats.last_inference,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: duration(s.compute_input),
            compute_infer: duration(s.compute_infer),
            compute_output: duration(s.compute_output),
            cache_hit: duration(s.cache_hit),
            cache_miss: duration(s.cache_miss),
        }),
        batch_stats: stats
            .batch_stats
            .into_iter()
            .map(|b| InferBatchStatistics {
                batch_size: b.batch_size,
                compute_input: duration(b.compute_input),
                compute_infer: duration(b.compute_infer),
                compute_output: duration(b.compute_output),
            })
            .collect(),
    }
}

fn duration(d: rest::StatisticDuration) -> Option<StatisticDuration> {
    Some(StatisticDuration { count: d.count, ns: d.ns })
}
