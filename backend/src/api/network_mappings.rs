//! `/api/v1/network-mappings` and `POST /api/v1/networks/bulk-mapping`:
//! which network of a target platform each network of a source platform
//! becomes at failover, per flow or as the default of the platform pair.
//! Both networks must exist on their platforms (as the last discovery
//! reported them) and the purpose must admit the target: a test only an
//! isolated network, a live failover never one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, DatabaseConnection, Set, TransactionTrait};
use serde::Deserialize;
use shared_types::error::{ErrorBody, FieldError};
use shared_types::networks::{BulkMappingRequest, BulkMappingResult, CreateNetworkMappingRequest, MappingPurpose, NetworkMapping};
use shared_types::platform::NetworkInfo;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, is_unique_violation, noted};
use super::networks::{mapping_error, scope_label};
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::network_mapping::{self, to_api};
use crate::catalog::new_id;
use crate::db::entities::{network_mappings, platforms};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_mappings, create_mapping))
        .routes(routes!(delete_mapping))
        .routes(routes!(bulk_mapping))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MappingQuery {
    /// Only mappings from this platform (id).
    source_platform_id: Option<String>,
    /// Only mappings to this platform (id).
    target_platform_id: Option<String>,
    /// Only this flow's own mappings.
    flow_id: Option<String>,
    /// `failover` or `test`.
    purpose: Option<MappingPurpose>,
}

/// The source and target platforms and the flow of a request, each checked (404).
async fn endpoints(
    db: &impl ConnectionTrait,
    source_platform_id: &str,
    target_platform_id: &str,
    flow_id: Option<&str>,
) -> Result<(platforms::Model, platforms::Model), ApiError> {
    check_id("source_platform_id", source_platform_id)?;
    check_id("target_platform_id", target_platform_id)?;
    if let Some(f) = flow_id {
        check_id("flow_id", f)?;
    }
    let source = network_mapping::platform(db, source_platform_id).await.map_err(mapping_error)?;
    let target = network_mapping::platform(db, target_platform_id).await.map_err(mapping_error)?;
    if let Some(f) = flow_id {
        if !network_mapping::flow_exists(db, f).await? {
            return Err(mapping_error(network_mapping::MappingError::FlowNotFound(f.to_owned())));
        }
    }
    Ok((source, target))
}

/// Why one pair cannot be stored: (field, code, message).
fn pair_problem(
    (source, source_networks): (&platforms::Model, &[NetworkInfo]),
    (target, target_networks): (&platforms::Model, &[NetworkInfo]),
    source_network: &str,
    target_network: &str,
    purpose: MappingPurpose,
) -> Option<(&'static str, &'static str, String)> {
    let listed = |nets: &[NetworkInfo], p: &platforms::Model| {
        if nets.is_empty() {
            format!("it has no networks recorded: discover it first (POST /api/v1/platforms/{}/rediscover)", p.id)
        } else {
            format!("its networks: {}", nets.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "))
        }
    };
    if !source_networks.iter().any(|n| n.name == source_network) {
        return Some((
            "source_network",
            "network_not_found",
            format!("'{source_network}' is not a network of platform '{}' ({})", source.name, listed(source_networks, source)),
        ));
    }
    let Some(t) = target_networks.iter().find(|n| n.name == target_network) else {
        return Some((
            "target_network",
            "network_not_found",
            format!("'{target_network}' is not a network of platform '{}' ({})", target.name, listed(target_networks, target)),
        ));
    };
    purpose.admits(t).err().map(|m| ("target_network", "network_not_allowed", m))
}

fn describe(source: &platforms::Model, target: &platforms::Model, source_network: &str, target_network: &str, purpose: MappingPurpose, flow_id: Option<&str>) -> String {
    format!("{source_network}@{} -> {target_network}@{} ({purpose}, {})", source.name, target.name, scope_label(flow_id))
}

/// Network mappings, by source platform and network; filtered by platform, flow or purpose.
#[utoipa::path(get, path = "/network-mappings", tag = "networks", params(MappingQuery), responses(
    (status = 200, body = Vec<NetworkMapping>), (status = 400, body = ErrorBody)))]
async fn list_mappings(State(state): State<AppState>, ApiQuery(q): ApiQuery<MappingQuery>) -> Result<ApiJson<Vec<NetworkMapping>>, ApiError> {
    let mut find = network_mappings::Entity::find();
    if let Some(p) = &q.source_platform_id {
        find = find.filter(network_mappings::Column::SourcePlatformId.eq(p.clone()));
    }
    if let Some(p) = &q.target_platform_id {
        find = find.filter(network_mappings::Column::TargetPlatformId.eq(p.clone()));
    }
    if let Some(f) = &q.flow_id {
        find = find.filter(network_mappings::Column::FlowId.eq(f.clone()));
    }
    if let Some(p) = q.purpose {
        find = find.filter(network_mappings::Column::Purpose.eq(p.as_str()));
    }
    let rows = find
        .order_by_asc(network_mappings::Column::SourcePlatformId)
        .order_by_asc(network_mappings::Column::SourceNetwork)
        .order_by_asc(network_mappings::Column::TargetPlatformId)
        .order_by_asc(network_mappings::Column::Purpose)
        .order_by_asc(network_mappings::Column::CreatedAt)
        .all(&state.db)
        .await?;
    Ok(ApiJson(rows.into_iter().map(to_api).collect()))
}

/// Maps a source network to a target network, for a flow or as the default
/// of the platform pair. 404: an unknown platform or flow; 409: a mapping of
/// the same source network, platforms, purpose and flow exists; 422: a
/// network its platform does not have, or a target the purpose does not
/// admit (a test needs an isolated network, a failover must not use one).
#[utoipa::path(post, path = "/network-mappings", tag = "networks", request_body = CreateNetworkMappingRequest, responses(
    (status = 201, body = NetworkMapping), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn create_mapping(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<CreateNetworkMappingRequest>) -> Result<Response, ApiError> {
    req.validate().map_err(|(field, m)| ApiError::invalid_field(&field, m))?;
    let flow_id = req.flow_id.as_deref();
    let (source, target) = endpoints(&state.db, &req.source_platform_id, &req.target_platform_id, flow_id).await?;
    let source_networks = network_mapping::networks_of(&state.db, &source.id).await?;
    let target_networks = network_mapping::networks_of(&state.db, &target.id).await?;
    if let Some((field, code, message)) =
        pair_problem((&source, &source_networks), (&target, &target_networks), &req.source_network, &req.target_network, req.purpose)
    {
        return Err(ApiError::Unprocessable {
            code,
            message: format!("{field}: {message}"),
            details: vec![FieldError { field: field.to_owned(), message }],
        });
    }
    let taken = same_key(&state.db, &source.id, &req.source_network, &target.id, req.purpose, flow_id).await?;
    let duplicate = |existing: &str| {
        ApiError::conflict(
            "mapping_exists",
            format!(
                "'{}' of '{}' is already mapped to '{existing}' of '{}' for {} ({}); delete that mapping first, or replace it with POST /api/v1/networks/bulk-mapping",
                req.source_network,
                source.name,
                target.name,
                req.purpose,
                scope_label(flow_id)
            ),
        )
    };
    if let Some(existing) = taken.first() {
        return Err(duplicate(&existing.target_network));
    }
    let row = network_mappings::ActiveModel {
        id: Set(new_id()),
        source_platform_id: Set(source.id.clone()),
        source_network: Set(req.source_network.clone()),
        target_platform_id: Set(target.id.clone()),
        target_network: Set(req.target_network.clone()),
        purpose: Set(req.purpose.as_str().to_owned()),
        flow_id: Set(req.flow_id.clone()),
        created_at: Set(Utc::now()),
        created_by: Set(Some(me.username.clone())),
    }
    .insert(&state.db)
    .await
    .map_err(|e| if is_unique_violation(&e) { duplicate("another network (just now)") } else { e.into() })?;
    let target_text = describe(&source, &target, &req.source_network, &req.target_network, req.purpose, flow_id);
    Ok(noted((StatusCode::CREATED, ApiJson(to_api(row))), AuditNote::new("network_mapping.create", target_text)))
}

/// Mappings with the key of a new one (at most one, by the unique indexes).
async fn same_key(
    db: &impl ConnectionTrait,
    source_platform_id: &str,
    source_network: &str,
    target_platform_id: &str,
    purpose: MappingPurpose,
    flow_id: Option<&str>,
) -> Result<Vec<network_mappings::Model>, sea_orm::DbErr> {
    let find = network_mappings::Entity::find()
        .filter(network_mappings::Column::SourcePlatformId.eq(source_platform_id.to_owned()))
        .filter(network_mappings::Column::SourceNetwork.eq(source_network.to_owned()))
        .filter(network_mappings::Column::TargetPlatformId.eq(target_platform_id.to_owned()))
        .filter(network_mappings::Column::Purpose.eq(purpose.as_str()));
    match flow_id {
        Some(f) => find.filter(network_mappings::Column::FlowId.eq(f.to_owned())),
        None => find.filter(network_mappings::Column::FlowId.is_null()),
    }
    .all(db)
    .await
}

/// Deletes a mapping.
#[utoipa::path(delete, path = "/network-mappings/{id}", tag = "networks", params(("id" = String, Path, description = "Mapping id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_mapping(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = network_mappings::Entity::find_by_id(id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::not_found("mapping_not_found", format!("No network mapping has the id '{id}'. GET /api/v1/network-mappings lists them."))
    })?;
    let done = network_mappings::Entity::delete_by_id(row.id.clone()).exec(&state.db).await?;
    if done.rows_affected == 0 {
        return Err(ApiError::not_found("mapping_not_found", format!("The network mapping '{id}' was just deleted by another request.")));
    }
    let name = |p: Option<platforms::Model>, id: &str| p.map(|p| p.name).unwrap_or_else(|| id.to_owned());
    let source = name(platforms::Entity::find_by_id(row.source_platform_id.clone()).one(&state.db).await?, &row.source_platform_id);
    let target = name(platforms::Entity::find_by_id(row.target_platform_id.clone()).one(&state.db).await?, &row.target_platform_id);
    let text = format!(
        "{}@{source} -> {}@{target} ({}, {})",
        row.source_network,
        row.target_network,
        row.purpose,
        scope_label(row.flow_id.as_deref())
    );
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("network_mapping.delete", text)))
}

/// Sets many mappings of one platform pair, flow and purpose at once, all
/// or nothing: every pair is checked first (422 lists each problem), then
/// one transaction replaces the mapping of each source network, if any.
#[utoipa::path(post, path = "/networks/bulk-mapping", tag = "networks", request_body = BulkMappingRequest, responses(
    (status = 200, body = BulkMappingResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn bulk_mapping(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<BulkMappingRequest>) -> Result<Response, ApiError> {
    req.validate().map_err(|(field, m)| ApiError::invalid_field(&field, m))?;
    let (result, text) = store_bulk(&state.db, &me.username, &req).await?;
    Ok(noted(ApiJson(result), AuditNote::new("network_mapping.bulk", text)))
}

/// Stores a validated bulk request (see [`bulk_mapping`]); returns the
/// result and a line for the audit log. Replication flows store the
/// mapping given at creation through this too.
pub async fn store_bulk(db: &DatabaseConnection, username: &str, req: &BulkMappingRequest) -> Result<(BulkMappingResult, String), ApiError> {
    let flow_id = req.flow_id.as_deref();
    let (source, target) = endpoints(db, &req.source_platform_id, &req.target_platform_id, flow_id).await?;
    let source_networks = network_mapping::networks_of(db, &source.id).await?;
    let target_networks = network_mapping::networks_of(db, &target.id).await?;
    let problems: Vec<FieldError> = req
        .mappings
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            pair_problem((&source, &source_networks), (&target, &target_networks), &m.source_network, &m.target_network, req.purpose)
                .map(|(field, _, message)| FieldError { field: format!("mappings[{i}].{field}"), message })
        })
        .collect();
    if !problems.is_empty() {
        let message = format!(
            "{} of {} mappings cannot be stored, none was: {}",
            problems.len(),
            req.mappings.len(),
            problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ")
        );
        return Err(ApiError::Unprocessable { code: "invalid_mappings", message, details: problems });
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    let (mut created, mut replaced) = (0u32, 0u32);
    let mut rows = Vec::with_capacity(req.mappings.len());
    for m in &req.mappings {
        let old = same_key(&txn, &source.id, &m.source_network, &target.id, req.purpose, flow_id).await?;
        if old.is_empty() {
            created += 1;
        } else {
            replaced += 1;
            let ids: Vec<String> = old.into_iter().map(|o| o.id).collect();
            network_mappings::Entity::delete_many().filter(network_mappings::Column::Id.is_in(ids)).exec(&txn).await?;
        }
        let row = network_mappings::ActiveModel {
            id: Set(new_id()),
            source_platform_id: Set(source.id.clone()),
            source_network: Set(m.source_network.clone()),
            target_platform_id: Set(target.id.clone()),
            target_network: Set(m.target_network.clone()),
            purpose: Set(req.purpose.as_str().to_owned()),
            flow_id: Set(req.flow_id.clone()),
            created_at: Set(now),
            created_by: Set(Some(username.to_owned())),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::conflict("mapping_changed", "Another request changed these mappings meanwhile; nothing was stored. Try again.")
            } else {
                e.into()
            }
        })?;
        rows.push(to_api(row));
    }
    txn.commit().await?;
    let text = format!(
        "{} mappings {} -> {} ({}, {}): {} new, {} replaced",
        rows.len(),
        source.name,
        target.name,
        req.purpose,
        scope_label(flow_id),
        created,
        replaced
    );
    Ok((BulkMappingResult { mappings: rows, created, replaced }, text))
}
