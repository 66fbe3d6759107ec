//! `/api/v1/networks`: mapping recommendations for a platform pair, the
//! check of a failover's networks before it runs, and the topology
//! (platforms, their networks, the mappings between them). The mappings
//! themselves are in [`super::network_mappings`].

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::networks::{recommend, MappingPurpose, Recommendations, Topology, ValidateRequest, ValidationReport, VALIDATE_VMS_MAX};
use shared_types::NamedRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, id_list, noted};
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::catalog::network_mapping::{self, MappingError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(recommendations)).routes(routes!(validate)).routes(routes!(topology))
}

/// The API error of a catalog mapping error.
pub fn mapping_error(e: MappingError) -> ApiError {
    match e {
        MappingError::VmNotFound(ids) => {
            ApiError::not_found("vm_not_found", format!("No managed VM has the id {ids}. GET /api/v1/vm-contexts lists them."))
        }
        MappingError::PlatformNotFound(id) => {
            ApiError::not_found("platform_not_found", format!("No platform has the id '{id}'. GET /api/v1/platforms lists them."))
        }
        MappingError::FlowNotFound(id) => ApiError::not_found("flow_not_found", format!("No flow has the id '{id}'. GET /api/v1/flows lists them.")),
        MappingError::Unusable { .. } => ApiError::unprocessable("network_mapping_incomplete", e.to_string()),
        MappingError::Db(e) => e.into(),
    }
}

/// How a mapping's scope reads in messages and the audit log.
pub fn scope_label(flow_id: Option<&str>) -> String {
    match flow_id {
        Some(f) => format!("flow {f}"),
        None => "default".into(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RecommendationQuery {
    source_platform_id: String,
    target_platform_id: String,
    /// `failover` (default) or `test`.
    purpose: Option<MappingPurpose>,
}

/// The best target network for each network of the source platform, with
/// a score (0 to 100) and the reasons: the same name, the same VLAN, names
/// alike once site prefixes are set aside, subnets of one pattern. A
/// failover is never offered an isolated network, a test only isolated ones.
#[utoipa::path(get, path = "/networks/recommendations", tag = "networks", params(RecommendationQuery), responses(
    (status = 200, body = Recommendations), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn recommendations(State(state): State<AppState>, ApiQuery(q): ApiQuery<RecommendationQuery>) -> Result<ApiJson<Recommendations>, ApiError> {
    check_id("source_platform_id", &q.source_platform_id)?;
    check_id("target_platform_id", &q.target_platform_id)?;
    let purpose = q.purpose.unwrap_or_default();
    let source = network_mapping::platform(&state.db, &q.source_platform_id).await.map_err(mapping_error)?;
    let target = network_mapping::platform(&state.db, &q.target_platform_id).await.map_err(mapping_error)?;
    let source_networks = network_mapping::networks_of(&state.db, &source.id).await?;
    let target_networks = network_mapping::networks_of(&state.db, &target.id).await?;
    let recommendations = recommend(&source_networks, &target_networks, purpose);
    let unmatched = source_networks.iter().filter(|n| !recommendations.iter().any(|r| r.source_network == n.name)).map(|n| n.name.clone()).collect();
    Ok(ApiJson(Recommendations {
        source_platform: NamedRef { id: source.id, name: source.name },
        target_platform: NamedRef { id: target.id, name: target.name },
        purpose,
        recommendations,
        unmatched,
    }))
}

/// Checks, before a failover or test, where every NIC of the VMs lands on
/// the target: the flow's mappings over the defaults, each NIC mapped, the
/// target network present on the target, and admitted by the purpose (a
/// test only isolated networks). `ok` is false while any blocker remains;
/// each issue names the VM, the NIC and what to do.
#[utoipa::path(post, path = "/networks/validate", tag = "networks", request_body = ValidateRequest, responses(
    (status = 200, body = ValidationReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn validate(State(state): State<AppState>, ApiJson(req): ApiJson<ValidateRequest>) -> Result<Response, ApiError> {
    let vm_ids = id_list("vm_ids", &req.vm_ids, VALIDATE_VMS_MAX)?;
    check_id("target_platform_id", &req.target_platform_id)?;
    if let Some(f) = &req.flow_id {
        check_id("flow_id", f)?;
    }
    let report = network_mapping::validate(&state.db, &vm_ids, &req.target_platform_id, req.flow_id.as_deref(), req.purpose)
        .await
        .map_err(mapping_error)?;
    let text = format!(
        "{} VMs to {} ({}, {}): {}",
        report.vms.len(),
        report.target_platform.name,
        report.purpose,
        scope_label(report.flow_id.as_deref()),
        if report.ok { "ok".to_string() } else { format!("{} blockers", report.blockers) }
    );
    Ok(noted(ApiJson(report), AuditNote::new("network.validate", text)))
}

/// Every platform with its networks (VLAN, subnet, isolated, managed VMs
/// on each) and every mapping between them.
#[utoipa::path(get, path = "/networks/topology", tag = "networks", responses((status = 200, body = Topology)))]
async fn topology(State(state): State<AppState>) -> Result<ApiJson<Topology>, ApiError> {
    Ok(ApiJson(network_mapping::topology(&state.db).await?))
}
