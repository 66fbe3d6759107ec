//! `GET /api/v1/schedules`: the Schedules page's timeline
//! (`catalog::schedule_timeline`): what runs on its own in the next days,
//! expected durations from history, and overlaps per repository and platform.

use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::schedules::{ScheduleTimeline, DAYS_MAX};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery};
use crate::catalog::schedule_timeline;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(schedules))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// Days ahead, 1 to 14 (default 7).
    days: Option<u32>,
}

/// Every scheduled backup flow, replication flow, verify and GC in the next
/// days: their runs, expected durations and where they overlap.
#[utoipa::path(get, path = "/schedules", tag = "schedules", params(TimelineQuery),
    responses((status = 200, body = ScheduleTimeline), (status = 400, body = ErrorBody)))]
async fn schedules(State(state): State<AppState>, ApiQuery(q): ApiQuery<TimelineQuery>) -> Result<ApiJson<ScheduleTimeline>, ApiError> {
    let days = q.days.unwrap_or(7);
    if !(1..=DAYS_MAX).contains(&days) {
        return Err(ApiError::invalid_field("days", format!("use 1 to {DAYS_MAX} days")));
    }
    Ok(ApiJson(schedule_timeline::timeline(&state.db, days, Utc::now()).await?))
}
