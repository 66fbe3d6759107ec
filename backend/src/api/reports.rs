//! `GET /api/v1/reports/*`: reports and analytics over the catalog's job
//! history (`catalog::reports`): success rate, backup duration and size,
//! change rate, throughput, storage growth and forecast, RPO compliance.
//! Each answers in JSON or, with `format=csv`, one of its tables as CSV;
//! `/reports/{report}/print` is the printable page with server-drawn SVG
//! charts and `/reports/{report}/chart` one chart as SVG. Any signed-in
//! user may read them.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sea_orm::EntityTrait;
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::reports::{
    check_days, to_csv, AnyReport, BackupsReport, ChangeRateReport, ReportKind, RpoReport, StorageReport, SuccessBy, SuccessReport,
    ThroughputReport,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery};
use crate::catalog::reports;
use crate::catalog::repositories as repo_logic;
use crate::db::entities::repositories;
use crate::state::AppState;

/// Default period, in days.
const DAYS_DEFAULT: u32 = 30;
/// Size of `/reports/{report}/chart` drawings.
const CHART_SIZE: (u32, u32) = (720, 260);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(success))
        .routes(routes!(backups))
        .routes(routes!(change_rate))
        .routes(routes!(throughput))
        .routes(routes!(storage))
        .routes(routes!(rpo))
        .routes(routes!(print))
        .routes(routes!(chart))
}

/// How a report answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ReportFormat {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// Days covered: 7, 30, 90 or 365 (default 30), whole UTC days ending today.
    days: Option<u32>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    format: Option<ReportFormat>,
    /// With `format=csv`: which of the report's tables (0, the default, is
    /// the main one; 1 is the per-day table where there is one).
    table: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SuccessQuery {
    /// Days covered: 7, 30, 90 or 365 (default 30).
    days: Option<u32>,
    /// Rows per `vm` (default), `flow` or `group`.
    by: Option<SuccessBy>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    format: Option<ReportFormat>,
    /// With `format=csv`: 0 (default) the rows, 1 the days.
    table: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DrawQuery {
    /// Days covered: 7, 30, 90 or 365 (default 30).
    days: Option<u32>,
    /// The success report's rows: `vm` (default), `flow` or `group`.
    by: Option<SuccessBy>,
    /// `/chart` only: which of the report's charts, from 0 (default 0).
    n: Option<u32>,
}

fn days(days: Option<u32>) -> Result<u32, ApiError> {
    let days = days.unwrap_or(DAYS_DEFAULT);
    check_days(days).map_err(|m| ApiError::invalid_field("days", m))?;
    Ok(days)
}

fn kind(word: &str) -> Result<ReportKind, ApiError> {
    ReportKind::parse(word).ok_or_else(|| {
        let known: Vec<&str> = ReportKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::not_found("report_not_found", format!("There is no report '{word}'. The reports are: {}.", known.join(", ")))
    })
}

/// Each repository's filesystem capacity now (the storage forecast's free space).
async fn capacities(state: &AppState) -> Result<HashMap<String, shared_types::repositories::Capacity>, ApiError> {
    let paths: Vec<(String, String)> = repositories::Entity::find().all(&state.db).await?.into_iter().map(|r| (r.id, r.path)).collect();
    tokio::task::spawn_blocking(move || {
        paths.into_iter().filter_map(|(id, path)| repo_logic::capacity(std::path::Path::new(&path)).map(|c| (id, c))).collect()
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading the repositories' capacity: {e}")))
}

async fn build(state: &AppState, kind: ReportKind, days: u32, by: SuccessBy) -> Result<AnyReport, ApiError> {
    let now = Utc::now();
    let db = &state.db;
    Ok(match kind {
        ReportKind::Success => AnyReport::Success(reports::success::report(db, days, by, now).await?),
        ReportKind::Backups => AnyReport::Backups(reports::backups::report(db, days, now).await?),
        ReportKind::ChangeRate => AnyReport::ChangeRate(reports::change_rate::report(db, days, now).await?),
        ReportKind::Throughput => AnyReport::Throughput(reports::throughput::report(db, days, now).await?),
        ReportKind::Storage => AnyReport::Storage(reports::storage::report(db, days, &capacities(state).await?, now).await?),
        ReportKind::Rpo => AnyReport::Rpo(reports::rpo::report(db, days, now).await?),
    })
}

/// The report as JSON, or one of its tables as a CSV attachment.
fn answer(report: AnyReport, format: Option<ReportFormat>, table: Option<u32>, by: Option<SuccessBy>) -> Result<Response, ApiError> {
    let sheet = report.sheet();
    if format.unwrap_or_default() == ReportFormat::Json {
        if table.is_some() {
            return Err(ApiError::invalid_field("table", "choose a table only with format=csv; JSON holds them all"));
        }
        return Ok(match report {
            AnyReport::Success(r) => ApiJson(r).into_response(),
            AnyReport::Backups(r) => ApiJson(r).into_response(),
            AnyReport::ChangeRate(r) => ApiJson(r).into_response(),
            AnyReport::Throughput(r) => ApiJson(r).into_response(),
            AnyReport::Storage(r) => ApiJson(r).into_response(),
            AnyReport::Rpo(r) => ApiJson(r).into_response(),
        });
    }
    let tables = sheet.tables();
    let n = table.unwrap_or(0) as usize;
    let Some(t) = tables.get(n) else {
        let list: Vec<String> = tables.iter().enumerate().map(|(i, t)| format!("{i} = {}", t.title)).collect();
        return Err(ApiError::invalid_field("table", format!("this report has {} tables: {}", tables.len(), list.join(", "))));
    };
    let mut file = format!("sendense-{}-{}d", sheet.kind().as_str(), sheet.window().days);
    if let Some(by) = by {
        file.push_str(&format!("-by-{by}"));
    }
    if n > 0 {
        file.push_str(&format!("-{n}"));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.csv\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        to_csv(t),
    )
        .into_response())
}

/// Backup success rate per VM, flow or protection group, and per day.
#[utoipa::path(get, path = "/reports/success", tag = "reports", params(SuccessQuery),
    responses((status = 200, description = "The report (JSON) or one of its tables (CSV)",
            content((SuccessReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody)))]
async fn success(State(state): State<AppState>, ApiQuery(q): ApiQuery<SuccessQuery>) -> Result<Response, ApiError> {
    let days = days(q.days)?;
    let by = q.by.unwrap_or(SuccessBy::Vm);
    answer(build(&state, ReportKind::Success, days, by).await?, q.format, q.table, Some(by))
}

/// Backup duration and size per day and per VM.
#[utoipa::path(get, path = "/reports/backups", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "The report (JSON) or one of its tables (CSV)",
            content((BackupsReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody)))]
async fn backups(State(state): State<AppState>, ApiQuery(q): ApiQuery<ReportQuery>) -> Result<Response, ApiError> {
    answer(build(&state, ReportKind::Backups, days(q.days)?, SuccessBy::Vm).await?, q.format, q.table, None)
}

/// Bytes changed per day per VM, from the incremental backups' changed-block tracking.
#[utoipa::path(get, path = "/reports/change-rate", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "The report (JSON) or its table (CSV)",
            content((ChangeRateReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody)))]
async fn change_rate(State(state): State<AppState>, ApiQuery(q): ApiQuery<ReportQuery>) -> Result<Response, ApiError> {
    answer(build(&state, ReportKind::ChangeRate, days(q.days)?, SuccessBy::Vm).await?, q.format, q.table, None)
}

/// Throughput of backup, restore and replication jobs per day.
#[utoipa::path(get, path = "/reports/throughput", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "The report (JSON) or its table (CSV)",
            content((ThroughputReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody)))]
async fn throughput(State(state): State<AppState>, ApiQuery(q): ApiQuery<ReportQuery>) -> Result<Response, ApiError> {
    answer(build(&state, ReportKind::Throughput, days(q.days)?, SuccessBy::Vm).await?, q.format, q.table, None)
}

/// Each repository's stored bytes per day and when its filesystem fills
/// (least-squares line over its own history; the method is in the answer).
#[utoipa::path(get, path = "/reports/storage", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "The report (JSON) or its table (CSV)",
            content((StorageReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody)))]
async fn storage(State(state): State<AppState>, ApiQuery(q): ApiQuery<ReportQuery>) -> Result<Response, ApiError> {
    answer(build(&state, ReportKind::Storage, days(q.days)?, SuccessBy::Vm).await?, q.format, q.table, None)
}

/// Which VMs had no good restore point inside their RPO, and when (the
/// rule that sets each VM's RPO is in the answer).
#[utoipa::path(get, path = "/reports/rpo", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "The report (JSON) or one of its tables (CSV)",
            content((RpoReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody)))]
async fn rpo(State(state): State<AppState>, ApiQuery(q): ApiQuery<ReportQuery>) -> Result<Response, ApiError> {
    answer(build(&state, ReportKind::Rpo, days(q.days)?, SuccessBy::Vm).await?, q.format, q.table, None)
}

/// A report as a printable HTML page: the method, the charts drawn by the
/// server (SVG) and the tables.
#[utoipa::path(get, path = "/reports/{report}/print", tag = "reports",
    params(("report" = String, Path, description = "success, backups, change-rate, throughput, storage or rpo"), DrawQuery),
    responses((status = 200, description = "The page", content_type = "text/html"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn print(State(state): State<AppState>, Path(report): Path<String>, ApiQuery(q): ApiQuery<DrawQuery>) -> Result<Response, ApiError> {
    let kind = kind(&report)?;
    let days = days(q.days)?;
    if q.n.is_some() {
        return Err(ApiError::invalid_field("n", "the page holds every chart; choose one only with /chart"));
    }
    let built = build(&state, kind, days, q.by.unwrap_or(SuccessBy::Vm)).await?;
    let html = crate::reports::print::page(built.sheet(), Utc::now());
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"),
        ],
        html,
    )
        .into_response())
}

/// One chart of a report, drawn by the server as SVG.
#[utoipa::path(get, path = "/reports/{report}/chart", tag = "reports",
    params(("report" = String, Path, description = "success, backups, change-rate, throughput, storage or rpo"), DrawQuery),
    responses((status = 200, description = "The chart", content_type = "image/svg+xml"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn chart(State(state): State<AppState>, Path(report): Path<String>, ApiQuery(q): ApiQuery<DrawQuery>) -> Result<Response, ApiError> {
    let kind = kind(&report)?;
    let days = days(q.days)?;
    let built = build(&state, kind, days, q.by.unwrap_or(SuccessBy::Vm)).await?;
    let charts = built.sheet().charts();
    let n = q.n.unwrap_or(0) as usize;
    let Some(c) = charts.get(n) else {
        return Err(ApiError::invalid_field("n", format!("the {} report has {} chart(s), numbered from 0", kind.as_str(), charts.len())));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
        ],
        crate::reports::svg::render(c, CHART_SIZE),
    )
        .into_response())
}
